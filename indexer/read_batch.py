"""Independent reads of one answer sent together: on PostgreSQL in one round trip (psycopg's
pipeline mode), elsewhere one after the other.

Why: on a two-core machine shared with the recorders, a footage answer on PostgreSQL spent less
than 1.5 ms per statement in the server and ~5 ms in Python, but each of its five statements also
waited for the server process to be scheduled and for its reply (docs/bench/index.md, revision 0008:
p50 7.8-9.4 ms, p95 11.6-17.7 ms against a 10 ms target). The reads of one answer are mostly
independent of each other (rooms, the subject's readings and clips; then segments and gaps), so
they are queued on the connection and flushed with a single sync: the server runs them back to
back and the client waits once.

Statements are compiled by SQLAlchemy once (for the connection's dialect) and run on the DB-API
connection under the session's transaction, rows returned as DB-API tuples, like
:func:`raw_rows`. A statement SQLAlchemy would have to process (bind
processors, expanding ``IN`` parameters) is not sent this way: the batch falls back to executing
it through the session. psycopg's errors are mapped to SQLAlchemy's at this boundary, so callers
see the same error tree (:func:`indexer.database.mapped_transaction`) either way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

log = logging.getLogger(__name__)

# A read: a statement and its parameters (None: none).
Query = tuple[Executable, Mapping[str, Any] | None]

# id(statement) → (statement, compiled form, whether it can be sent raw). The statement is kept
# so that its id cannot be reused by another object while the entry lives. The statements passed
# here are module-level constants or cached per shape; a caller building a statement per call would
# only refill the cache, which is emptied past MAX_COMPILED entries rather than grow.
_COMPILED: dict[tuple[int, str], tuple[Executable, Any, bool]] = {}
MAX_COMPILED = 256


def _compiled(stmt: Executable, dialect: Dialect) -> tuple[Any, bool]:
    key = (id(stmt), dialect.name)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is stmt:
        return hit[1], hit[2]
    compiled: Any = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
    plain = (
        not compiled.post_compile_params
        and not compiled.literal_execute_params
        and not compiled._bind_processors  # no public view of "needs processing"
    )
    if len(_COMPILED) >= MAX_COMPILED:
        _COMPILED.clear()
    _COMPILED[key] = (stmt, compiled, plain)
    return compiled, plain


def raw_rows(s: Session, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """The DB-API tuples of a Core statement run through the session: the compiled statement is
    still cached and the parameters bound by SQLAlchemy, but the rows skip the Row objects and
    result processors (the callers' selects read strings, integers and one boolean, which need no
    processing other than ``bool()`` on SQLite)."""
    result = cast(CursorResult[Any], s.execute(stmt, params))
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def fetch_many(s: Session, reads: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
    """The rows of every read, in order; on PostgreSQL the plain reads in one round trip."""
    conn = s.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql" or len(reads) < 2:
        return [raw_rows(s, stmt, params) for stmt, params in reads]
    out: list[list[tuple[Any, ...]] | None] = [None] * len(reads)
    batch: list[tuple[int, str, dict[str, Any]]] = []
    for k, (stmt, params) in enumerate(reads):
        compiled, plain = _compiled(stmt, dialect)
        if plain:
            # by name, bindparams' own values included
            batch.append((k, compiled.string, dict(compiled.construct_params(dict(params or {})))))
    if len(batch) >= 2:
        _pipelined(conn.connection.driver_connection, batch, out)
    for k, (stmt, params) in enumerate(reads):
        if out[k] is None:
            out[k] = raw_rows(s, stmt, params)
    return [rows if rows is not None else [] for rows in out]


def _pipelined(
    dbapi_conn: Any, batch: Sequence[tuple[int, str, dict[str, Any]]], out: list[list[tuple[Any, ...]] | None]
) -> None:
    import psycopg  # only reached on PostgreSQL, whose driver is psycopg 3 (indexer.database)

    failed: tuple[str, dict[str, Any]] = ("", {})  # the statement an error is reported with
    try:
        with dbapi_conn.pipeline():
            cursors = []
            for _, sql, params in batch:
                failed = (sql, params)
                cur = dbapi_conn.cursor()
                cur.execute(sql, params)
                cursors.append(cur)
            # The first fetch syncs the pipeline: every queued statement runs, results arrive.
            for (k, sql, params), cur in zip(batch, cursors, strict=True):
                failed = (sql, params)
                out[k] = list(cur.fetchall())
                cur.close()
    except psycopg.Error as exc:
        raise DBAPIError.instance(failed[0], failed[1], exc, psycopg.Error) from exc
