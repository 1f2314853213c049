"""Storage back ends against real components: a temp directory, and moto's S3 server over HTTP."""

from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from domain.errors import (
    IntegrityError,
    NotFoundError,
    SpoolError,
    StorageError,
    StorageUnavailable,
    ValidationFailed,
)
from domain.types import GapCause, GapRecord, gap_key, segment_key, sidecar_key
from pipeline.settings import StorageConfig
from pipeline.simulator.camera import free_port
from pipeline.storage import (
    LocalStorage,
    S3Storage,
    SourceMismatch,
    Storage,
    open_storage,
    validate_key,
    validate_prefix,
)
from tests.support.s3server import S3Server, storage

__all__ = ["storage"]  # the fixture, used by name

BAD_KEYS = [
    "../x",
    "/abs",
    "a/../../b",
    "a\\b",
    "a\x00b",
    "",
    "a//b",
    "./a",
    "a/",
    "a/b/..",
    ".hidden",
    "a/.b",
    "a b",
    "caméra/x.ts",
    "a/b\n",
]


def write(path: Path, data: bytes) -> tuple[Path, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_domain_keys_are_valid() -> None:
    start = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    seg = segment_key("cam-01.a", start, 42)
    gap = GapRecord("cam-01.a", start, start, GapCause.STALL)
    for key in (seg, sidecar_key(seg), gap_key(gap)):
        assert validate_key(key) == key
    for prefix in ("", "cam-01.a/", "cam-01.a/2024/0"):
        assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_key_validation_refuses_path_tricks(storage: Storage, tmp_path: Path, bad: str) -> None:
    src, sha = write(tmp_path / "src.bin", b"payload")
    with pytest.raises(ValidationFailed, match="refused"):
        storage.put_file(bad, src, sha)
    for call in (storage.open, storage.size, storage.exists, storage.delete):
        with pytest.raises(ValidationFailed):
            call(bad)
    with pytest.raises(ValidationFailed):
        storage.verify(bad, 7, sha)
    assert list(storage.list("")) == []
    # nothing was written anywhere: only the source file and the (empty) store exist
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert set(written) <= {"src.bin", "store"}


@pytest.mark.parametrize("prefix", ["../", "/x", "a//", "a/../b", "a\\"])
def test_list_refuses_bad_prefix(storage: Storage, prefix: str) -> None:
    with pytest.raises(ValidationFailed):
        list(storage.list(prefix))


def test_local_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store" / "cam").symlink_to(outside)
    src, sha = write(tmp_path / "src.bin", b"payload")
    with pytest.raises(StorageError, match="outside the storage root"):
        store.put_file("cam/x.ts", src, sha)
    with pytest.raises(StorageError):
        store.put_file("cam/deeper/x.ts", src, sha)
    assert list(outside.iterdir()) == []


def test_put_verify_open_list_delete(storage: Storage, tmp_path: Path) -> None:
    files = {
        "cam1/2024/05/06/a_00000001.ts": os.urandom(70_000),
        "cam1/2024/05/06/a_00000001.json": b'{"kind": "segment"}',
        "cam1/2024/05/07/b_00000002.ts": os.urandom(10),
        "cam2/2024/05/06/c_00000001.ts": b"",
    }
    for i, (key, data) in enumerate(files.items()):
        src, sha = write(tmp_path / "src" / f"{i}.bin", data)
        stored = storage.put_file(key, src, sha)
        assert (stored.key, stored.size, stored.sha256) == (key, len(data), sha)
        storage.verify(key, len(data), sha)
    for key, data in files.items():
        assert storage.exists(key)
        assert storage.size(key) == len(data)
        with storage.open(key) as fh:
            assert fh.read() == data
    assert list(storage.list("")) == sorted(files)
    assert list(storage.list("cam1/")) == sorted(k for k in files if k.startswith("cam1/"))
    assert list(storage.list("cam1/2024/05/06/a")) == [
        "cam1/2024/05/06/a_00000001.json",
        "cam1/2024/05/06/a_00000001.ts",
    ]
    assert list(storage.list("cam3/")) == []
    assert not storage.exists("cam1/nope.ts")
    with pytest.raises(NotFoundError):
        storage.open("cam1/nope.ts")
    with pytest.raises(NotFoundError):
        storage.size("cam1/nope.ts")
    with pytest.raises(IntegrityError, match="missing"):
        storage.verify("cam1/nope.ts", 1, hashlib.sha256(b"x").hexdigest())
    key = "cam1/2024/05/07/b_00000002.ts"
    with pytest.raises(IntegrityError):
        storage.verify(key, 11, hashlib.sha256(files[key]).hexdigest())  # wrong size
    with pytest.raises(IntegrityError):
        storage.verify(key, 10, hashlib.sha256(b"other").hexdigest())  # wrong hash
    storage.delete(key)
    storage.delete(key)  # idempotent
    assert not storage.exists(key)
    assert key not in list(storage.list(""))


def test_put_is_idempotent(storage: Storage, tmp_path: Path) -> None:
    src, sha = write(tmp_path / "a.ts", os.urandom(5000))
    first = storage.put_file("cam/a.ts", src, sha)
    second = storage.put_file("cam/a.ts", src, sha)
    assert first == second
    storage.verify("cam/a.ts", 5000, sha)
    assert list(storage.list("")) == ["cam/a.ts"]


def test_put_refuses_source_not_matching_its_hash(storage: Storage, tmp_path: Path) -> None:
    src, _ = write(tmp_path / "a.ts", b"the bytes on disk")
    with pytest.raises(SourceMismatch):
        storage.put_file("cam/a.ts", src, hashlib.sha256(b"what the recorder hashed").hexdigest())
    assert not storage.exists("cam/a.ts")
    if isinstance(storage, LocalStorage):  # hashed while copying: the refused copy is removed again
        assert [p.name for p in storage.root.rglob("*") if p.is_file()] == []


def test_local_put_of_an_unreadable_source_is_a_spool_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(SpoolError):
        storage.put_file("cam/gone.ts", tmp_path / "gone.ts", hashlib.sha256(b"").hexdigest())
    assert [p.name for p in storage.root.rglob("*") if p.is_file()] == []


def test_put_replaces_a_stored_copy_that_does_not_verify(storage: Storage, tmp_path: Path) -> None:
    bad, bad_sha = write(tmp_path / "bad.ts", b"truncated")
    good, good_sha = write(tmp_path / "good.ts", b"truncated and the rest")
    storage.put_file("cam/a.ts", bad, bad_sha)
    storage.put_file("cam/a.ts", good, good_sha)
    storage.verify("cam/a.ts", good.stat().st_size, good_sha)


def test_local_writes_are_atomic_read_only_and_leave_no_temp(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    src, sha = write(tmp_path / "a.ts", os.urandom(3 * 1024 * 1024 + 5))
    store.put_file("cam/2024/a.ts", src, sha)
    stored = tmp_path / "store" / "cam" / "2024" / "a.ts"
    assert stored.read_bytes() == src.read_bytes()
    assert stored.stat().st_mode & 0o222 == 0
    assert [p.name for p in stored.parent.iterdir()] == ["a.ts"]
    inode = stored.stat().st_ino
    store.put_file("cam/2024/a.ts", src, sha)  # identical: not rewritten
    assert stored.stat().st_ino == inode


def test_local_store_is_closed_to_other_accounts(tmp_path: Path) -> None:
    old = tmp_path / "old-store"
    old.mkdir(mode=0o755)
    old.chmod(0o755)  # a store made by an older release
    LocalStorage(old)
    assert old.stat().st_mode & 0o777 == 0o750
    store = LocalStorage(tmp_path / "store")
    src, sha = write(tmp_path / "a.ts", b"footage")
    store.put_file("cam/2024/01/a.ts", src, sha)
    root = tmp_path / "store"
    for path in [root, *root.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o750 if path.is_dir() else 0o440), path


def test_local_corrupted_file_fails_verify(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    data = os.urandom(100_000)
    src, sha = write(tmp_path / "a.ts", data)
    store.put_file("cam/a.ts", src, sha)
    stored = tmp_path / "store" / "cam" / "a.ts"
    stored.chmod(0o644)
    flipped = bytearray(data)
    flipped[50_000] ^= 0x01
    stored.write_bytes(bytes(flipped))  # same size, one bit off
    with pytest.raises(IntegrityError, match="hashes to"):
        store.verify("cam/a.ts", len(data), sha)
    stored.write_bytes(data[:-1])
    with pytest.raises(IntegrityError, match="bytes"):
        store.verify("cam/a.ts", len(data), sha)
    stored.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        store.verify("cam/a.ts", len(data), sha)


def raw_client(server: S3Server) -> Minio:
    return Minio(
        f"127.0.0.1:{server.port}",
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
        region=server.region,
    )


@pytest.mark.integration
def test_s3_single_part_etag_is_md5_and_sha256_is_metadata(
    s3_server: S3Server, s3_storage: S3Storage, tmp_path: Path
) -> None:
    data = os.urandom(6 * 1024 * 1024 + 1)  # above minio's 5 MiB default part: must still be one PUT
    src, sha = write(tmp_path / "a.ts", data)
    stored = s3_storage.put_file("cam/a.ts", src, sha)
    obj = raw_client(s3_server).stat_object(s3_storage.bucket, "cam/a.ts")
    assert obj.etag == hashlib.md5(data).hexdigest() == stored.etag
    assert obj.metadata["x-amz-meta-sha256"] == sha
    assert obj.content_type == "video/mp2t"


@pytest.mark.integration
def test_s3_multipart_object_verifies(s3_server: S3Server, make_s3: Any, tmp_path: Path) -> None:
    storage = make_s3(s3_server, part_size=5 * 1024 * 1024)
    data = os.urandom(11 * 1024 * 1024)
    src, sha = write(tmp_path / "big.ts", data)
    stored = storage.put_file("cam/big.ts", src, sha)
    assert stored.etag is not None and stored.etag.endswith("-3")
    storage.verify("cam/big.ts", len(data), sha)
    make_s3(s3_server, bucket=storage.bucket).verify("cam/big.ts", len(data), sha)  # by re-reading


@pytest.mark.integration
def test_s3_tampered_object_fails_verify(s3_server: S3Server, make_s3: Any, tmp_path: Path) -> None:
    storage = make_s3(s3_server)
    data = os.urandom(50_000)
    src, sha = write(tmp_path / "a.ts", data)
    storage.put_file("cam/a.ts", src, sha)
    storage.verify("cam/a.ts", len(data), sha)
    fresh = make_s3(s3_server, bucket=storage.bucket)  # knows no MD5: verifies by reading back
    fresh.verify("cam/a.ts", len(data), sha)
    forged = bytearray(data)
    forged[0] ^= 0xFF
    raw_client(s3_server).put_object(  # same size, same claimed sha256, different bytes
        storage.bucket, "cam/a.ts", io.BytesIO(bytes(forged)), len(forged), metadata={"sha256": sha}
    )
    with pytest.raises(IntegrityError, match="ETag"):
        storage.verify("cam/a.ts", len(data), sha)
    with pytest.raises(IntegrityError, match="hashes to"):
        make_s3(s3_server, bucket=storage.bucket).verify("cam/a.ts", len(data), sha)


@pytest.mark.integration
def test_s3_refused_endpoint_is_unavailable_quickly(make_s3: Any, tmp_path: Path) -> None:
    server = S3Server(port=free_port())  # never started: connection refused
    storage = make_s3(server, connect_timeout=1.0, read_timeout=1.0)
    src, sha = write(tmp_path / "a.ts", b"x")
    began = time.monotonic()
    with pytest.raises(StorageUnavailable):
        storage.put_file("cam/a.ts", src, sha)
    with pytest.raises(StorageUnavailable):
        storage.exists("cam/a.ts")
    assert time.monotonic() - began < 3.0


@pytest.mark.integration
def test_s3_hung_endpoint_is_unavailable_quickly_then_recovers(
    s3_server_private: S3Server, make_s3: Any, tmp_path: Path
) -> None:
    storage = make_s3(s3_server_private, connect_timeout=1.0, read_timeout=1.0)
    src, sha = write(tmp_path / "a.ts", b"x" * 1000)
    storage.put_file("cam/a.ts", src, sha)
    s3_server_private.pause()
    try:
        began = time.monotonic()
        with pytest.raises(StorageUnavailable):
            storage.verify("cam/a.ts", 1000, sha)
        assert time.monotonic() - began < 4.0  # no urllib3 retries behind our back
    finally:
        s3_server_private.resume()
    storage.verify("cam/a.ts", 1000, sha)


@pytest.mark.integration
def test_s3_bucket_recreated_after_endpoint_wiped(
    s3_server_private: S3Server, make_s3: Any, tmp_path: Path
) -> None:
    storage = make_s3(s3_server_private, connect_timeout=1.0, read_timeout=2.0)
    src, sha = write(tmp_path / "a.ts", b"abc")
    storage.put_file("cam/a.ts", src, sha)
    s3_server_private.stop()  # moto forgets everything
    with pytest.raises(StorageUnavailable):
        storage.exists("cam/a.ts")
    s3_server_private.start()
    assert not storage.exists("cam/a.ts")
    storage.put_file("cam/a.ts", src, sha)
    storage.verify("cam/a.ts", 3, sha)


def test_open_storage_local(tmp_path: Path) -> None:
    store = open_storage(StorageConfig(kind="local", path=tmp_path / "s"))
    assert isinstance(store, LocalStorage)
    src, sha = write(tmp_path / "a.ts", b"abc")
    store.put_file("c/a.ts", src, sha)
    assert (tmp_path / "s" / "c" / "a.ts").read_bytes() == b"abc"


@pytest.mark.integration
def test_open_storage_s3(s3_server: S3Server, tmp_path: Path) -> None:
    cfg = StorageConfig(
        kind="s3",
        endpoint=s3_server.endpoint,
        bucket="open-storage-test",
        access_key=s3_server.access_key,  # type: ignore[arg-type]
        secret_key=s3_server.secret_key,  # type: ignore[arg-type]
    )
    store = open_storage(cfg)
    assert isinstance(store, S3Storage)
    src, sha = write(tmp_path / "a.ts", b"abc")
    store.put_file("c/a.ts", src, sha)
    assert list(store.list("c/")) == ["c/a.ts"]
