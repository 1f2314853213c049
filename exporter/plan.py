"""The export plan: which footage of a subject goes on the disc, stage by stage (pure code).

Input is plain data (the index's ``StayFootage`` list and the case's events); output is an
``ExportPlan`` that the rest of the exporter renders. No I/O happens here so the rules that
decide what a court sees are tested on plain values.

Rules kept here:
- Stages follow the subject's trajectory in time order. Body-camera clips that start before
  the subject's first stay in the centre form the arrest stage.
- Consecutive stays of the same stage kind merge only when they touch (end == next start);
  two separate visits to a waiting room stay two stages, so the disc shows the trip between.
- Interrogation and inquiry stages are numbered 1..n in time order.
- A second of the range is explained when, inside a stage, some camera has a segment or a
  recorded gap for it, or a body-camera clip covers it. Anything else is ``unexplained`` and
  ``require_explained`` refuses to go on unless the operator allows it, or accepts each such
  second with a note (``AcceptedInterval``: e.g. the transfer from the arrest scene to the centre,
  which no camera can see); the note goes onto the disc beside the interval.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from domain.types import (
    CameraCoverage,
    CaseEvent,
    EventType,
    GapRecord,
    ImportedClip,
    RoomKind,
    SegmentRecord,
    StayFootage,
    TimeRange,
    subtract_ranges,
)
from exporter.errors import ExportRangeError, UnexplainedFootage

log = logging.getLogger(__name__)


class OfficerRole(str, enum.Enum):
    INTERROGATOR = "interrogator"  # 讯问人
    RECORDER = "recorder"  # 记录人 / recording operator
    INTERPRETER = "interpreter"  # 翻译人
    GUARDIAN = "guardian"  # 法定代理人 (minor's guardian; not an officer but present)
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Officer:
    name: str
    role: OfficerRole
    officer_id: int | None = None
    badge: str = ""


@dataclass(frozen=True, slots=True)
class CaseInfo:
    case_number: str
    title: str
    charge: str  # 案由


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    subject_id: int
    name: str
    id_number: str
    role: str = "suspect"  # 犯罪嫌疑人 / witness / victim
    minor: bool = False


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_id: str
    name: str
    kind: RoomKind


@dataclass(frozen=True, slots=True)
class ExportRequest:
    case: CaseInfo
    subject: SubjectInfo
    officers: tuple[Officer, ...] = ()
    range: TimeRange | None = None  # None: the default range rule (see default_range)
    place: str = ""  # the centre's name/address, printed on the statement (地点)


@dataclass(frozen=True, slots=True)
class AcceptedInterval:
    """Unexplained seconds the operator accepts, with the reason the court reads on the disc."""

    range: TimeRange
    note: str
    accepted_by: str = ""


def accepted_notes(
    unexplained: Sequence[TimeRange], accepted: Sequence[AcceptedInterval]
) -> list[tuple[TimeRange, tuple[AcceptedInterval, ...]]]:
    """Each unexplained interval with the accepted intervals that overlap it (none: not accepted)."""
    return [(u, tuple(a for a in accepted if a.range.overlaps(u))) for u in unexplained]


# A stage is named after the kind of room it took place in (the arrest scene is RoomKind.ARREST).
StageKind = RoomKind


STAGE_LABELS: dict[StageKind, tuple[str, str]] = {
    StageKind.ARREST: ("抓获现场", "Arrest scene"),
    StageKind.ENTRY: ("入区登记", "Entry registration"),
    StageKind.SEARCH: ("人身检查", "Body search"),
    StageKind.PROPERTY: ("物品登记", "Property registration"),
    StageKind.INFO: ("信息采集", "Information collection"),
    StageKind.WAITING: ("候问", "Waiting"),
    StageKind.SOBERING: ("醒酒", "Sobering"),
    StageKind.INTERROGATION: ("讯问", "Interrogation"),
    StageKind.INQUIRY: ("询问", "Inquiry"),
    StageKind.CORRIDOR: ("通道", "Corridor"),
    StageKind.EXIT: ("离区", "Exit"),
    StageKind.OTHER: ("其他", "Other"),
}

_NUMBERED = (StageKind.INTERROGATION, StageKind.INQUIRY)


@dataclass(frozen=True, slots=True)
class StageCamera:
    """One camera's share of a stage: whole segments overlapping the stage and its gaps."""

    camera_id: str
    segments: tuple[SegmentRecord, ...]
    gaps: tuple[GapRecord, ...]
    unexplained: tuple[TimeRange, ...]  # holes of this camera alone (informational)


@dataclass(frozen=True, slots=True)
class Stage:
    index: int  # 1-based position on the disc
    kind: StageKind
    number: int  # 1..n for interrogation/inquiry, 0 otherwise
    interval: TimeRange
    room_ids: tuple[str, ...]
    room_names: tuple[str, ...]
    cameras: tuple[StageCamera, ...]
    clips: tuple[ImportedClip, ...]
    events: tuple[CaseEvent, ...]
    unexplained: tuple[TimeRange, ...]

    @property
    def slug(self) -> str:
        """Directory name on the disc: ASCII, sortable, stable."""
        suffix = f"-{self.number}" if self.number else ""
        return f"{self.index:02d}-{self.kind.value}{suffix}"

    @property
    def label_zh(self) -> str:
        zh = STAGE_LABELS[self.kind][0]
        return f"{zh}（第{self.number}次）" if self.number else zh

    @property
    def label_en(self) -> str:
        en = STAGE_LABELS[self.kind][1]
        return f"{en} {self.number}" if self.number else en

    @property
    def gaps(self) -> tuple[GapRecord, ...]:
        return tuple(g for cam in self.cameras for g in cam.gaps)


@dataclass(frozen=True, slots=True)
class ExportPlan:
    request: ExportRequest
    range: TimeRange
    stages: tuple[Stage, ...]
    events: tuple[CaseEvent, ...]  # every event of the subject in the range, in time order
    unexplained: tuple[TimeRange, ...]
    rooms: Mapping[str, RoomInfo] = field(default_factory=dict)

    def require_explained(
        self, allow_unexplained: bool = False, accepted: Sequence[AcceptedInterval] = ()
    ) -> None:
        """Refuse (typed error naming the intervals) unless every second is accounted for: footage,
        a recorded gap, or an interval the operator ``accepted`` with a note."""
        left = [piece for u in self.unexplained for piece in subtract_ranges(u, [a.range for a in accepted])]
        if left and not allow_unexplained:
            raise UnexplainedFootage(left)
        if self.unexplained and accepted:
            log.info("exporting with %d unexplained interval(s) accepted with a note", len(self.unexplained))
        if left:
            log.warning(
                "exporting with %d unexplained interval(s) (allowed by operator)", len(self.unexplained)
            )

    @property
    def gaps(self) -> tuple[tuple[Stage, GapRecord], ...]:
        return tuple((s, g) for s in self.stages for g in s.gaps)


def _subject_events(events: Iterable[CaseEvent], subject_id: int) -> list[CaseEvent]:
    return sorted(
        (e for e in events if e.subject_id in (None, subject_id)), key=lambda e: (e.time, e.event_id)
    )


def default_range(footage: Sequence[StayFootage], events: Sequence[CaseEvent], subject_id: int) -> TimeRange:
    """From the subject's first footage (arrest clip or entry) to the end of the last interrogation.

    The end is the later of "transcript signed" and "left the interrogation room" of the last
    interrogation (docs/design/domain.md rule 2: recording ends after the transcript is signed and the
    suspect leaves).
    """
    starts: list[datetime] = [fp.interval.start for fp in footage]
    starts.extend(c.start for fp in footage for c in fp.clips)
    if not starts:
        raise ExportRangeError("the subject has no footage: no stay and no body-camera clip")
    interrogations = [fp for fp in footage if fp.stay.room_kind in (RoomKind.INTERROGATION, RoomKind.INQUIRY)]
    if not interrogations:
        raise ExportRangeError(
            "the subject has no interrogation stay; give the export range explicitly (--from/--to)"
        )
    last = max(interrogations, key=lambda fp: fp.interval.start)
    end = last.interval.end if last.stay.end is None else min(last.interval.end, last.stay.end)
    signed = [
        e.time
        for e in _subject_events(events, subject_id)
        if e.type in (EventType.TRANSCRIPT_SIGNED, EventType.INTERROGATION_END)
        and e.time >= last.interval.start
    ]
    if signed:
        end = max(end, max(signed))
    start = min(starts)
    if end <= start:
        raise ExportRangeError("the last interrogation ends before the first footage starts")
    return TimeRange(start, end)


@dataclass(slots=True)
class _Draft:
    kind: StageKind
    interval: TimeRange
    room_ids: list[str]
    cameras: dict[str, CameraCoverage]
    clips: dict[int, ImportedClip]


def _merge_cov(a: CameraCoverage, b: CameraCoverage, interval: TimeRange) -> CameraCoverage:
    segs = {s.storage_key: s for s in (*a.segments, *b.segments)}
    gaps = {g.gap_id: g for g in (*a.gaps, *b.gaps)}
    return CameraCoverage(
        camera_id=a.camera_id,
        interval=interval,
        segments=tuple(sorted(segs.values(), key=lambda s: (s.start, s.seq))),
        gaps=tuple(sorted(gaps.values(), key=lambda g: g.start)),
        unexplained=(),
    )


def _drafts(footage: Sequence[StayFootage], rng: TimeRange) -> list[_Draft]:
    items = sorted((fp for fp in footage if fp.interval.overlaps(rng)), key=lambda fp: fp.interval.start)
    centre = [fp for fp in items if fp.stay.room_kind is not RoomKind.ARREST]
    first_entry = centre[0].interval.start if centre else rng.end
    drafts: list[_Draft] = []

    # Arrest scene: ARREST stays plus every body-camera clip that starts before the entry.
    arrest_clips = {
        c.clip_id: c for fp in footage for c in fp.clips if c.start < first_entry and c.range.overlaps(rng)
    }
    arrest_stays = [fp for fp in items if fp.stay.room_kind is RoomKind.ARREST]
    spans = [c.range for c in arrest_clips.values()] + [fp.interval for fp in arrest_stays]
    if spans:
        hull = TimeRange(min(s.start for s in spans), max(s.end for s in spans)).clip(rng)
        if hull is not None:
            cams: dict[str, CameraCoverage] = {}
            for fp in arrest_stays:
                for cov in fp.cameras:
                    cams[cov.camera_id] = (
                        _merge_cov(cams[cov.camera_id], cov, hull) if cov.camera_id in cams else cov
                    )
            drafts.append(
                _Draft(
                    StageKind.ARREST,
                    hull,
                    [fp.stay.room_id for fp in arrest_stays],
                    cams,
                    dict(sorted(arrest_clips.items(), key=lambda kv: kv[1].start)),
                )
            )

    for fp in centre:
        interval = fp.interval.clip(rng)
        if interval is None:
            continue
        kind = StageKind(fp.stay.room_kind)
        clips = {c.clip_id: c for c in fp.clips if c.clip_id not in arrest_clips}
        prev = drafts[-1] if drafts else None
        if prev is not None and prev.kind is kind and prev.interval.end == interval.start:
            merged = TimeRange(prev.interval.start, interval.end)
            prev.interval = merged
            if fp.stay.room_id not in prev.room_ids:
                prev.room_ids.append(fp.stay.room_id)
            for cov in fp.cameras:
                old = prev.cameras.get(cov.camera_id)
                prev.cameras[cov.camera_id] = _merge_cov(old, cov, merged) if old else cov
            prev.clips.update(clips)
            continue
        drafts.append(_Draft(kind, interval, [fp.stay.room_id], {c.camera_id: c for c in fp.cameras}, clips))
    return drafts


def build_plan(
    request: ExportRequest,
    footage: Sequence[StayFootage],
    events: Sequence[CaseEvent],
    rooms: Mapping[str, RoomInfo] | None = None,
) -> ExportPlan:
    """Turn the subject's trajectory footage into ordered stages with their cameras and gaps."""
    rooms = dict(rooms or {})
    rng = request.range or default_range(footage, events, request.subject.subject_id)
    subject_events = [
        e for e in _subject_events(events, request.subject.subject_id) if rng.start <= e.time <= rng.end
    ]
    drafts = _drafts(footage, rng)

    stages: list[Stage] = []
    covered: list[TimeRange] = []
    counters: dict[StageKind, int] = {}
    for i, d in enumerate(drafts, start=1):
        number = 0
        if d.kind in _NUMBERED:
            counters[d.kind] = number = counters.get(d.kind, 0) + 1
        stage_cover: list[TimeRange] = []
        cams: list[StageCamera] = []
        for cam_id in sorted(d.cameras):
            cov = d.cameras[cam_id]
            segs = tuple(
                sorted(
                    (s for s in cov.segments if s.range.overlaps(d.interval)), key=lambda s: (s.start, s.seq)
                )
            )
            gaps = tuple(sorted((g for g in cov.gaps if g.range.overlaps(d.interval)), key=lambda g: g.start))
            parts = [s.range for s in segs] + [g.range for g in gaps]
            stage_cover.extend(parts)
            cams.append(StageCamera(cam_id, segs, gaps, tuple(subtract_ranges(d.interval, parts))))
        stage_cover.extend(c.range for c in d.clips.values())
        clipped = [c for r in stage_cover if (c := r.clip(d.interval)) is not None]
        covered.extend(clipped)
        last = i == len(drafts)
        evs = tuple(
            e
            for e in subject_events
            if d.interval.start <= e.time < d.interval.end or (last and e.time >= d.interval.start)
        )
        stages.append(
            Stage(
                index=i,
                kind=d.kind,
                number=number,
                interval=d.interval,
                room_ids=tuple(d.room_ids),
                room_names=tuple(rooms[r].name if r in rooms else r for r in d.room_ids),
                cameras=tuple(cams),
                clips=tuple(d.clips.values()),
                events=evs,
                unexplained=tuple(subtract_ranges(d.interval, clipped)),
            )
        )
    unexplained = tuple(subtract_ranges(rng, covered))
    return ExportPlan(request, rng, tuple(stages), tuple(subject_events), unexplained, rooms)
