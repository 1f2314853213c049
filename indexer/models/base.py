"""What every table model shares: the declarative base with its naming convention, the column
types (microsecond instants, 64-bit ids, JSON), the time conversions and the check helper."""

from __future__ import annotations

from typing import Annotated

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column

# the index's instants are microsecond counts: the conversions are the domain's, named here too
from domain.types import EPOCH as EPOCH
from domain.types import from_us as from_us
from domain.types import to_us as to_us

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit surrogate key; on SQLite only "INTEGER PRIMARY KEY" is the auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")

IntPK = Annotated[int, mapped_column(BigId, primary_key=True, autoincrement=True)]
Micros = Annotated[int, mapped_column(BigInteger)]
Ident = Annotated[str, mapped_column(String(64))]
Hash = Annotated[str, mapped_column(String(64))]
# The user (``users.id``) who wrote a row through the API; NULL for the system's own writes (imports,
# reindex, rows older than revision 0009_write_authors). No foreign key: ``users`` already refers to
# ``officers``, and a key back would make the two tables a cycle; accounts are disabled, never
# deleted, so an id stays meaningful.
Author = Annotated[int | None, mapped_column(BigInteger)]

SEGMENT_SOURCES = ("camera", "bodycam")
SUBJECT_ROLES = ("suspect", "witness", "victim")
OBSERVATION_SOURCES = ("wristband", "face", "manual")


def one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
