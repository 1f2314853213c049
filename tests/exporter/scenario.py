"""A small full-process scenario built with real media (PyAV encoders) for the exporter tests.

Body-camera arrest clip (MP4, H.264 + AAC) -> entry -> search (G.711 µ-law) -> waiting (H.265
camera) -> interrogation (H.264 + G.711 A-law, two segments with a 5 s disconnect gap between them).
Cameras record G.711 A-law unless said otherwise.
Segments are MPEG-TS with sidecars and a hash chain, stored in a directory exposed through a
tiny BlobReader, the way storage serves them to the exporter.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import av
import numpy as np

from domain.types import (
    CameraCoverage,
    CaseEvent,
    ClockSource,
    EventType,
    GapCause,
    GapRecord,
    ImportedClip,
    RoomKind,
    RoomStay,
    SegmentRecord,
    StayFootage,
    StreamInfo,
    TimeRange,
    segment_key,
    sidecar_key,
)
from exporter.plan import CaseInfo, ExportRequest, Officer, OfficerRole, RoomInfo, SubjectInfo

if TYPE_CHECKING:
    from indexer.segment_store import SegmentStore

T0 = datetime(2024, 5, 1, 1, 0, 0, tzinfo=UTC)
FPS = 25
W, H = 640, 360


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def encode_clip(
    path: Path, codec: str, seconds: float, audio: str, container: str = "mpegts", shade: int = 0
) -> None:
    """Write ``seconds`` of moving picture + tone (its pitch set by ``shade``): codec h264|hevc,
    audio alaw|mulaw|aac."""
    oc: Any = av.open(str(path), "w", format=container)
    vs = oc.add_stream("libx264" if codec == "h264" else "libx265", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
    vs.options = (
        {"g": str(FPS), "preset": "ultrafast", "bf": "0"}
        if codec == "h264"
        else {"preset": "ultrafast", "x265-params": f"keyint={FPS}:bframes=0:log-level=error"}
    )
    g711 = audio in ("alaw", "mulaw")
    rate = 8000 if g711 else 16000
    aus = oc.add_stream(f"pcm_{audio}" if g711 else "aac", rate=rate, layout="mono")
    hz = 300 + 2 * shade  # each clip its own tone: one clip's sound cannot pass for another's
    frames = int(seconds * FPS)
    samples, done, apts = int(seconds * rate), 0, 0
    for i in range(frames):
        img = np.zeros((H, W, 3), np.uint8)
        img[:, :, 0] = (shade + i * 3) % 255
        img[(i * 4) % H : (i * 4) % H + 20, :, 1] = 255  # a moving bar, so frames differ
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        oc.mux(vs.encode(frame))
        # interleave ~one video frame's worth of audio
        want = min(samples, (i + 1) * rate // FPS)
        while done < want:
            n = min(160 if g711 else 1024, want - done)
            tone = (np.sin(np.arange(done, done + n) * 2 * np.pi * hz / rate) * 6000).astype(np.int16)
            af = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
            af.sample_rate, af.pts = rate, apts
            apts += n
            done += n
            oc.mux(aus.encode(af))
    oc.mux(vs.encode(None))
    oc.mux(aus.encode(None))
    oc.close()


class DirReader:
    """BlobReader over a directory (keys are relative POSIX paths)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, key: str) -> BinaryIO:
        return (self.root / key).open("rb")

    def size(self, key: str) -> int:
        return os.path.getsize(self.root / key)

    def list(self, prefix: str) -> Iterator[str]:
        keys = sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return iter([k for k in keys if k.startswith(prefix)])


@dataclass
class Scenario:
    root: Path
    reader: DirReader
    request: ExportRequest
    footage: list[StayFootage]
    events: list[CaseEvent]
    rooms: dict[str, RoomInfo]
    segments: list[SegmentRecord]
    gap: GapRecord

    def capture_hashes(self) -> dict[str, str]:
        out = {s.storage_key: s.sha256 for s in self.segments}
        for fp in self.footage:
            out.update({c.storage_key: c.sha256 for c in fp.clips})
        return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_scenario(root: Path) -> Scenario:
    root.mkdir(parents=True, exist_ok=True)
    segments: list[SegmentRecord] = []
    prev: dict[str, str | None] = {}
    seq: dict[str, int] = {}

    def segment(
        cam: str, start: float, seconds: float, codec: str, shade: int, audio: str = "alaw"
    ) -> SegmentRecord:
        seq[cam] = seq.get(cam, 0) + 1
        key = segment_key(cam, at(start), seq[cam])
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        encode_clip(path, codec, seconds, audio, shade=shade)
        rec = SegmentRecord(
            camera_id=cam,
            run_id=f"{cam}-run1",
            seq=seq[cam],
            start=at(start),
            end=at(start + seconds),
            storage_key=key,
            size=path.stat().st_size,
            sha256=_sha(path),
            prev_sha256=prev.get(cam),
            clock_source=ClockSource.RTCP,
            stream=StreamInfo(codec, W, H, f"pcm_{audio}", 8000, 1),
            packets=0,
        )
        prev[cam] = rec.sha256
        (root / sidecar_key(key)).write_text(json.dumps(rec.to_json(), sort_keys=True), encoding="utf-8")
        segments.append(rec)
        return rec

    clip_key = "bodycam/BC01/2024/05/01/clip_0001.mp4"
    clip_path = root / clip_key
    clip_path.parent.mkdir(parents=True, exist_ok=True)
    encode_clip(clip_path, "h264", 3.0, "aac", container="mp4", shade=40)
    clip = ImportedClip(
        1,
        "BC01",
        7,
        clip_key,
        at(0),
        at(3),
        clip_path.stat().st_size,
        _sha(clip_path),
        None,
        "mp4",
        StreamInfo("h264", W, H, "aac", 16000, 1),
    )

    s_entry = segment("cam-entry", 3, 3, "h264", 80)
    s_search = segment("cam-search", 6, 3, "h264", 120, audio="mulaw")
    s_wait = segment("cam-wait", 9, 3, "hevc", 160)
    s_int1 = segment("cam-int", 12, 3, "h264", 200)
    s_int2 = segment("cam-int", 20, 3, "h264", 10)
    gap = GapRecord("cam-int", at(15), at(20), GapCause.DISCONNECT, "camera rebooted")

    def cov(
        cam: str, a: float, b: float, segs: list[SegmentRecord], gaps: tuple[GapRecord, ...] = ()
    ) -> CameraCoverage:
        return CameraCoverage(cam, TimeRange(at(a), at(b)), tuple(segs), gaps, ())

    def stay(
        room: str,
        kind: RoomKind,
        a: float,
        b: float,
        cams: list[CameraCoverage],
        clips: tuple[ImportedClip, ...] = (),
    ) -> StayFootage:
        return StayFootage(
            RoomStay(42, room, kind, at(a), at(b)), TimeRange(at(a), at(b)), tuple(cams), clips
        )

    footage = [
        stay("R-ARREST", RoomKind.ARREST, 0, 3, [], (clip,)),
        stay("R-ENTRY", RoomKind.ENTRY, 3, 6, [cov("cam-entry", 3, 6, [s_entry])]),
        stay("R-SEARCH", RoomKind.SEARCH, 6, 9, [cov("cam-search", 6, 9, [s_search])]),
        stay("R-WAIT", RoomKind.WAITING, 9, 12, [cov("cam-wait", 9, 12, [s_wait])]),
        stay("R-INT1", RoomKind.INTERROGATION, 12, 23, [cov("cam-int", 12, 23, [s_int1, s_int2], (gap,))]),
    ]
    rooms = {
        "R-ARREST": RoomInfo("R-ARREST", "抓获现场", RoomKind.ARREST),
        "R-ENTRY": RoomInfo("R-ENTRY", "入区登记室", RoomKind.ENTRY),
        "R-SEARCH": RoomInfo("R-SEARCH", "人身检查室", RoomKind.SEARCH),
        "R-WAIT": RoomInfo("R-WAIT", "候问室1", RoomKind.WAITING),
        "R-INT1": RoomInfo("R-INT1", "讯问室1", RoomKind.INTERROGATION),
    }
    ev = [
        (EventType.ARREST, 1, None),
        (EventType.ENTRY, 3, "R-ENTRY"),
        (EventType.SEARCH, 6.5, "R-SEARCH"),
        (EventType.TAKEN_OUT, 11.5, "R-WAIT"),
        (EventType.INTERROGATION_START, 12.5, "R-INT1"),
        (EventType.TRANSCRIPT_SIGNED, 22.5, "R-INT1"),
    ]
    events = [CaseEvent(f"ev-{i}", t, at(s), room, 42) for i, (t, s, room) in enumerate(ev)]
    request = ExportRequest(
        case=CaseInfo("A4401012024050001", "张某盗窃案", "盗窃"),
        subject=SubjectInfo(42, "张某", "440101199001011234"),
        officers=(
            Officer("李警官", OfficerRole.INTERROGATOR, 1),
            Officer("王警官", OfficerRole.INTERROGATOR, 2),
            Officer("赵警官", OfficerRole.RECORDER, 3),
        ),
        place="某市公安局执法办案管理中心",
    )
    return Scenario(root, DirReader(root), request, footage, events, rooms, segments, gap)


# The scenario's interrogation and waiting rooms as SegmentStore.sync_rooms takes them, for the
# pipeline tests that index the scenario's cam-int and cam-wait footage (index_scenario).
INDEX_ROOMS = [
    ("R-INT1", "讯问室1", "interrogation", [("cam-int", "int", "rtsp://10.0.0.2/a")]),
    ("R-WAIT", "候问室1", "waiting", [("cam-wait", "wait", "rtsp://10.0.0.3/a")]),
]


def index_scenario(
    store: SegmentStore, sc: Scenario, cameras: tuple[str, ...] = ("cam-int", "cam-wait")
) -> None:
    """Add the scenario's segments of ``cameras`` (those of INDEX_ROOMS unless given) to ``store``
    (its rooms synced already)."""
    for rec in sc.segments:
        if rec.camera_id in cameras:
            store.add_segment(rec)
