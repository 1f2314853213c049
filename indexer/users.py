"""Accounts, argon2 password checks, and login credentials (browser sessions, API tokens).

Passwords are hashed with argon2id (``argon2-cffi`` defaults). A new password must be at least
``min_password`` characters, not one of the 20,000 most common passwords (``data/``), and not
the user name. A credential's secret is 32 random bytes (URL-safe base64) given to the client
once; the database keeps its SHA-256 only. Its owner can list their credentials and revoke one
or all; a revoked credential fails on its next request (every request looks it up).
Every public method opens its own session, so one :class:`UserStore` is shared by threads.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from domain.errors import ConflictError, IndexStoreError, NotFoundError, ValidationFailed
from indexer.database import session_factory
from indexer.models import CaseOfficer, Officer
from indexer.models.users import ROLES, Credential, User

log = logging.getLogger(__name__)

SESSION_SECONDS = 12 * 3600
TOKEN_SECONDS = 24 * 3600
MIN_PASSWORD = 12
COMMON_PASSWORDS = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"
# A verification costs the same whether or not the name exists (no user enumeration by timing).
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not-a-password-of-anyone")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as."""

    user_id: int
    name: str
    role: str
    officer_id: int | None
    credential_id: int | None = None  # the session or token this request came with

    @property
    def sees_all_cases(self) -> bool:
        return self.role != "officer"


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


def _principal(user: User, credential_id: int | None = None) -> Principal:
    return Principal(user.id, user.name, user.role, user.officer_id, credential_id)


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """One login session or API token of a user, without its secret."""

    id: int
    kind: str
    created_us: int
    expires_us: int
    revoked: bool


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased (read once)."""
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip().lower() for line in fh if line.strip())


def password_problems(name: str, password: str, min_length: int = MIN_PASSWORD) -> list[str]:
    """Why ``password`` is refused for the account ``name`` (empty: it is accepted)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    folded, user = password.strip().lower(), name.strip().lower()
    if folded in common_passwords():
        problems.append("is one of the 20,000 most common passwords")
    # Containment only for names long enough to mean something ("li" is in many good passwords).
    if user and (folded == user or (len(user) >= 4 and user in folded)):
        problems.append("must not be or contain the user name")
    return problems


class UserStore:
    def __init__(
        self, engine: Engine, now_us: Callable[[], int] = _now_us, min_password: int = MIN_PASSWORD
    ) -> None:
        self._sessions = session_factory(engine)
        self._now_us = now_us
        self._min_password = min_password

    # --- accounts --------------------------------------------------------------------------

    def create_user(self, name: str, role: str, password: str, officer_badge: str | None = None) -> Principal:
        """A new account; the name must be new. Officers should be linked to their officer record."""
        name = name.strip()
        problems = []
        if not name or len(name) > 128:
            problems.append({"field": "name", "message": "1 to 128 characters"})
        if role not in ROLES:
            problems.append({"field": "role", "message": f"one of {', '.join(ROLES)}"})
        for why in password_problems(name, password, self._min_password):
            problems.append({"field": "password", "message": why})
        if problems:
            raise ValidationFailed(
                "invalid user: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems),
                fields=problems,
            )
        try:
            with self._sessions.begin() as session:
                officer_id = None
                if officer_badge is not None:
                    officer_id = session.scalar(
                        select(Officer.id).where(Officer.badge_number == officer_badge)
                    )
                    if officer_id is None:
                        raise NotFoundError(f"no officer with badge number {officer_badge!r}")
                user = User(
                    name=name,
                    role=role,
                    password_hash=_HASHER.hash(password),
                    officer_id=officer_id,
                    active=True,
                    created_us=self._now_us(),
                )
                session.add(user)
                session.flush()
                return _principal(user)
        except IntegrityError as exc:
            raise ConflictError(f"user {name!r} already exists", name=name) from exc
        except SQLAlchemyError as exc:
            raise IndexStoreError(f"cannot create user {name!r}: {exc}") from exc

    def list_users(self) -> list[tuple[Principal, bool, int]]:
        """(principal, active, created_us) of every account, by name."""
        with self._sessions() as session:
            rows = session.scalars(select(User).order_by(User.name)).all()
            return [(_principal(u), u.active, u.created_us) for u in rows]

    def set_active(self, user_id: int, active: bool) -> None:
        with self._sessions.begin() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFoundError(f"no user {user_id}")
            user.active = active
            if not active:
                session.execute(update(Credential).where(Credential.user_id == user_id).values(revoked=True))

    def check_password(self, name: str, password: str) -> Principal | None:
        """The account if the name and password match an active account, else None."""
        with self._sessions() as session:
            user = session.scalar(select(User).where(User.name == name.strip()))
        try:
            _HASHER.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or not user.active:
            return None
        return _principal(user)

    # --- credentials -----------------------------------------------------------------------

    def issue(self, who: Principal, kind: str, seconds: int | None = None) -> str:
        """A new secret for ``who`` (kind "session" or "bearer"); only its hash is stored."""
        secret = secrets.token_urlsafe(32)
        now = self._now_us()
        life = seconds if seconds is not None else (SESSION_SECONDS if kind == "session" else TOKEN_SECONDS)
        with self._sessions.begin() as session:
            session.add(
                Credential(
                    token_hash=token_hash(secret),
                    user_id=who.user_id,
                    kind=kind,
                    created_us=now,
                    expires_us=now + life * 1_000_000,
                    revoked=False,
                )
            )
        return secret

    def resolve(self, secret: str, kind: str) -> Principal | None:
        """The active account a live, unrevoked credential of ``kind`` belongs to."""
        if not secret or len(secret) > 128:
            return None
        with self._sessions() as session:
            row = session.execute(
                select(User, Credential.id)
                .join(Credential, Credential.user_id == User.id)
                .where(
                    Credential.token_hash == token_hash(secret),
                    Credential.kind == kind,
                    Credential.revoked.is_(False),
                    Credential.expires_us > self._now_us(),
                    User.active.is_(True),
                )
            ).one_or_none()
            return _principal(row[0], int(row[1])) if row is not None else None

    def credentials(self, user_id: int) -> list[CredentialInfo]:
        """The user's sessions and tokens that have not expired, newest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Credential)
                .where(Credential.user_id == user_id, Credential.expires_us > self._now_us())
                .order_by(Credential.id.desc())
            ).all()
            return [CredentialInfo(c.id, c.kind, c.created_us, c.expires_us, c.revoked) for c in rows]

    def revoke_credential(self, user_id: int, credential_id: int) -> None:
        """Revoke one of the user's own credentials (NotFoundError for anyone else's: not told apart)."""
        with self._sessions.begin() as session:
            done = session.execute(
                update(Credential)
                .where(Credential.id == credential_id, Credential.user_id == user_id)
                .values(revoked=True)
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise NotFoundError(f"you have no token {credential_id}", credential_id=credential_id)

    def revoke_all(self, user_id: int) -> int:
        """Revoke every live credential of the user (sessions too); how many were live."""
        with self._sessions.begin() as session:
            done = session.execute(
                update(Credential)
                .where(
                    Credential.user_id == user_id,
                    Credential.revoked.is_(False),
                    Credential.expires_us > self._now_us(),
                )
                .values(revoked=True)
            )
            return int(done.rowcount or 0)  # type: ignore[attr-defined]

    def revoke(self, secret: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Credential).where(Credential.token_hash == token_hash(secret)).values(revoked=True)
            )

    # --- what an officer may see -----------------------------------------------------------

    def officer_cases(self, officer_id: int) -> set[int]:
        with self._sessions() as session:
            return set(
                session.scalars(select(CaseOfficer.case_id).where(CaseOfficer.officer_id == officer_id))
            )

    def officer_on_case(self, officer_id: int, case_id: int) -> bool:
        with self._sessions() as session:
            return (
                session.scalar(
                    select(CaseOfficer.case_id).where(
                        CaseOfficer.officer_id == officer_id, CaseOfficer.case_id == case_id
                    )
                )
                is not None
            )
