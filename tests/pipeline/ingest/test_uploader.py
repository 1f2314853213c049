"""SpoolUploader against real components: spool files on disk, a local store or moto's S3 server."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.errors import IntegrityError
from domain.types import (
    ClockSource,
    GapCause,
    GapRecord,
    SegmentRecord,
    StreamInfo,
    gap_key,
    segment_key,
    sidecar_key,
)
from pipeline.ingest.uploader import SpoolUploader
from pipeline.settings import UploadConfig
from pipeline.storage import LocalStorage, Storage, StoredObject
from tests.support.s3server import S3Server, storage

__all__ = ["storage"]  # the fixture, used by name

T0 = datetime(2024, 5, 6, 8, 0, 0, tzinfo=UTC)
STREAM = StreamInfo("h264", 704, 576, "pcm_alaw", 8000, 1)
FAST = UploadConfig(retry_initial_seconds=0.05, retry_max_seconds=0.5, workers=3)


def make_segment(spool: Path, camera: str, seq: int, size: int = 3000) -> SegmentRecord:
    """What the recorder leaves for a closed segment: media first, then its sidecar."""
    start = T0 + timedelta(seconds=10 * seq)
    key = segment_key(camera, start, seq)
    data = os.urandom(size)
    media = spool / key
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_bytes(data)
    record = SegmentRecord(
        camera_id=camera,
        run_id="run-1",
        seq=seq,
        start=start,
        end=start + timedelta(seconds=10),
        storage_key=key,
        size=size,
        sha256=hashlib.sha256(data).hexdigest(),
        prev_sha256=None,
        clock_source=ClockSource.RTCP,
        stream=STREAM,
        packets=250,
    )
    _atomic_json(spool / sidecar_key(key), record.to_json())
    return record


def _atomic_json(path: Path, data: dict[str, object]) -> None:
    """As the recorder writes sidecars (temp file, then rename): the uploader never sees half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.rename(path)


def make_gap(spool: Path, camera: str, n: int) -> GapRecord:
    start = T0 + timedelta(minutes=30 + n)
    gap = GapRecord(camera, start, start + timedelta(seconds=7), GapCause.DISCONNECT, "camera unreachable")
    path = spool / gap_key(gap)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_json(path, gap.to_json())
    return gap


def record_key(record: SegmentRecord | GapRecord) -> str:
    return sidecar_key(record.storage_key) if isinstance(record, SegmentRecord) else gap_key(record)


def spool_files(spool: Path) -> set[str]:
    return {p.relative_to(spool).as_posix() for p in spool.rglob("*") if p.is_file()}


class Index:
    """on_stored: records what it was handed; raises while ``down``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[SegmentRecord | GapRecord] = []
        self.calls = 0
        self.down = False

    def __call__(self, record: SegmentRecord | GapRecord) -> None:
        with self.lock:
            self.calls += 1
            if self.down:
                raise RuntimeError("index database unreachable")
            self.records.append(record)

    def keys(self) -> list[str]:
        with self.lock:
            return [record_key(r) for r in self.records]


class Alerts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, str]] = []

    def __call__(self, kind: str, message: str) -> None:
        with self.lock:
            self.items.append((kind, message))

    def kinds(self) -> list[str]:
        with self.lock:
            return [k for k, _ in self.items]


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def uploaders() -> Iterator[list[SpoolUploader]]:
    made: list[SpoolUploader] = []
    yield made
    for uploader in made:
        assert uploader.stop(15), "uploader threads did not stop"


@pytest.fixture
def run(uploaders: list[SpoolUploader]) -> Callable[..., SpoolUploader]:
    def start(spool: Path, storage: Storage, index: Index, alerts: Alerts, **kw: Any) -> SpoolUploader:
        cfg = kw.pop("cfg", FAST)
        uploader = SpoolUploader(spool, storage, index, cfg, alerts, **kw)
        uploaders.append(uploader)
        uploader.start()
        return uploader

    return start


def assert_stored(storage: Storage, spool_copy: dict[str, bytes], records: list[Any]) -> None:
    for record in records:
        if isinstance(record, SegmentRecord):
            storage.verify(record.storage_key, record.size, record.sha256)
        key = record_key(record)
        raw = spool_copy[key]
        storage.verify(key, len(raw), hashlib.sha256(raw).hexdigest())
        with storage.open(key) as fh:
            assert fh.read() == raw


def snapshot(spool: Path) -> dict[str, bytes]:
    return {rel: (spool / rel).read_bytes() for rel in spool_files(spool)}


def test_drains_spool_and_indexes_each_record_once(
    spool: Path, storage: Storage, run: Callable[..., SpoolUploader]
) -> None:
    records: list[Any] = [make_segment(spool, cam, seq) for cam in ("cam-a", "cam-b") for seq in range(1, 5)]
    records += [make_gap(spool, "cam-a", 1), make_gap(spool, "cam-b", 2)]
    # what must stay: chain state, a segment still open, a tmp file of an atomic write
    for cam in ("cam-a", "cam-b"):
        (spool / cam / "state.json").write_text("{}")
    open_key = segment_key("cam-a", T0 + timedelta(hours=1), 99)
    (spool / open_key).write_bytes(b"growing")
    (spool / open_key.replace(".ts", ".partial.json")).write_text('{"kind": "segment"}')
    (spool / "cam-a" / ".state.json.tmp").write_text("{")
    keep = {"cam-a/state.json", "cam-b/state.json", open_key, open_key.replace(".ts", ".partial.json")}
    keep.add("cam-a/.state.json.tmp")
    copy = snapshot(spool)
    index, alerts = Index(), Alerts()

    uploader = run(spool, storage, index, alerts)
    assert uploader.drain(60)

    assert sorted(index.keys()) == sorted(record_key(r) for r in records)  # each once, no duplicates
    assert {record_key(r): r for r in index.records} == {record_key(r): r for r in records}
    assert_stored(storage, copy, records)
    assert spool_files(spool) == keep
    stats = uploader.stats()
    assert (stats.uploaded, stats.pending_files, stats.storage_ok) == (10, 0, True)
    assert stats.spool_bytes == sum((spool / k).stat().st_size for k in keep)
    assert alerts.items == []


def test_oldest_first(spool: Path, tmp_path: Path, run: Callable[..., SpoolUploader]) -> None:
    records = [make_segment(spool, "cam", seq) for seq in range(1, 6)]
    now = time.time()
    for age, record in enumerate(records):  # seq 1 is the newest file on disk, seq 5 the oldest
        os.utime(spool / sidecar_key(record.storage_key), (now - age, now - age))
    index = Index()
    uploader = run(spool, LocalStorage(tmp_path / "store"), index, Alerts(), cfg=UploadConfig(workers=1))
    assert uploader.drain(30)
    assert [r.seq for r in index.records if isinstance(r, SegmentRecord)] == [5, 4, 3, 2, 1]


def test_notify_wakes_the_uploader(spool: Path, tmp_path: Path, run: Callable[..., SpoolUploader]) -> None:
    index = Index()
    uploader = run(spool, LocalStorage(tmp_path / "store"), index, Alerts(), rescan_seconds=120)
    time.sleep(0.3)  # first scan done: next periodic scan only in two minutes
    make_segment(spool, "cam", 1)
    uploader.notify()
    wait_for(lambda: len(index.records) == 1, 5, "notify() to trigger the upload")


def test_index_failure_keeps_files_and_retries(
    spool: Path, storage: Storage, run: Callable[..., SpoolUploader]
) -> None:
    records = [make_segment(spool, "cam", seq) for seq in range(1, 4)]
    copy = snapshot(spool)
    index, alerts = Index(), Alerts()
    index.down = True
    uploader = run(spool, storage, index, alerts)
    wait_for(lambda: index.calls >= 9, 20, "on_stored retried three times per record")
    assert spool_files(spool) == set(copy)  # nothing removed while the index refuses
    stats = uploader.stats()
    assert stats.pending_files == 3 and stats.failures >= 9 and stats.uploaded == 0
    assert stats.storage_ok and "index" in (stats.last_error or "")
    index.down = False
    assert uploader.drain(30)
    assert sorted(index.keys()) == sorted(record_key(r) for r in records)
    assert_stored(storage, copy, records)
    assert spool_files(spool) == set()
    assert alerts.items == []


@pytest.mark.integration
def test_s3_hung_for_20_seconds_loses_nothing(
    spool: Path,
    s3_server_private: S3Server,
    make_s3: Any,
    run: Callable[..., SpoolUploader],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The outage is a SIGSTOP, not a stop/start: moto keeps objects in memory only, so a restarted
    # server would have forgotten the segments stored before the outage.
    storage = make_s3(s3_server_private, connect_timeout=1.0, read_timeout=1.0)
    index, alerts = Index(), Alerts()
    cfg = UploadConfig(retry_initial_seconds=0.2, retry_max_seconds=1.0, workers=2)
    uploader = run(spool, storage, index, alerts, cfg=cfg)
    records = [make_segment(spool, "cam", seq, size=20_000) for seq in (1, 2)]
    copy = snapshot(spool)
    uploader.notify()
    assert uploader.drain(20)
    caplog.set_level(logging.DEBUG, logger="pipeline.ingest.uploader")

    s3_server_private.pause()
    try:
        for seq in range(3, 23):  # one segment a second, for 20 s
            records.append(make_segment(spool, "cam", seq, size=20_000))
            uploader.notify()
            time.sleep(1.0)
        copy.update(snapshot(spool))
        stats = uploader.stats()
        assert stats.pending_files == 20 and not stats.storage_ok
        assert alerts.kinds() == ["storage_unavailable"]
        assert len(index.records) == 2
    finally:
        s3_server_private.resume()

    assert uploader.drain(60)
    assert alerts.kinds() == ["storage_unavailable", "storage_restored"]
    assert sorted(index.keys()) == sorted(record_key(r) for r in records)
    assert_stored(storage, copy, records)
    fresh = make_s3(s3_server_private, bucket=storage.bucket)  # re-reads every object
    assert_stored(fresh, copy, records)
    assert spool_files(spool) == set()
    assert uploader.stats().storage_ok
    outage_errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "pipeline.ingest.uploader"
    ]
    assert len(outage_errors) == 1, [r.getMessage() for r in outage_errors]


@pytest.mark.integration
def test_s3_refused_then_wiped_endpoint(
    spool: Path, s3_server_private: S3Server, make_s3: Any, run: Callable[..., SpoolUploader]
) -> None:
    storage = make_s3(s3_server_private, connect_timeout=1.0, read_timeout=2.0)
    s3_server_private.stop()  # connection refused
    records = [make_segment(spool, "cam", seq) for seq in range(1, 4)]
    copy = snapshot(spool)
    index, alerts = Index(), Alerts()
    uploader = run(spool, storage, index, alerts)
    wait_for(lambda: alerts.kinds() == ["storage_unavailable"], 10, "the outage alert")
    time.sleep(1.0)
    assert spool_files(spool) == set(copy)
    assert uploader.stats().failures <= 12  # backing off (0.05 s doubling to 0.5 s), not hammering
    s3_server_private.start()  # an empty server: the bucket must be created again
    wait_for(lambda: len(index.records) == 3, 30, "the spool to drain after the endpoint came back")
    assert alerts.kinds() == ["storage_unavailable", "storage_restored"]
    assert_stored(storage, copy, records)


def test_crash_between_upload_and_delete_is_finished(
    spool: Path, storage: Storage, run: Callable[..., SpoolUploader]
) -> None:
    done = make_segment(spool, "cam", 1)  # media uploaded and deleted from the spool, sidecar left
    media = spool / done.storage_key
    storage.put_file(done.storage_key, media, done.sha256)
    media.unlink()
    both = make_segment(spool, "cam", 2)  # media and sidecar both uploaded, then the crash
    storage.put_file(both.storage_key, spool / both.storage_key, both.sha256)
    sidecar = spool / sidecar_key(both.storage_key)
    storage.put_file(sidecar_key(both.storage_key), sidecar, hashlib.sha256(sidecar.read_bytes()).hexdigest())
    copy = snapshot(spool)
    index, alerts = Index(), Alerts()
    uploader = run(spool, storage, index, alerts)
    assert uploader.drain(30)
    assert sorted(index.keys()) == sorted(record_key(r) for r in (done, both))
    storage.verify(done.storage_key, done.size, done.sha256)
    assert_stored(storage, copy, [both])
    assert spool_files(spool) == set()
    assert alerts.items == []


def test_missing_media_never_stored_is_quarantined(
    spool: Path, storage: Storage, run: Callable[..., SpoolUploader]
) -> None:
    lost = make_segment(spool, "cam", 1)
    (spool / lost.storage_key).unlink()
    ok = make_segment(spool, "cam", 2)
    index, alerts = Index(), Alerts()
    uploader = run(spool, storage, index, alerts)
    assert uploader.drain(30)
    assert index.keys() == [record_key(ok)]
    assert alerts.kinds() == ["integrity"] and lost.storage_key in alerts.items[0][1]
    assert spool_files(spool) == {f"quarantine/{sidecar_key(lost.storage_key)}"}
    assert not storage.exists(lost.storage_key) and not storage.exists(sidecar_key(lost.storage_key))
    assert uploader.stats().quarantined == 1


def test_malformed_sidecars_are_quarantined(
    spool: Path, tmp_path: Path, run: Callable[..., SpoolUploader]
) -> None:
    (spool / "cam").mkdir()
    (spool / "cam" / "broken.json").write_text('{"kind": "segment", "camera_')
    (spool / "cam" / "odd.json").write_text('{"kind": "tape"}')
    elsewhere = make_segment(spool, "cam", 1)  # a valid record, but filed under another name
    os.rename(spool / sidecar_key(elsewhere.storage_key), spool / "cam" / "moved.json")
    good = make_segment(spool, "cam", 2)
    index, alerts = Index(), Alerts()
    uploader = run(spool, LocalStorage(tmp_path / "store"), index, alerts)
    assert uploader.drain(30)
    assert index.keys() == [record_key(good)]
    assert alerts.kinds() == ["malformed_sidecar"] * 3
    quarantined = {"quarantine/cam/broken.json", "quarantine/cam/odd.json", "quarantine/cam/moved.json"}
    assert spool_files(spool) == quarantined | {elsewhere.storage_key}


def test_media_not_matching_its_record_is_quarantined_not_stored(
    spool: Path, storage: Storage, run: Callable[..., SpoolUploader]
) -> None:
    bad = make_segment(spool, "cam", 1)
    media = spool / bad.storage_key
    data = media.read_bytes()
    media.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # bit rot after the recorder hashed it
    index, alerts = Index(), Alerts()
    uploader = run(spool, storage, index, alerts)
    assert uploader.drain(30)
    assert index.records == [] and alerts.kinds() == ["integrity"]
    assert not storage.exists(bad.storage_key)
    assert spool_files(spool) == {
        f"quarantine/{bad.storage_key}",
        f"quarantine/{sidecar_key(bad.storage_key)}",
    }


class FlakyStore(LocalStorage):
    """Stored media fail verification while ``corrupt`` is set; counts concurrent puts per key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.corrupt = False
        self.lock = threading.Lock()
        self.busy: set[str] = set()
        self.overlaps: list[str] = []

    def put_file(self, key: str, path: Path, sha256: str) -> StoredObject:
        with self.lock:
            if key in self.busy:
                self.overlaps.append(key)
            self.busy.add(key)
        try:
            time.sleep(0.01)
            return super().put_file(key, path, sha256)
        finally:
            with self.lock:
                self.busy.discard(key)

    def verify(self, key: str, size: int, sha256: str) -> None:
        if self.corrupt and key.endswith(".ts"):  # only the media: its sidecar would verify
            raise IntegrityError(f"stored {key} does not verify")
        super().verify(key, size, sha256)


def test_nothing_leaves_the_spool_unverified(
    spool: Path, tmp_path: Path, run: Callable[..., SpoolUploader]
) -> None:
    records = [make_segment(spool, "cam", seq) for seq in range(1, 4)]
    before = spool_files(spool)
    store = FlakyStore(tmp_path / "store")
    store.corrupt = True
    index = Index()
    uploader = run(spool, store, index, Alerts())
    wait_for(lambda: uploader.stats().failures >= 6, 10, "verification failures")
    assert spool_files(spool) == before and index.calls == 0
    store.corrupt = False
    assert uploader.drain(30)
    assert sorted(index.keys()) == sorted(record_key(r) for r in records)


def test_each_file_is_handled_by_one_worker(
    spool: Path, tmp_path: Path, run: Callable[..., SpoolUploader]
) -> None:
    records = [make_segment(spool, f"cam{c}", seq, size=500) for c in range(3) for seq in range(1, 11)]
    store = FlakyStore(tmp_path / "store")
    index = Index()
    uploader = run(spool, store, index, Alerts(), cfg=UploadConfig(workers=8))
    for _ in range(20):  # notify storms must not hand a file to a second worker
        uploader.notify()
        time.sleep(0.005)
    assert uploader.drain(30)
    assert store.overlaps == []
    assert sorted(index.keys()) == sorted(record_key(r) for r in records)


def test_stats_before_start(spool: Path, tmp_path: Path) -> None:
    make_segment(spool, "cam", 1, size=1000)
    make_gap(spool, "cam", 1)
    (spool / "cam" / "x.partial.json").write_text("{}")
    uploader = SpoolUploader(spool, LocalStorage(tmp_path / "store"), Index(), FAST)
    stats = uploader.stats()
    assert stats.pending_files == 2
    assert stats.spool_bytes == sum(p.stat().st_size for p in spool.rglob("*") if p.is_file())
    assert stats.oldest_pending_age is not None and stats.oldest_pending_age >= 0
    assert stats.storage_ok and stats.uploaded == 0
    assert not uploader.drain(0.2)  # not started: nothing moves
