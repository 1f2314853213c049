"""Tables of the people who use the system: accounts with a role, and their login credentials.

Kept apart from :mod:`indexer.models` (imported at its end, so one ``Base.metadata`` holds
every table). A credential is a random token handed to the client once; only its SHA-256 is
stored, so a copy of the database does not let anyone log in.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models import Base, BigId, IntPK, Micros, _one_of

ROLES = ("officer", "supervisor", "legal", "admin", "court_viewer")
CREDENTIAL_KINDS = ("session", "bearer")


class User(Base):
    """An account. ``officer_id`` links an officer's account to the officer record, which is
    how "officers see their own cases only" is decided (through ``case_officers``)."""

    __tablename__ = "users"
    __table_args__ = (_one_of("role", ROLES, "role"),)

    id: Mapped[IntPK]
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, PHC string
    officer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("officers.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_us: Mapped[Micros]


class Credential(Base):
    """A login session (browser cookie) or an API bearer token, by the SHA-256 of its secret."""

    __tablename__ = "credentials"
    __table_args__ = (
        _one_of("kind", CREDENTIAL_KINDS, "kind"),
        Index("ix_credentials_user_id", "user_id"),
    )

    id: Mapped[IntPK]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    created_us: Mapped[Micros]
    expires_us: Mapped[Micros]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
