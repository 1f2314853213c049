"""Playback of any range as one MP4 built on the fly: decodes, duration, AAC audio, H.264
rendition of H.265, byte ranges, WebVTT time, audit rows, officers kept out; the header leaves
first, segments are paged, the per-segment AAC cache keeps the bytes identical, and no byte
leaves without an audit row."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from domain.errors import IndexStoreError
from domain.types import iso
from indexer.audit import AuditLog
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from pipeline.viewing import playback
from pipeline.viewing.audio import AacCache
from tests.exporter.scenario import INDEX_ROOMS, Scenario, at, index_scenario
from tests.support.auth import add_user, bearer


@pytest.fixture
def client(engine: Engine, store: SegmentStore, scenario: Scenario, tmp_path: Path) -> Iterator[TestClient]:
    store.sync_rooms(INDEX_ROOMS)
    index_scenario(store, scenario)
    store.add_gap(scenario.gap)
    settings = Settings(api={"upload_tmp": tmp_path / "up"}, export={"out_dir": tmp_path / "exports"})
    app = create_app(settings, store, engine=engine, storage=LocalStorage(scenario.root))
    with TestClient(app) as c:
        add_user(engine, "sup", "supervisor")
        c.headers.update(bearer(c, "sup"))
        yield c


def _probe(data: bytes) -> dict[str, Any]:
    ic: Any = av.open(io.BytesIO(data))
    try:
        out: dict[str, Any] = {"codecs": {s.type: s.codec_context.name for s in ic.streams}}
        frames, first, last, samples = 0, None, 0.0, 0
        for frame in ic.decode(*ic.streams):
            if isinstance(frame, av.VideoFrame):
                frames += 1
                first = float(frame.time) if first is None else min(first, float(frame.time))
                last = max(last, float(frame.time))
            else:
                samples += frame.samples
        out.update(
            frames=frames,
            first_video=first,
            last_video=last,
            audio_seconds=samples / ic.streams.audio[0].sample_rate,
        )
        return out
    finally:
        ic.close()


def test_range_with_a_gap_plays_as_one_mp4_with_aac(client: TestClient, engine: Engine) -> None:
    r = client.get("/api/v1/playback/cam-int.mp4", params={"start": iso(at(12)), "end": iso(at(23))})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["x-playback-origin"] == iso(at(12))
    info = _probe(r.content)
    assert info["codecs"] == {"video": "h264", "audio": "aac"}
    # 3 s + 5 s gap + 3 s: the gap stays a gap in media time
    assert info["last_video"] == pytest.approx(23 - 12 - 0.04, abs=0.1)
    assert info["frames"] == pytest.approx(150, abs=2)
    assert info["audio_seconds"] == pytest.approx(11, abs=0.3)
    rows = [(row.user, row.action, row.object) for row in AuditLog(engine).rows()]
    assert ("sup", "playback", "camera:cam-int") in rows


def test_partial_range_starts_at_the_keyframe_before(client: TestClient) -> None:
    r = client.get("/api/v1/playback/cam-int.mp4", params={"start": iso(at(13.5)), "end": iso(at(14.5))})
    assert r.status_code == 200
    assert r.headers["x-playback-origin"] == iso(at(13))  # 1 s GOP in the scenario
    info = _probe(r.content)
    assert info["first_video"] == pytest.approx(0, abs=0.1)
    assert info["last_video"] - info["first_video"] == pytest.approx(1.5 - 0.04, abs=0.05)


def test_h265_camera_gets_an_h264_rendition(client: TestClient) -> None:
    r = client.get("/api/v1/playback/cam-wait.mp4", params={"start": iso(at(9)), "end": iso(at(12))})
    assert r.status_code == 200
    assert r.headers["x-playback-rendition"] == "h264"
    info = _probe(r.content)
    assert info["codecs"] == {"video": "h264", "audio": "aac"}
    assert info["frames"] == pytest.approx(75, abs=2)


def test_byte_ranges_match_the_whole_stream(client: TestClient) -> None:
    params = {"start": iso(at(12)), "end": iso(at(23))}
    whole = client.get("/api/v1/playback/cam-int.mp4", params=params).content
    assert client.get("/api/v1/playback/cam-int.mp4", params=params).content == whole  # deterministic
    part = client.get("/api/v1/playback/cam-int.mp4", params=params, headers={"Range": "bytes=1000-5999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == "bytes 1000-5999/*"
    assert part.content == whole[1000:6000]
    n = len(whole)
    tail = client.get(
        "/api/v1/playback/cam-int.mp4", params=params, headers={"Range": f"bytes={n - 100}-{n + 50}"}
    )
    assert tail.status_code == 206 and tail.content == whole[-100:]
    open_ended = client.get("/api/v1/playback/cam-int.mp4", params=params, headers={"Range": "bytes=0-"})
    assert open_ended.status_code == 200 and open_ended.content == whole  # last byte unknown: all of it
    bad = client.get("/api/v1/playback/cam-int.mp4", params=params, headers={"Range": "lines=1-2"})
    assert bad.status_code == 416


def test_subtitles_give_wall_clock_and_gap_cause(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(playback, "FIRST_PAGE", 1)  # the cues run to the last page's end
    r = client.get("/api/v1/playback/cam-int.vtt", params={"start": iso(at(12)), "end": iso(at(23))})
    assert r.status_code == 200 and r.text.startswith("WEBVTT")
    assert "2024-05-01 09:00:12" in r.text  # Asia/Shanghai
    assert "2024-05-01 09:00:22" in r.text
    assert (
        "[录像中断：连接中断]" in r.text
    )  # the disc's and the pages' names (domain.names), zh-CN unless asked
    en = client.get(
        "/api/v1/playback/cam-int.vtt", params={"start": iso(at(12)), "end": iso(at(23)), "lang": "en"}
    )
    assert "[gap: disconnected]" in en.text and "录像" not in en.text


def test_errors_and_roles(client: TestClient, engine: Engine) -> None:
    p = {"start": iso(at(100)), "end": iso(at(110))}
    assert client.get("/api/v1/playback/cam-int.mp4", params=p).status_code == 404
    assert client.get("/api/v1/playback/nope.mp4", params=p).status_code == 422
    naive = {"start": "2024-05-01T01:00:00", "end": iso(at(5))}
    assert client.get("/api/v1/playback/cam-int.mp4", params=naive).status_code == 422
    add_user(engine, "cop", "officer")
    cop = bearer(client, "cop")
    p = {"start": iso(at(12)), "end": iso(at(13) + timedelta(seconds=1))}
    assert client.get("/api/v1/playback/cam-int.mp4", params=p, headers=cop).status_code == 403


def _boxes(data: bytes) -> list[str]:
    """Top-level ISO BMFF box types of ``data``."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos + 4 : pos + 8].decode("latin-1"))
        if size < 8:
            break
        pos += size
    return out


def test_header_first_segments_paged_and_aac_cache_keeps_bytes_identical(
    store: SegmentStore, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.sync_rooms(INDEX_ROOMS)
    index_scenario(store, scenario, cameras=("cam-int",))
    reader = LocalStorage(scenario.root)
    monkeypatch.setattr(playback, "FIRST_PAGE", 1)  # the second segment comes from paging
    monkeypatch.setattr(playback, "PAGE", 2)
    plan = playback.plan_playback(store, "cam-int", at(12), at(23))
    assert len(plan.segments) == 1
    assert [s.seq for s in playback.plan_segments(store, plan)] == [
        s.seq for s in store.segments("cam-int", at(12), at(23))
    ]
    cache = AacCache()
    cold = list(playback.mp4_chunks(plan, reader, [], playback.plan_segments(store, plan), cache))
    # ftyp + moov leave alone, before any media fragment is complete
    assert _boxes(cold[0]) == ["ftyp", "moov"]
    assert "moof" in _boxes(b"".join(cold[1:]))
    assert (cache.misses, cache.hits) == (2, 0)  # both segments encoded once, then cached
    warm = list(playback.mp4_chunks(plan, reader, [], playback.plan_segments(store, plan), cache))
    assert cache.hits == 2
    assert b"".join(warm) == b"".join(cold)  # deterministic: byte ranges stay valid
    info = _probe(b"".join(warm))
    assert info["audio_seconds"] == pytest.approx(11, abs=0.3)  # silence in the 5 s gap
    # a seek inside a segment: its audio is encoded from the origin, the same every time
    seek = playback.plan_playback(store, "cam-int", at(13.5), at(23))
    a = b"".join(playback.mp4_chunks(seek, reader, [], playback.plan_segments(store, seek), cache))
    b = b"".join(playback.mp4_chunks(seek, reader, [], playback.plan_segments(store, seek), AacCache()))
    assert a == b
    assert _probe(a)["audio_seconds"] == pytest.approx(10, abs=0.3)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the route's order, not the database
def test_no_byte_leaves_without_an_audit_row(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> None:
        raise IndexStoreError("audit trail unavailable")

    monkeypatch.setattr(client.app.state.security.audit, "append", refuse)  # type: ignore[attr-defined]
    r = client.get("/api/v1/playback/cam-int.mp4", params={"start": iso(at(12)), "end": iso(at(23))})
    assert r.status_code >= 500
    assert r.headers["content-type"].startswith("application/json") and "error" in r.json()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # demuxing, not the database
def test_seek_deep_into_a_segment_gives_the_same_bytes(
    store: SegmentStore, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.sync_rooms(INDEX_ROOMS)
    index_scenario(store, scenario, cameras=("cam-int",))
    reader = LocalStorage(scenario.root)

    def stream(back_us: int) -> tuple[bytes, list[Any]]:
        monkeypatch.setattr(playback, "SEEK_BACK_US", back_us)
        plan = playback.plan_playback(store, "cam-int", at(14.5), at(21))
        origin: list[Any] = []
        data = b"".join(playback.mp4_chunks(plan, reader, origin, playback.plan_segments(store, plan), None))
        return data, origin

    whole, origin = stream(60_000_000)  # never seeks: demuxes from the segment's start
    assert origin == [at(14)]  # the keyframe at or before the start (1 s GOP)
    assert stream(1_000_000) == (whole, origin)  # seeks to 13.5 s, finds the 14 s keyframe
    assert stream(300_000) == (whole, origin)  # seeks past it (14.2 s): starts over from 12 s
