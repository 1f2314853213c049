"""Shared fixtures for every test package.

Database fixtures (use them from any test directory):

``db_url``
    Parametrized over ``sqlite`` and ``postgresql``: each test that asks for it runs twice.
    The *postgresql* variant is marked ``integration`` (it needs the server below), so the fast
    tier (``make check``) runs the *sqlite* variant only; ``make test`` runs both.
    *sqlite* is a file in ``tmp_path``; *postgresql* is a freshly created, uniquely named,
    empty database on the server at ``VAUDIT_TEST_PG`` (default
    ``postgresql://postgres@127.0.0.1:5432/postgres``, the maintenance database used to
    create and drop it), dropped again at teardown after terminating leftover connections.
    If that server cannot be reached, the postgresql variant is skipped with the reason.
    The URL is *not* migrated.

``engine``
    A SQLAlchemy engine on ``db_url`` migrated to the newest schema (disposed at teardown).

``store``
    An ``indexer.segment_store.SegmentStore`` on ``engine``.

To run only one backend: ``pytest -k sqlite`` or ``pytest -k postgresql``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore

PG_ADMIN_URL = os.environ.get("VAUDIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_conninfo(url: str) -> str:
    """A libpq URI (psycopg) from a SQLAlchemy-style URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_admin() -> str:
    """libpq URI of the PostgreSQL maintenance database; skips if the server is unreachable."""
    conninfo = _pg_conninfo(PG_ADMIN_URL)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {make_url(PG_ADMIN_URL)!r}: {exc}".strip())
    return conninfo


def _drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def pg_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the test."""
    admin: str = request.getfixturevalue("pg_admin")
    name = f"vaudit_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name))
        )
    try:
        yield (
            make_url(PG_ADMIN_URL)
            .set(drivername="postgresql+psycopg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        _drop_database(admin, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database, once for SQLite and once for PostgreSQL (see module doc)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index' / 'index.db'}"
    else:
        yield request.getfixturevalue("pg_database")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``, migrated to head."""
    eng = create_engine_for(db_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def store(engine: Engine) -> SegmentStore:
    """A SegmentStore on a migrated database (no rooms or cameras yet: call ``sync_rooms``)."""
    return SegmentStore(engine)
