"""The audit trail's group commit: concurrent appends share transactions, every caller gets its own
committed row, the chain stays whole, and a failed commit fails every caller of that batch."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from domain.errors import IndexStoreError
from indexer.audit import AuditLog, AuditRow
from tests.support.auth import AUDIT_KEY


def _count_commits(engine: Engine) -> list[int]:
    commits = [0]

    def on_commit(_conn: Any) -> None:
        commits[0] += 1

    event.listen(engine, "commit", on_commit)
    return commits


def test_concurrent_appends_are_committed_together_and_chained(engine: Engine) -> None:
    audit = AuditLog(engine, AUDIT_KEY)
    audit.append("admin", "setup", "centre")  # the first row, alone
    commits = _count_commits(engine)
    callers = 24
    start = threading.Barrier(callers)

    def one(i: int) -> AuditRow:
        start.wait()
        return audit.append(f"user{i}", "playback", f"camera:cam-{i}", "10.0.0.1", {"i": i})

    with ThreadPoolExecutor(callers) as pool:
        rows = list(pool.map(one, range(callers)))

    stored = {r.seq: r for r in audit.rows(limit=1000)}
    assert len(stored) == callers + 1
    assert sorted(r.seq for r in rows) == list(range(2, callers + 2))  # no seq twice, none skipped
    for row in rows:  # what each caller got back is what was committed
        assert stored[row.seq] == row
        assert row.detail is not None and row.object == f"camera:cam-{row.detail['i']}"
    assert audit.verify().ok
    # Grouped: fewer transactions than rows (one commit per row would be `callers`).
    assert 1 <= commits[0] < callers


def test_a_failed_commit_fails_every_caller_and_writes_nothing(engine: Engine) -> None:
    audit = AuditLog(engine, AUDIT_KEY)
    audit.append("admin", "setup", "centre")
    with engine.begin() as conn:  # an attacker or a broken disk: the table refuses inserts
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                    " LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
                )
            )
    callers = 6
    start = threading.Barrier(callers)

    def one(i: int) -> str:
        start.wait()
        try:
            audit.append(f"user{i}", "playback", "camera:x")
        except IndexStoreError as exc:
            return exc.message
        return "appended"

    with ThreadPoolExecutor(callers) as pool:
        outcomes = list(pool.map(one, range(callers)))
    assert all("cannot append to the audit trail" in o for o in outcomes), outcomes
    assert audit.count() == 1
    assert audit.verify().ok


@pytest.mark.parametrize("n", [1, 3])
def test_sequential_appends_chain_one_after_another(engine: Engine, n: int) -> None:
    audit = AuditLog(engine, AUDIT_KEY)
    rows = [audit.append("u", "search", f"q{i}") for i in range(n)]
    assert [r.seq for r in rows] == list(range(1, n + 1))
    assert rows[0].prev_hash is None
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
