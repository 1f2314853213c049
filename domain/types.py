"""Domain types shared by every package. Pure data: no I/O, no third-party imports.

All instants are timezone-aware UTC ``datetime`` objects (microsecond precision, well
below one frame at 25 fps). Conversion to the centre's local time happens only at the
presentation edge (web pages, disc, statement).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC as UTC  # re-exported: the one zone of every stored instant
from datetime import datetime, timedelta
from typing import Any, BinaryIO, Protocol


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime; naive values are refused, not guessed."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no time zone; UTC required")
    return dt.astimezone(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def to_us(dt: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, no float rounding)."""
    return (utc(dt) - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The aware UTC datetime of a microsecond count since the Unix epoch."""
    return EPOCH + timedelta(0, 0, us)  # positional: measurably cheaper in the footage hot loop


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def to_unix(dt: datetime) -> float:
    return utc(dt).timestamp()


def iso(dt: datetime) -> str:
    """ISO 8601 with microseconds and an explicit ``Z``."""
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return utc(value)


class ClockSource(str, enum.Enum):
    """What anchored a run's media time to the wall clock."""

    RTCP = "rtcp"  # camera's RTCP sender reports (NTP time)
    RECEIPT = "receipt"  # local receipt time of the packets


class GapCause(str, enum.Enum):
    """Why a camera's footage is missing for an interval. Stored as the value string."""

    STALL = "stall"  # connection open, no packets
    DISCONNECT = "disconnect"  # connection dropped or refused
    RECORDER_RESTART = "recorder_restart"  # our process was down
    TIMESTAMP_JUMP = "timestamp_jump"  # camera clock jumped; run split
    STORAGE_FAILURE = "storage_failure"  # spool could not be written
    STREAM_ERROR = "stream_error"  # camera sent something we cannot record
    NODE_FAILOVER = "node_failover"  # fleet: camera moved to another node
    CLOCK_STEP = "clock_step"  # recorder host's wall clock stepped; run split (the gap may be empty)
    # The camera's audio stopped while its video went on (a dead or muted microphone): the footage
    # exists but is not 同步录音 (sound and picture). The only cause that leaves the video intact.
    AUDIO_LOST = "audio_lost"

    @property
    def video_missing(self) -> bool:
        """Whether the interval has no video (every cause but a lost audio track)."""
        return self is not GapCause.AUDIO_LOST


class RoomKind(str, enum.Enum):
    ARREST = "arrest"
    ENTRY = "entry"
    SEARCH = "search"
    PROPERTY = "property"
    INFO = "info"
    WAITING = "waiting"
    SOBERING = "sobering"
    INTERROGATION = "interrogation"
    INQUIRY = "inquiry"
    CORRIDOR = "corridor"
    EXIT = "exit"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Half-open interval [start, end)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if utc(self.end) < utc(self.start):
            raise ValueError(f"range ends before it starts: {iso(self.start)} > {iso(self.end)}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def overlaps(self, other: TimeRange) -> bool:
        return self.start < other.end and other.start < self.end

    def clip(self, other: TimeRange) -> TimeRange | None:
        start = max(self.start, other.start)
        end = min(self.end, other.end)
        return TimeRange(start, end) if start < end else None


def subtract_ranges(whole: TimeRange, parts: list[TimeRange]) -> list[TimeRange]:
    """The sub-intervals of ``whole`` covered by none of ``parts`` (gap maths)."""
    holes: list[TimeRange] = []
    cursor = whole.start
    for part in sorted(parts, key=lambda r: (r.start, r.end)):
        if part.end <= cursor:
            continue
        if part.start >= whole.end:
            break
        if part.start > cursor:
            holes.append(TimeRange(cursor, min(part.start, whole.end)))
        cursor = max(cursor, part.end)
        if cursor >= whole.end:
            break
    if cursor < whole.end:
        holes.append(TimeRange(cursor, whole.end))
    return holes


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """Codecs of a run as the camera sent them (never transcoded)."""

    video_codec: str
    width: int
    height: int
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """One closed, fsynced segment file and what the index needs to know of it."""

    camera_id: str
    run_id: str
    seq: int  # per-camera sequence number, continuous across runs
    start: datetime
    end: datetime
    storage_key: str
    size: int
    sha256: str
    prev_sha256: str | None  # hash chain: the previous segment of this camera
    clock_source: ClockSource
    stream: StreamInfo
    container: str = "mpegts"
    sm3: str | None = None
    packets: int = 0
    recovered: bool = False  # closed after a crash from a partial file

    @property
    def range(self) -> TimeRange:
        return TimeRange(self.start, self.end)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = iso(self.start)
        data["end"] = iso(self.end)
        data["clock_source"] = self.clock_source.value
        data["kind"] = "segment"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentRecord:
        fields = dict(data)
        fields.pop("kind", None)
        fields["start"] = parse_iso(fields["start"])
        fields["end"] = parse_iso(fields["end"])
        fields["clock_source"] = ClockSource(fields["clock_source"])
        fields["stream"] = StreamInfo(**fields["stream"])
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class GapRecord:
    """An interval of a camera without footage, with its cause. Never open-ended once stored."""

    camera_id: str
    start: datetime
    end: datetime
    cause: GapCause
    detail: str = ""
    gap_id: str = field(default="")

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"gap ends before it starts: {iso(self.start)} > {iso(self.end)}")
        if not self.gap_id:
            stamp = utc(self.start).strftime("%Y%m%dT%H%M%S%fZ")
            object.__setattr__(self, "gap_id", f"{self.camera_id}-{stamp}-{self.cause.value}")

    @property
    def range(self) -> TimeRange:
        return TimeRange(self.start, self.end)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "gap",
            "gap_id": self.gap_id,
            "camera_id": self.camera_id,
            "start": iso(self.start),
            "end": iso(self.end),
            "cause": self.cause.value,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GapRecord:
        return cls(
            camera_id=data["camera_id"],
            start=parse_iso(data["start"]),
            end=parse_iso(data["end"]),
            cause=GapCause(data["cause"]),
            detail=data.get("detail", ""),
            gap_id=data.get("gap_id", ""),
        )


def segment_key(camera_id: str, start: datetime, seq: int, ext: str = "ts") -> str:
    """Storage key of a segment: camera/YYYY/MM/DD/<start>_<seq>.<ext> (UTC, sortable)."""
    s = utc(start)
    return f"{camera_id}/{s:%Y/%m/%d}/{s:%Y%m%dT%H%M%S}{s.microsecond:06d}Z_{seq:08d}.{ext}"


def gap_key(gap: GapRecord) -> str:
    s = utc(gap.start)
    return f"{gap.camera_id}/gaps/{s:%Y/%m/%d}/{gap.gap_id}.json"


def sidecar_key(segment_storage_key: str) -> str:
    return segment_storage_key.rsplit(".", 1)[0] + ".json"


# Keys of the system's own records in the evidence storage start with "_": a camera id cannot
# (it starts with a letter or digit), so they never mix with footage and reindexing skips them.
SYSTEM_KEY_PREFIX = "_"
AUDIT_ANCHOR_PREFIX = "_audit-anchors"


def audit_anchor_key(written: datetime, seq: int) -> str:
    """Storage key of an audit anchor: sorted by when it was written, then by the row it names."""
    w = utc(written)
    return f"{AUDIT_ANCHOR_PREFIX}/{w:%Y/%m/%d}/{w:%Y%m%dT%H%M%S}{w.microsecond:06d}Z-{seq:012d}.json"


ONE_MS = timedelta(milliseconds=1)


class Clock(Protocol):
    """Where the recorder gets time. Injected so tests (and fault drills) can step the wall clock."""

    def wall(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps."""
        ...


class BlobReader(Protocol):
    """Read access to stored objects; the exporter and indexer depend on this, not on a backend."""

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object's bytes (caller closes)."""
        ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, sorted."""
        ...


class EventType(str, enum.Enum):
    """Procedure events of a case-handling centre (what officers' systems report)."""

    ARREST = "arrest"  # 抓获 (scene; usually body-camera footage)
    ENTRY = "entry"  # 入区登记
    SEARCH = "search"  # 人身检查
    PROPERTY = "property"  # 物品登记
    INFO_COLLECTION = "info_collection"  # 信息采集
    WAITING = "waiting"  # 候问
    TAKEN_OUT = "taken_out"  # 提押 (taken out of holding for questioning)
    RETURNED = "returned"  # 还押
    INTERROGATION_START = "interrogation_start"
    INTERROGATION_END = "interrogation_end"
    TRANSCRIPT_SIGNED = "transcript_signed"  # 笔录签字
    EXIT = "exit"  # 离区
    OTHER = "other"


class ObservationSource(str, enum.Enum):
    WRISTBAND = "wristband"
    FACE = "face"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class RoomStay:
    """One interval of a subject's trajectory: in ``room_id`` from ``start`` to ``end``.

    ``end`` is None while the subject is still in the room. ``opened_by``/``closed_by`` say
    what placed the bounds (e.g. "observation:wristband", "event:exit", "next_room").
    """

    subject_id: int
    room_id: str
    room_kind: RoomKind
    start: datetime
    end: datetime | None
    opened_by: str = ""
    closed_by: str = ""


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """A procedure event as the index returns it."""

    event_id: str  # client-supplied id
    type: EventType
    time: datetime
    room_id: str | None
    subject_id: int | None
    officer_ids: tuple[int, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportedClip:
    """A body-worn camera clip imported into storage (footage of source "bodycam")."""

    clip_id: int
    device_id: str
    officer_id: int | None
    storage_key: str
    start: datetime
    end: datetime
    size: int
    sha256: str
    sm3: str | None
    container: str
    stream: StreamInfo | None

    @property
    def range(self) -> TimeRange:
        return TimeRange(self.start, self.end)


@dataclass(frozen=True, slots=True)
class CameraCoverage:
    """What one camera holds over an interval: footage, explained gaps, unexplained holes."""

    camera_id: str
    interval: TimeRange
    segments: tuple[SegmentRecord, ...]
    gaps: tuple[GapRecord, ...]
    unexplained: tuple[TimeRange, ...]


@dataclass(frozen=True, slots=True)
class StayFootage:
    """The footage of one trajectory interval: every camera of the room plus body-camera clips."""

    stay: RoomStay
    interval: TimeRange  # the stay clipped to the query range
    cameras: tuple[CameraCoverage, ...]
    clips: tuple[ImportedClip, ...]
    # The last seconds before now that the recorders may not have indexed yet (a segment is indexed
    # once closed and uploaded): not evidence of anything yet, so not unexplained.
    pending: TimeRange | None = None

    @property
    def unexplained(self) -> list[TimeRange]:
        """Seconds of the interval covered by no camera's footage, gap or clip (nor pending)."""
        covered: list[TimeRange] = []
        for cam in self.cameras:
            covered.extend(s.range for s in cam.segments)
            covered.extend(g.range for g in cam.gaps)
        covered.extend(c.range for c in self.clips)
        if self.pending is not None:
            covered.append(self.pending)
        return subtract_ranges(self.interval, covered)


class PictureFault(str, enum.Enum):
    """What a sampled keyframe of a camera shows wrong (the risk engine's picture input)."""

    BLACK = "black"  # nearly no light
    FROZEN = "frozen"  # no change for a while although packets keep flowing
    COVERED = "covered"  # lens covered: flat picture, almost no texture
    DEFOCUSED = "defocused"  # blurred: low Laplacian variance against the camera's own baseline
    MOVED = "moved"  # the scene changed as a whole (camera turned or displaced)


@dataclass(frozen=True, slots=True)
class PictureObservation:
    """The result of checking one sampled keyframe of ``camera_id`` captured at ``at`` (UTC).

    ``faults`` is empty for a normal picture. ``person_count`` is None when the people
    detector did not run on this sample. ``snapshot_jpeg`` is the sampled picture, kept as the
    evidence of any alert it raises.
    """

    camera_id: str
    at: datetime
    faults: frozenset[PictureFault]
    person_count: int | None
    snapshot_jpeg: bytes = field(repr=False, default=b"")
