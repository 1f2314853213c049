"""The audit trail against someone with write access to the database (issue 16, point 4): they
drop the append-only triggers, edit a row and recompute the plain hashes, or cut rows off the
end. ``vaudit audit verify`` finds each, naming the row, on SQLite and PostgreSQL; rows from
before the key still verify; anchors are signed with the centre's key and forged ones are named.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from domain.types import AUDIT_ANCHOR_PREFIX
from exporter.signing import generate_signing_key
from indexer.audit import AuditLog, entry_hash, load_audit_key
from indexer.database import create_engine_for, upgrade
from pipeline.settings import Settings, load_settings
from pipeline.storage import LocalStorage
from pipeline.storage.anchors import AnchorBook, AnchorWriter, audit_log, custody_heads, verify_audit
from tests.support.centre_files import write_keyed_centre
from tests.support.vaudit_proc import VAUDIT

ROWS = 12


def _verify(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VAUDIT, "audit", "verify", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _drop_triggers(conn: object, engine: Engine) -> None:
    """What the attacker does first: the append-only triggers refuse UPDATE and DELETE."""
    if engine.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))  # type: ignore[attr-defined]
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))  # type: ignore[attr-defined]
    else:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))  # type: ignore[attr-defined]


def _rehash_plain(engine: Engine, first: int, unkey: bool, last: int | None = None) -> None:
    """Recompute the plain SHA-256 chain of rows ``first`` to ``last`` (None: the end), as the
    unkeyed trail was built."""
    log = AuditLog(engine)
    rows = sorted(log.rows(limit=1000), key=lambda r: r.seq)
    prev = next((r.hash for r in rows if r.seq == first - 1), None)
    with engine.begin() as conn:
        _drop_triggers(conn, engine)
        for r in rows:
            if r.seq < first or (last is not None and r.seq > last):
                continue
            new = entry_hash(prev, r.seq, r.time_us, r.user, r.action, r.object, r.client_addr, r.detail)
            conn.execute(
                text(
                    "UPDATE audit_log SET prev_hash = :p, hash = :h"
                    + (", key_id = NULL" if unkey else "")
                    + " WHERE seq = :s"
                ),
                {"p": prev, "h": new, "s": r.seq},
            )
            prev = new


@pytest.fixture
def trail(tmp_path: Path, db_url: str) -> tuple[Path, Settings, Engine, LocalStorage]:
    cfg = write_keyed_centre(tmp_path, db_url)
    settings = load_settings(cfg)
    engine = create_engine_for(db_url)
    upgrade(engine)
    storage = LocalStorage(settings.storage.path)
    log = audit_log(settings, engine)
    for n in range(ROWS):
        log.append("li", "view_case", f"case:A-{n}", "10.0.0.1", {"n": n})
    AnchorBook.for_settings(settings, storage).write(log.head())
    return cfg, settings, engine, storage


def test_untouched_trail_verifies_with_its_anchor(trail: tuple[Path, Settings, Engine, LocalStorage]) -> None:
    cfg, settings, engine, _storage = trail
    done = _verify(cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{ROWS} audit rows" in done.stderr and "1 anchor(s) agree" in done.stderr
    key = load_audit_key(settings.audit.key_file)
    assert key is not None and key.key_id in done.stderr
    assert settings.audit.key_file.stat().st_mode & 0o777 == 0o600
    engine.dispose()


@pytest.mark.parametrize("unkey", [False, True], ids=["keyed", "unkeyed"])
def test_edited_row_with_recomputed_plain_hashes_is_found(
    trail: tuple[Path, Settings, Engine, LocalStorage], unkey: bool
) -> None:
    cfg, _settings, engine, _storage = trail
    with engine.begin() as conn:
        _drop_triggers(conn, engine)
        conn.execute(text("UPDATE audit_log SET object = 'case:nothing to see' WHERE seq = 5"))
    _rehash_plain(engine, 5, unkey)
    done = _verify(cfg)
    engine.dispose()
    assert done.returncode == 1, done.stdout
    expected = "written without the audit key after keyed rows" if unkey else "does not match its keyed hash"
    assert "BROKEN: row 5" in done.stdout and expected in done.stdout, done.stdout


def test_whole_trail_rewritten_unkeyed_is_found_by_the_anchor(
    trail: tuple[Path, Settings, Engine, LocalStorage],
) -> None:
    cfg, _settings, engine, _storage = trail
    with engine.begin() as conn:
        _drop_triggers(conn, engine)
        conn.execute(text("UPDATE audit_log SET object = 'case:nothing to see' WHERE seq = 3"))
    _rehash_plain(engine, 1, unkey=True)  # as if the key had never been used
    done = _verify(cfg)
    engine.dispose()
    assert done.returncode == 1
    assert "BROKEN: row 1" in done.stdout and "the anchors say rows from 1 on were keyed" in done.stdout


@pytest.mark.parametrize("cut", [1, 5])
def test_rows_cut_off_the_end_are_found(trail: tuple[Path, Settings, Engine, LocalStorage], cut: int) -> None:
    cfg, _settings, engine, _storage = trail
    with engine.begin() as conn:
        _drop_triggers(conn, engine)
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": ROWS - cut})
    done = _verify(cfg)
    engine.dispose()
    assert done.returncode == 1
    assert f"the audit trail ends at row {ROWS - cut}" in done.stdout
    assert f"names row {ROWS}: {cut} row(s) were cut off the end" in done.stdout, done.stdout


def test_a_cut_is_found_by_an_exports_custody_when_the_anchors_are_gone(
    trail: tuple[Path, Settings, Engine, LocalStorage],
) -> None:
    cfg, settings, engine, storage = trail
    head = AuditLog(engine).head()
    export = settings.export.out_dir / "A-1-1-20261207T000000Z"
    export.mkdir(parents=True)
    custody = {
        "audit_head": {"seq": head.seq, "hash": head.hash, "keyed_from": 1, "written": "2026-12-07T00:00:00Z"}
    }
    (export / "manifest.json").write_text(json.dumps({"custody": custody}), encoding="utf-8")
    assert [p.seq for p in custody_heads(settings.export.out_dir)] == [ROWS]
    for key in list(storage.list(AUDIT_ANCHOR_PREFIX + "/")):  # a store without WORM lets them go
        (storage.root / key).unlink()
    with engine.begin() as conn:
        _drop_triggers(conn, engine)
        conn.execute(text("DELETE FROM audit_log WHERE seq > :s"), {"s": ROWS - 3})
    done = _verify(cfg)
    engine.dispose()
    assert done.returncode == 1
    assert "the chain of custody of export A-1-1-20261207T000000Z" in done.stdout
    assert "3 row(s) were cut off the end" in done.stdout


@pytest.mark.integration  # `vaudit audit verify` subprocesses: ~2.7 s
def test_forged_and_altered_anchors_are_named(
    trail: tuple[Path, Settings, Engine, LocalStorage], tmp_path: Path
) -> None:
    cfg, settings, engine, storage = trail
    # an anchor signed with another key, claiming a head far beyond the trail
    other = tmp_path / "other.pem"
    generate_signing_key(other)
    forged_settings = settings.model_copy(
        update={"export": settings.export.model_copy(update={"signing_key": other})}
    )
    head = AuditLog(engine).head()
    forged = AnchorBook.for_settings(forged_settings, storage).write(
        type(head)(head.seq + 100, "0" * 64, head.key_id, head.keyed_from)
    )
    done = _verify(cfg)
    assert done.returncode == 1
    assert (
        f"anchor {forged.storage_key}: signed by key" in done.stdout
        and "not by the centre's key" in done.stdout
    )
    (storage.root / forged.storage_key).unlink()
    # the centre's own anchor, its row number altered
    genuine = next(iter(storage.list(AUDIT_ANCHOR_PREFIX + "/")))
    path = storage.root / genuine
    doc = json.loads(path.read_text())
    doc["seq"] = ROWS + 7
    path.chmod(0o640)
    path.write_text(json.dumps(doc))
    done = _verify(cfg)
    engine.dispose()
    assert done.returncode == 1
    assert "signature does not match the manifest (the anchor was altered)" in done.stdout


@pytest.mark.integration  # `vaudit audit verify` subprocesses: ~2.4 s
def test_rows_from_before_the_key_still_verify_and_are_covered_by_the_first_keyed_row(
    tmp_path: Path, db_url: str
) -> None:
    cfg = write_keyed_centre(tmp_path, db_url)
    settings = load_settings(cfg)
    engine = create_engine_for(db_url)
    upgrade(engine)
    # three rows as the release before the key wrote them: plain SHA-256, no key id
    prev = None
    with engine.begin() as conn:
        for seq in (1, 2, 3):
            h = entry_hash(prev, seq, 1_700_000_000_000_000 + seq, "old", "view_case", "case:X", None, None)
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, time_us, user_name, action, object, prev_hash, hash) "
                    "VALUES (:s, :t, 'old', 'view_case', 'case:X', :p, :h)"
                ),
                {"s": seq, "t": 1_700_000_000_000_000 + seq, "p": prev, "h": h},
            )
            prev = h
    log = audit_log(settings, engine)  # the key is made now, on first run
    assert log.verify().ok
    for n in range(3):
        log.append("new", "view_case", f"case:Y{n}", None)
    report = log.verify()
    assert report.ok and report.keyed_from == 4 and report.rows == 6
    assert _verify(cfg).returncode == 0
    # an old row rewritten and the old rows' plain hashes recomputed: the first keyed row's hash
    # covers them (its prev_hash), so the chain breaks there
    with engine.begin() as conn:
        _drop_triggers(conn, engine)
        conn.execute(text("UPDATE audit_log SET object = 'case:Z' WHERE seq = 2"))
    _rehash_plain(engine, 2, unkey=True, last=3)
    done = _verify(cfg)
    engine.dispose()
    assert done.returncode == 1 and "BROKEN: row 4: prev_hash does not match" in done.stdout, done.stdout


def test_the_writer_anchors_only_when_the_head_moved(
    trail: tuple[Path, Settings, Engine, LocalStorage],
) -> None:
    _cfg, settings, engine, storage = trail
    log = audit_log(settings, engine)
    writer = AnchorWriter(AuditLog(engine), AnchorBook.for_settings(settings, storage), interval=3600)
    assert writer.anchor_if_moved() is None  # the fixture's anchor is at the head
    log.append("li", "search", "cases")
    anchor = writer.anchor_if_moved()
    assert anchor is not None and anchor.seq == ROWS + 1
    assert writer.anchor_if_moved() is None
    writer.stop()  # a final anchor only if something moved
    assert len(list(storage.list(AUDIT_ANCHOR_PREFIX + "/"))) == 2
    assert verify_audit(settings, engine, storage).ok
    # without the audit key nothing can be appended (an unkeyed row would read as a rewrite)
    with pytest.raises(Exception, match="without the audit key"):
        AuditLog(engine).append("x", "y", "z")
    engine.dispose()
