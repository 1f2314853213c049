"""TsWriter on a real H.264 + G.711 clip: the digest taken on the way equals the file's, the buffer
is bounded, a full disk is a SpoolError, and the file is readable with only part of it written."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import av
import pytest

from domain.errors import SpoolError
from pipeline.simulator.camera import make_clip
from recorders.spool import media_span
from recorders.ts_writer import MAX_BUFFER_BYTES, MIN_BUFFER_BYTES, TsWriter, buffer_bytes_for
from tests.support.tmpfs import small_tmpfs


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("clip") / "c", seconds=4, width=320, height=240, bitrate_kbps=300
    )


def _copy(clip: Path, out: Path, buffer: int, sm3: bool = False, limit: int | None = None) -> TsWriter:
    with av.open(str(clip)) as src:
        writer = TsWriter(out, list(src.streams), buffer, sm3)
        for n, pkt in enumerate(src.demux()):
            if pkt.dts is None:
                continue
            if limit is not None and n >= limit:
                break
            writer.mux(pkt)
    return writer


def _fill_until_full(src: Any, writer: TsWriter) -> None:
    """Mux ``src`` into ``writer`` until the disk is full (a SpoolError naming ENOSPC), then abort."""
    try:
        with pytest.raises(SpoolError, match="ENOSPC"):
            for pkt in src.demux():
                if pkt.dts is not None:
                    writer.mux(pkt)
    finally:
        writer.abort()


def _streams(path: Path) -> list[tuple[str, Any]]:
    with av.open(str(path)) as c:
        return [(s.type, s.codec_context.name if s.codec_context else None) for s in c.streams]


def test_buffer_is_a_quarter_second_within_bounds() -> None:
    assert buffer_bytes_for(0.0, 0.25) == MIN_BUFFER_BYTES
    assert buffer_bytes_for(40_000.0, 0.25) == 10_000 // 188 * 188
    assert all(buffer_bytes_for(r, 0.25) % 188 == 0 for r in (0.0, 12_345.6, 40_000.0, 10**9))
    assert buffer_bytes_for(10**9, 0.25) == MAX_BUFFER_BYTES


@pytest.mark.parametrize("sm3", [False, True])
def test_digest_on_the_way_equals_the_files(clip: Path, tmp_path: Path, sm3: bool) -> None:
    out = tmp_path / "seg.ts"
    size, sha, sm = _copy(clip, out, buffer_bytes_for(40_000.0, 0.25), sm3).close()
    data = out.read_bytes()
    assert size == len(data) > 100_000
    assert sha == hashlib.sha256(data).hexdigest()
    assert sm == (hashlib.new("sm3", data).hexdigest() if sm3 else None)
    assert _streams(out) == [("video", "h264"), ("data", None)]  # A-law as sent (private data PES)


def test_write_per_packet_leaves_hashing_to_the_caller(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg.ts"
    size, sha, sm = _copy(clip, out, 0).close()
    assert size == out.stat().st_size and sha is None and sm is None


def test_open_segment_is_readable_and_lags_by_at_most_the_buffer(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg.ts"
    writer = _copy(clip, out, buffer_bytes_for(40_000.0, 0.25), limit=60)
    on_disk = out.stat().st_size
    assert on_disk > 0 and on_disk % 188 == 0  # whole TS packets only
    with av.open(str(out)) as c:
        assert sum(1 for p in c.demux() if p.size) > 0
    writer.close()
    assert (
        out.stat().st_size - on_disk <= buffer_bytes_for(40_000.0, 0.25) + 188 * 8
    )  # the buffer plus the muxer's trailer flush


def test_full_disk_is_a_spool_error(clip: Path) -> None:
    dev_full = Path("/dev/full")
    if not dev_full.exists():
        pytest.skip("no /dev/full on this system to simulate a full disk")
    with av.open(str(clip)) as src:
        _fill_until_full(src, TsWriter(dev_full, list(src.streams), MIN_BUFFER_BYTES))


def test_full_disk_leaves_whole_chunks_only(clip: Path, tmp_path: Path) -> None:
    """A chunk the disk took only part of is cut off again: the file holds whole TS packets, exactly
    the bytes hashed, and stays readable (recovery of the partial segment depends on it)."""
    disk = tmp_path / "small"
    with small_tmpfs(disk, "64k"):
        out = disk / "seg.ts"
        with av.open(str(clip)) as src:
            _fill_until_full(src, TsWriter(out, list(src.streams), MIN_BUFFER_BYTES))
        data = out.read_bytes()
        assert 0 < len(data) <= 64 * 1024
        assert len(data) % 188 == 0, len(data)  # a page-sized partial write would not be
        assert media_span(out) is not None


@pytest.mark.parametrize("buffer", [0, MIN_BUFFER_BYTES])
def test_segments_are_readable_by_the_service_account_only(clip: Path, tmp_path: Path, buffer: int) -> None:
    out = tmp_path / "seg.ts"
    _copy(clip, out, buffer).close()
    assert out.stat().st_mode & 0o777 == 0o600
