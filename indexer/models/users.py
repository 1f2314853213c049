"""Tables of the people who use the system: accounts with a role, and their login credentials.

Kept apart from :mod:`indexer.models` (imported at its end, so one ``Base.metadata`` holds
every table). A credential is a random token handed to the client once; only its SHA-256 is
stored, so a copy of the database does not let anyone log in.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models.base import Base, BigId, IntPK, Micros, one_of

ROLES = ("officer", "supervisor", "legal", "admin", "court_viewer")
CREDENTIAL_KINDS = ("session", "bearer")


class User(Base):
    """An account. ``officer_id`` links an officer's account to the officer record, which is
    how "officers see their own cases only" is decided (through ``case_officers``)."""

    __tablename__ = "users"
    __table_args__ = (one_of("role", ROLES, "role"),)

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
        one_of("kind", CREDENTIAL_KINDS, "kind"),
        Index("ix_credentials_user_id", "user_id"),
    )

    id: Mapped[IntPK]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    created_us: Mapped[Micros]
    expires_us: Mapped[Micros]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginThrottle(Base):
    """Failed logins per account name and per client address (revision 0009_write_authors), so
    the growing delay survives a restart and holds across processes sharing the index.

    ``key`` is ``user:<name>`` or ``addr:<address>``. ``failures`` counts attempts that did not
    succeed since the key was last quiet for ``auth.reset_seconds`` (an attempt counts before its
    password is checked, so parallel guesses cannot slip past the delay; a success takes it back).
    No attempt is checked before ``locked_until_us``. ``alerted`` stops a second alert for the same
    run of failures."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_us: Mapped[Micros]
    last_failure_us: Mapped[Micros]
    locked_until_us: Mapped[int] = mapped_column(BigInteger, default=0)
    alerted: Mapped[bool] = mapped_column(Boolean, default=False)
