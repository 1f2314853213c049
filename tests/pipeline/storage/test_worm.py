"""WORM evidence against moto's S3 server (and the local directory): object lock, legal hold,
the retention job (only expired, unheld footage goes; audit rows written), capacity alerts."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error
from sqlalchemy import Engine, text

from domain.types import (
    UTC,
    ClockSource,
    ObservationSource,
    SegmentRecord,
    StreamInfo,
    segment_key,
    sidecar_key,
)
from indexer.audit import AuditLog
from indexer.case_records import NewCase, NewObservation, NewSubject
from indexer.case_store import CaseStore
from indexer.models import to_us
from indexer.segment_store import SegmentStore
from pipeline.ops.health_alerts import AlertBook
from pipeline.retention import (
    ALERT_CAPACITY,
    CapacityWatch,
    LegalHolds,
    RetentionJob,
    check_capacity,
)
from pipeline.settings import RetentionConfig
from pipeline.storage import Storage
from pipeline.storage.worm import ObjectLocked, RetentionPolicy, WormLocalStorage, WormS3Storage
from recorders.clock import SystemClock
from tests.support.auth import AUDIT_KEY
from tests.support.s3server import S3Server

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)  # past the 180 days of a waiting room, inside the interrogation 3650


class ShortLocks(RetentionPolicy):
    """Storage locks of seconds (the job's decisions still use the configured days); keys of
    ``long_prefix`` cameras keep a lock of a day."""

    def __init__(self, seconds: float, long_prefix: str = "\0") -> None:
        super().__init__(RetentionConfig(object_lock=True), {})
        self.seconds = seconds
        self.long_prefix = long_prefix

    def retain_until(self, key: str, now: datetime | None = None) -> datetime:
        if key.startswith(self.long_prefix):
            return datetime.now(UTC) + timedelta(days=1)
        return datetime.now(UTC) + timedelta(seconds=self.seconds)


def _s3(server: S3Server, policy: RetentionPolicy) -> WormS3Storage:
    return WormS3Storage(
        server.endpoint,
        f"w-{uuid.uuid4().hex[:12]}",
        server.access_key,
        server.secret_key,
        server.region,
        policy=policy,
    )


def _file(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / f"{uuid.uuid4().hex}.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _raw_client(server: S3Server) -> Minio:
    return Minio(
        server.endpoint.split("//", 1)[1],
        server.access_key,
        server.secret_key,
        secure=False,
        region=server.region,
    )


@pytest.mark.integration  # moto's S3 server
def test_s3_locked_object_cannot_be_deleted_or_overwritten(s3_server: S3Server, tmp_path: Path) -> None:
    storage = _s3(s3_server, ShortLocks(3600))
    path, sha = _file(tmp_path, b"evidence " * 100)
    put = storage.put_file("cam/a.ts", path, sha)
    storage.verify("cam/a.ts", put.size, sha)
    until = storage.retain_until("cam/a.ts")
    assert until is not None and until > datetime.now(UTC) + timedelta(minutes=50)
    with pytest.raises(ObjectLocked):
        storage.delete("cam/a.ts")
    other, other_sha = _file(tmp_path, b"tampered " * 100)
    with pytest.raises(ObjectLocked):
        storage.put_file("cam/a.ts", other, other_sha)
    # The server itself refuses to delete the locked version (not only our class).
    raw = _raw_client(s3_server)
    version = raw.stat_object(storage.bucket, "cam/a.ts").version_id
    with pytest.raises(S3Error, match="AccessDenied"):
        raw.remove_object(storage.bucket, "cam/a.ts", version_id=version)
    storage.verify("cam/a.ts", put.size, sha)  # still there, unchanged


@pytest.mark.integration  # moto's S3 server
def test_s3_legal_hold_set_released_and_expiry(s3_server: S3Server, tmp_path: Path) -> None:
    storage = _s3(s3_server, ShortLocks(1.5))
    path, sha = _file(tmp_path, b"held " * 50)
    storage.put_file("cam/h.ts", path, sha)
    storage.set_legal_hold("cam/h.ts", True)
    assert storage.legal_hold("cam/h.ts")
    time.sleep(2.0)  # retention over: only the hold keeps it now
    with pytest.raises(ObjectLocked, match="legal hold"):
        storage.delete("cam/h.ts")
    raw = _raw_client(s3_server)
    version = raw.stat_object(storage.bucket, "cam/h.ts").version_id
    with pytest.raises(S3Error, match="AccessDenied"):
        raw.remove_object(storage.bucket, "cam/h.ts", version_id=version)
    storage.set_legal_hold("cam/h.ts", False)
    assert not storage.legal_hold("cam/h.ts")
    storage.delete("cam/h.ts")
    assert not storage.exists("cam/h.ts")
    assert not [o for o in raw.list_objects(storage.bucket, include_version=True)]  # every version gone


@pytest.mark.integration  # waits 2 s for a lock to run out
def test_local_storage_enforces_the_same_rules(tmp_path: Path) -> None:
    storage = WormLocalStorage(tmp_path / "store", ShortLocks(1.5, long_prefix="long/"))
    path, sha = _file(tmp_path, b"local " * 40)
    storage.put_file("long/a.ts", path, sha)
    storage.put_file("short/b.ts", path, sha)
    assert list(storage.list("")) == ["long/a.ts", "short/b.ts"]  # markers are hidden
    other, other_sha = _file(tmp_path, b"changed " * 40)
    with pytest.raises(ObjectLocked):
        storage.put_file("long/a.ts", other, other_sha)
    with pytest.raises(ObjectLocked):
        storage.delete("long/a.ts")
    storage.put_file("long/a.ts", path, sha)  # the same content again is fine (idempotent)
    storage.set_legal_hold("short/b.ts", True)
    time.sleep(2.0)
    with pytest.raises(ObjectLocked, match="legal hold"):
        storage.delete("short/b.ts")
    storage.set_legal_hold("short/b.ts", False)
    storage.delete("short/b.ts")
    assert not storage.exists("short/b.ts")
    with pytest.raises(ObjectLocked):
        storage.delete("long/a.ts")


def _segment(camera: str, start: datetime, seq: int) -> SegmentRecord:
    key = segment_key(camera, start, seq)
    data = f"{key}".encode() * 20
    return SegmentRecord(
        camera_id=camera,
        run_id="r1",
        seq=seq,
        start=start,
        end=start + timedelta(seconds=10),
        storage_key=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        prev_sha256=None,
        clock_source=ClockSource.RECEIPT,
        stream=StreamInfo("h264", 640, 360),
    )


def _store_segment(storage: Storage, store: SegmentStore, rec: SegmentRecord, tmp_path: Path) -> None:
    media, sha = _file(tmp_path, f"{rec.storage_key}".encode() * 20)
    assert sha == rec.sha256
    storage.put_file(rec.storage_key, media, rec.sha256)
    side = json.dumps(rec.to_json()).encode()
    side_path, side_sha = _file(tmp_path, side)
    storage.put_file(sidecar_key(rec.storage_key), side_path, side_sha)
    store.add_segment(rec)


def _chain_ok(engine: Engine) -> None:
    assert AuditLog(engine, AUDIT_KEY).verify().ok


@pytest.mark.integration  # moto's S3 server
def test_retention_job_deletes_only_expired_unheld_footage(
    s3_server: S3Server, tmp_path: Path, engine: Engine
) -> None:
    store = SegmentStore(engine)
    store.sync_rooms(
        [
            ("wait-1", "候问室1", "waiting", [("w1", "w1", "rtsp://h/w1")]),
            ("wait-2", "候问室2", "waiting", [("w2", "w2", "rtsp://h/w2")]),
            ("int-1", "讯问室1", "interrogation", [("i1", "i1", "rtsp://h/i1")]),
        ]
    )
    policy = ShortLocks(1.0, long_prefix="w2/")
    storage = _s3(s3_server, policy)
    expired = _segment("w1", OLD, 1)  # waiting, 200 days: goes
    held = _segment("w1", OLD + timedelta(hours=1), 2)  # waiting, 200 days, the case's footage: held
    interrogation = _segment("i1", OLD, 1)  # interrogation, 200 days: kept (3650 days)
    recent = _segment("w1", NOW - timedelta(days=10), 3)  # waiting, 10 days: kept
    locked = _segment("w2", OLD, 1)  # expired by the index, but storage still locks it: refused
    for rec in (expired, held, interrogation, recent, locked):
        _store_segment(storage, store, rec, tmp_path)

    cases = CaseStore(engine)
    case, _ = cases.create_case(NewCase("A2026-1", "测试案件", "盗窃"))
    subject, _ = cases.create_subject(NewSubject(case.id, "张三", "suspect"))
    cases.add_observations(
        [
            NewObservation(
                "o1",
                "wait-1",
                OLD + timedelta(minutes=30),
                ObservationSource.WRISTBAND,
                subject_id=subject.id,
            ),
            NewObservation(
                "o2", "int-1", OLD + timedelta(hours=2), ObservationSource.WRISTBAND, subject_id=subject.id
            ),
        ]
    )
    audit = AuditLog(engine, AUDIT_KEY)
    holds = LegalHolds(engine, storage, audit)
    hold = holds.place(case.id, "法制员", reason="court order")
    assert held.storage_key in hold.keys and sidecar_key(held.storage_key) in hold.keys
    assert expired.storage_key not in hold.keys and recent.storage_key not in hold.keys
    assert storage.legal_hold(held.storage_key)

    time.sleep(1.5)  # storage locks of all but w2 have run out
    job = RetentionJob(engine, storage, RetentionPolicy(RetentionConfig(object_lock=True), {}), audit)
    dry = job.run(dry_run=True)
    assert sorted(dry.deleted) == sorted([expired.storage_key, locked.storage_key])
    assert storage.exists(expired.storage_key)

    report = job.run()
    assert report.deleted == [expired.storage_key]
    assert [k for k, _ in report.refused] == [locked.storage_key]
    assert report.held == 1
    assert not storage.exists(expired.storage_key) and not storage.exists(sidecar_key(expired.storage_key))
    for rec in (held, interrogation, recent, locked):
        assert storage.exists(rec.storage_key)
    with engine.connect() as conn:
        keys = set(conn.execute(text("SELECT storage_key FROM segments")).scalars())
        assert keys == {r.storage_key for r in (held, interrogation, recent, locked)}
        # the coverage runs were repaired after the delete: none dirty, none over the deleted footage
        assert conn.execute(text("SELECT count(*) FROM segment_runs WHERE dirty")).scalar_one() == 0
        w1_runs = conn.execute(
            text("SELECT start_us, end_us FROM segment_runs WHERE camera_id = 'w1' ORDER BY start_us")
        ).all()
        assert [tuple(r) for r in w1_runs] == [(to_us(r.start), to_us(r.end)) for r in (held, recent)]
        rows = conn.execute(text("SELECT action, object FROM audit_log ORDER BY seq")).all()
    assert [tuple(r) for r in rows] == [
        ("legal_hold.place", f"case:{case.id}"),
        ("retention.delete", f"segment:{expired.storage_key}"),
        ("retention.run", "storage"),
    ]
    _chain_ok(engine)

    holds.release(hold.hold_id, "法制员")
    assert not storage.legal_hold(held.storage_key)
    assert job.run().deleted == [held.storage_key]  # released and expired: now it goes
    _chain_ok(engine)


def test_capacity_alert(tmp_path: Path) -> None:
    storage = WormLocalStorage(tmp_path / "store", ShortLocks(1))
    alerts = AlertBook(SystemClock())
    assert check_capacity(storage, RetentionConfig(alert_used_fraction=1.0), alerts) is not None
    assert not alerts.open_alerts()
    check_capacity(storage, RetentionConfig(alert_used_fraction=0.0001), alerts)
    assert [a.kind for a in alerts.open_alerts()] == [ALERT_CAPACITY]
    # the running services check on their own
    watched = AlertBook(SystemClock())
    watch = CapacityWatch(
        storage, RetentionConfig(alert_used_fraction=0.0001, capacity_check_seconds=0.05), watched
    )
    watch.start()
    try:
        deadline = time.monotonic() + 10
        while not watched.open_alerts() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watch.stop()
    assert [a.kind for a in watched.open_alerts()] == [ALERT_CAPACITY]
    assert watch.last_fraction is not None and 0 < watch.last_fraction <= 1


@pytest.mark.integration  # `vaudit retention` subprocesses: ~4 s
def test_retention_commands(tmp_path: Path) -> None:
    import subprocess

    from tests.support.centre_files import CamSpec, write_centre
    from tests.support.vaudit_proc import VAUDIT

    db = f"sqlite:///{tmp_path / 'index.db'}"
    config = write_centre(
        tmp_path / "centre.toml",
        [CamSpec("w1", "wait-1", "waiting", "rtsp://127.0.0.1:1/w1")],
        db,
        extra="[retention]\nobject_lock = true\ndefault_days = 180\n",
    )

    def vaudit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VAUDIT, *args, "--config", str(config)], capture_output=True, text=True, timeout=60
        )

    dry = vaudit("retention", "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 0 segment(s)" in dry.stderr
    run = vaudit("retention", "run")
    assert run.returncode == 0 and "deleted 0 segment(s)" in run.stderr, run.stderr
    missing = vaudit("retention", "hold", "--case", "NO-SUCH-CASE")
    assert missing.returncode == 1 and "no case" in missing.stderr
