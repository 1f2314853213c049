"""Engines, sessions and schema migrations for the index database (SQLite or PostgreSQL).

Alembic is configured programmatically from the migrations shipped inside this package
(``indexer/migrations``), so ``upgrade()`` works from an installed package and from any
working directory; no ``alembic.ini`` is read. (``indexer/alembic.ini`` exists only for
developers running the ``alembic`` command by hand.)
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from domain.errors import ConfigError, ConflictError, IndexStoreError, ValidationFailed

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


# The largest integer an id (BigInteger) column holds on SQLite and PostgreSQL alike: a larger one
# in a request names nothing that can exist.
DB_INT_MAX = 2**63 - 1


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; ``postgresql://`` (and ``postgres://``) use the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database url is not valid: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"database {backend!r} not supported (sqlite or postgresql)")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # a committed row survives a power loss
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def create_engine_for(url: str | URL) -> Engine:
    """An engine for ``url``.

    SQLite: the file's parent directory is created; WAL journal, busy timeout and foreign
    keys are switched on for every connection. PostgreSQL: psycopg 3 driver, pre-ping so a
    restarted server does not hand out dead pooled connections.
    """
    parsed = normalize_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (SQLAlchemyError, OSError, ImportError) as exc:
        raise IndexStoreError(f"cannot create database engine for {parsed!r}: {exc}") from exc
    log.debug("engine created for %r", parsed)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration for the packaged migrations, bound to ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["engine"] = engine
    return cfg


def _run(engine_or_url: Engine | str | URL, action: str, revision: str) -> None:
    owned = not isinstance(engine_or_url, Engine)
    engine = create_engine_for(engine_or_url) if not isinstance(engine_or_url, Engine) else engine_or_url
    cfg = alembic_config(engine)
    try:
        if action == "upgrade":
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)
    except (SQLAlchemyError, CommandError) as exc:
        raise IndexStoreError(f"database {action} to {revision!r} failed: {exc}", revision=revision) from exc
    finally:
        if owned:
            engine.dispose()
    log.info("database %s to %s done (%s)", action, revision, engine.url.get_backend_name())


def upgrade(engine_or_url: Engine | str | URL, revision: str = "head") -> None:
    """Migrate the schema up to ``revision`` (default: the newest)."""
    _run(engine_or_url, "upgrade", revision)


_MIGRATION_LOCK = 0x7661_7564  # "vaud": one node at a time runs the migrations


def migrate_once(url: str) -> None:
    """Migrate to head; on PostgreSQL under an advisory lock, as fleet nodes start together."""
    engine = create_engine_for(url)
    try:
        if engine.dialect.name != "postgresql":
            upgrade(engine)
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                upgrade(engine)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
    finally:
        engine.dispose()


def downgrade(engine_or_url: Engine | str | URL, revision: str = "base") -> None:
    """Migrate the schema down to ``revision`` (default ``base``: drop every table)."""
    _run(engine_or_url, "downgrade", revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty (unmigrated) database."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise IndexStoreError(f"cannot read the schema revision: {exc}") from exc


def freeze_heap() -> None:
    """Collect once, then move every object alive now out of the garbage collector's reach
    (``gc.freeze()``). Meant to be called once by a long-running process after start-up (imports,
    engine, app built). Why: a footage answer allocates ≈ 2,500 records plus their rows, so every
    20–30 answers CPython runs a full collection that walks the whole start-up heap (SQLAlchemy,
    FastAPI, …): ≈ 50 ms of CPU that lands on one request, which is the footage query's p95 tail
    (see docs/bench/index.md). Frozen objects are not walked; objects made later are collected as before.
    """
    gc.collect()
    gc.freeze()
    log.info("heap frozen for the garbage collector: %d objects", gc.get_freeze_count())


@contextmanager
def mapped_transaction(sessions: sessionmaker[Session], what: str) -> Iterator[Session]:
    """A transaction whose database errors leave as the project's errors (never a bare 500):
    constraint → ConflictError, a value the column cannot hold → ValidationFailed, anything else
    from SQLAlchemy → IndexStoreError. ``what`` names the operation in the message."""
    try:
        with sessions.begin() as session:
            yield session
    except IntegrityError as exc:
        raise ConflictError(f"{what}: constraint violated: {exc.orig}") from exc
    except DataError as exc:  # a value the column cannot hold (PostgreSQL)
        raise ValidationFailed(f"{what}: value refused by the database: {exc.orig}") from exc
    except OverflowError as exc:  # the same on SQLite: its driver refuses an int beyond 64 bits
        raise ValidationFailed(f"{what}: a number is out of range: {exc}") from exc
    except SQLAlchemyError as exc:
        raise IndexStoreError(f"{what}: index database failed: {exc}") from exc


def dialect_insert(engine: Engine, table: Table) -> Any:
    """INSERT with the dialect's ON CONFLICT support (PostgreSQL or SQLite)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
