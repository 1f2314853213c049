"""Spool bookkeeping and crash recovery on real (synthesised) MPEG-TS files, no camera."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from domain.types import ClockSource, GapCause, GapRecord, from_unix, iso, segment_key
from recorders.spool import (
    CameraSpool,
    ChainState,
    atomic_write_json,
    hash_file,
    media_span,
    prepare_spool_root,
)

START = 1_790_000_000.0


def make_ts(path: Path, frames: int = 50, fps: int = 25) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("mpeg2video", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 4 % 256, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def open_segment(spool: CameraSpool, seq: int, prev: str | None, gap: GapRecord | None = None) -> str:
    key = segment_key("cam", from_unix(START + seq * 2), seq)
    spool.write_partial(
        key,
        {
            "camera_id": "cam",
            "run_id": "r1",
            "seq": seq,
            "storage_key": key,
            "start": iso(from_unix(START + seq * 2)),
            "start_media": 0.0,
            "clock_source": "rtcp",
            "mapping": {"media0": 0.0, "wall0": START, "rate": 1.0},
            "stream": {
                "video_codec": "h264",
                "width": 64,
                "height": 48,
                "audio_codec": None,
                "audio_sample_rate": None,
                "audio_channels": None,
            },
            "prev_sha256": prev,
            "gap_before": None if gap is None else gap.to_json(),
        },
    )
    return key


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "state.json"
    atomic_write_json(path, {"x": 1})
    atomic_write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_media_span_of_complete_and_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "x.ts"
    make_ts(path, frames=50)
    span = media_span(path)
    assert span is not None and span.seconds == pytest.approx(2.0, abs=0.001)
    data = path.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2 + 77])  # mid-way through a 188-byte packet
    half = media_span(cut)
    assert half is not None and 0.3 < half.seconds < 1.9


def test_recover_partial_continues_chain_and_writes_its_gap(tmp_path: Path) -> None:
    spool = CameraSpool(tmp_path, "cam")
    spool.save_state(ChainState(4, "a" * 64, START - 3))
    gap = GapRecord("cam", from_unix(START - 3), from_unix(START + 10), GapCause.DISCONNECT, "x")
    key = open_segment(spool, 5, "a" * 64, gap)
    make_ts(spool.media_path(key), frames=40)
    segments, gaps = spool.recover()
    assert [g for g, _ in gaps] == [gap]
    ((record, media, sidecar),) = segments
    assert record.recovered and record.seq == 5 and record.prev_sha256 == "a" * 64
    assert record.clock_source is ClockSource.RTCP
    assert record.range.seconds == pytest.approx(1.6, abs=0.001)
    assert record.sha256 == hash_file(media, False)[0]
    assert json.loads(sidecar.read_text())["recovered"] is True
    state = spool.load_state()
    assert (state.last_seq, state.last_sha256) == (5, record.sha256)
    assert state.last_end == pytest.approx(record.end.timestamp())
    assert not list(tmp_path.rglob("*.partial.json"))


def test_empty_partial_is_kept_aside_not_deleted(tmp_path: Path) -> None:
    spool = CameraSpool(tmp_path, "cam")
    spool.save_state(ChainState(1, "b" * 64, START))
    key = open_segment(spool, 2, "b" * 64)
    spool.media_path(key).write_bytes(b"")
    segments, gaps = spool.recover()
    assert segments == [] and gaps == []
    kept = sorted(p.name for p in (tmp_path / "cam" / "quarantine").iterdir())
    assert len(kept) == 2 and any(n.endswith(".partial.json") for n in kept)
    assert spool.load_state().last_seq == 1  # chain unchanged


def test_partial_whose_sidecar_exists_only_finishes_bookkeeping(tmp_path: Path) -> None:
    spool = CameraSpool(tmp_path, "cam")
    key = open_segment(spool, 0, None)
    make_ts(spool.media_path(key), frames=25)
    ((record, _, _),) = spool.recover()[0]
    # simulate a crash after the sidecar but before state/marker: put the marker back, reset state
    open_segment(spool, 0, None)
    spool.save_state(ChainState())
    segments, _ = spool.recover()
    assert segments == []
    assert spool.load_state().last_sha256 == record.sha256
    assert not list(tmp_path.rglob("*.partial.json"))


def test_audio_outage_kept_on_disk_until_it_ends_and_closed_at_the_chain_end_after_a_crash(
    tmp_path: Path,
) -> None:
    spool = CameraSpool(tmp_path, "cam")
    assert spool.close_audio_outage(2000.0) is None  # nothing open: nothing written
    spool.open_audio_outage(1000.0, "no audio")
    assert spool.audio_outage_path.name.startswith(".")  # neither a sidecar nor a partial marker
    closed = spool.close_audio_outage(1012.5)
    assert closed is not None
    gap, path = closed
    assert (gap.cause, gap.start, gap.end) == (GapCause.AUDIO_LOST, from_unix(1000.0), from_unix(1012.5))
    assert not gap.cause.video_missing
    assert json.loads(path.read_text())["cause"] == "audio_lost"
    assert not spool.audio_outage_path.exists()
    # a crash while the audio was missing: recovery ends the outage where the footage ends
    spool.open_audio_outage(1100.0, "no audio")
    spool.save_state(ChainState(last_seq=4, last_sha256="ab" * 32, last_end=1130.0))
    segments, gaps = CameraSpool(tmp_path, "cam").recover()
    assert segments == []
    assert [(g.cause, g.start, g.end) for g, _ in gaps] == [
        (GapCause.AUDIO_LOST, from_unix(1100.0), from_unix(1130.0))
    ]
    assert not spool.audio_outage_path.exists()


def test_spool_files_0600_directories_0700_and_an_old_root_is_closed(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # a spool made by an older release
    prepare_spool_root(root)
    assert root.stat().st_mode & 0o777 == 0o700
    spool = CameraSpool(root, "cam")
    key = open_segment(spool, 0, None)
    media = spool.prepare(key)
    make_ts(media)
    media.chmod(0o600)  # TsWriter's mode (tests/recorders/test_ts_writer.py)
    gap = GapRecord("cam", from_unix(START - 5), from_unix(START), GapCause.DISCONNECT, "x")
    spool.write_gap(gap)
    done, _gaps = spool.recover()
    assert done
    for path in [root, *root.rglob("*")]:
        want = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == want, path
    fresh = tmp_path / "a" / "b" / "spool"
    prepare_spool_root(fresh)
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in (fresh, fresh.parent))
