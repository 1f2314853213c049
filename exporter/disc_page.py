"""The disc's offline pages: ``index.html`` (stages, timeline with gaps, players, events, in-browser
check), the gap report (``gaps.html`` + ``gaps.json``) and the chain of custody (``custody.html``),
and each video's time-code cues as a script beside it (``<video>.cues.js``).

The page's CSS, JS and data are inline: it opens from the disc with no network and no install.
Only the time code comes from beside each video: Chromium refuses ``<track src>`` (and fetch)
from a ``file://`` page, each file being its own origin, but runs ``<script src>``, so the page
loads ``.cues.js`` and adds the cues with ``TextTrack.addCue``. The ``.vtt`` files stay on the disc
for other players; the ``.cues.js`` is derived from them, cue for cue. The page's data lists every
other file with its SHA-256 so the page can check a disc itself; the page is not in its own list
(it cannot hash itself), but manifest.json covers it.
Chinese by default, English with one click (``?lang=en`` or the button).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from domain.names import EVENT_NAMES, GAP_CAUSE_NAMES
from domain.types import EventType, GapCause, TimeRange, iso, parse_iso
from exporter.disc_page_template import PAGE
from exporter.disc_verifier import grouped
from exporter.lanes import local_stamp
from exporter.plan import AcceptedInterval, ExportPlan, accepted_notes

log = logging.getLogger(__name__)


def event_label(t: EventType) -> str:
    zh, en = EVENT_NAMES[t]
    return f"{zh} {en}"


def gap_label(cause: GapCause) -> str:
    zh, en = GAP_CAUSE_NAMES[cause]
    if not cause.video_missing:
        return f"录音中断：{zh}（audio gap: {en}）"
    return f"录像中断：{zh}（gap: {en}）"


def gap_titles(cause: GapCause) -> tuple[tuple[str, str], tuple[str, str]]:
    """The (zh-CN, English) chapter titles of a gap's start and of its end."""
    zh, en = GAP_CAUSE_NAMES[cause]
    if not cause.video_missing:
        return (f"录音中断：{zh}", f"Audio gap: {en}"), ("录音恢复", "Sound resumed")
    return (f"录像中断：{zh}", f"Gap: {en}"), ("录像恢复", "Recording resumed")


CUES_SUFFIX = ".cues.js"


def vtt_cues(lines: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """The cues (start_ms, end_ms, text) of a WebVTT file as ``lanes`` writes it, one at a time."""
    start: int | None = None
    end = 0
    text: list[str] = []
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if start is None:
            if " --> " in line:
                a, b = line.split(" --> ", 1)
                start, end = _vtt_ms(a, n), _vtt_ms(b.split(" ", 1)[0], n)
            continue
        if line:
            text.append(line)
            continue
        yield start, end, "\n".join(text)
        start, text = None, []
    if start is not None:
        yield start, end, "\n".join(text)


def _vtt_ms(stamp: str, line: int) -> int:
    try:
        hms, frac = stamp.strip().split(".")
        h, m, s = (int(x) for x in hms.split(":"))
        return ((h * 60 + m) * 60 + s) * 1000 + int(frac)
    except ValueError:
        raise ValueError(f"line {line}: {stamp!r} is not a WebVTT time (HH:MM:SS.mmm)") from None


def write_cues_js(vtt: Path, out: Path, video: str) -> None:
    """Write the cues of ``vtt`` as a script that files them under ``video`` (its disc path) in
    ``window.DISC_CUES``, for the disc page. Streamed: hours of one cue a second stay small in memory.
    ASCII only (JSON escapes), so the script reads the same whatever charset the browser assumes."""
    with vtt.open(encoding="utf-8") as src, out.open("w", encoding="ascii", newline="\n") as fh:
        fh.write(f"(window.DISC_CUES = window.DISC_CUES || {{}})[{json.dumps(video)}] = [")
        sep = "\n"
        for start, end, text in vtt_cues(src):
            fh.write(sep + json.dumps([start, end, text]))
            sep = ",\n"
        fh.write("\n];\n")


def _runs(ranges: Sequence[TimeRange]) -> list[TimeRange]:
    """Touching/overlapping segment ranges coalesced into footage runs (for drawing)."""
    out: list[TimeRange] = []
    for r in sorted(ranges, key=lambda r: r.start):
        if out and r.start <= out[-1].end:
            out[-1] = TimeRange(out[-1].start, max(out[-1].end, r.end))
        else:
            out.append(r)
    return out


def _span(r: TimeRange, tz: ZoneInfo) -> dict[str, str]:
    return {
        "start": iso(r.start),
        "end": iso(r.end),
        "start_local": local_stamp(r.start, tz),
        "end_local": local_stamp(r.end, tz),
    }


def alert_rows(alerts: Sequence[dict[str, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    """The case's risk alerts with local times, for the gap/alert report."""
    out = []
    for a in alerts:
        start, end = parse_iso(a["start"]), parse_iso(a["end"]) if a.get("end") else None
        out.append(
            {
                **a,
                "start_local": local_stamp(start, tz),
                "end_local": local_stamp(end, tz) if end is not None else "",
            }
        )
    return out


def gaps_data(
    plan: ExportPlan,
    tz: ZoneInfo,
    alerts: Sequence[dict[str, Any]] = (),
    accepted: Sequence[AcceptedInterval] = (),
) -> dict[str, Any]:
    """``accepted``: the operator's notes on unexplained intervals; each interval carries the
    notes of those that overlap it (the court reads why the seconds are missing)."""
    gaps = [
        {
            **_span(g.range, tz),
            "stage": s.slug,
            "stage_label": f"{s.label_zh} {s.label_en}",
            "camera_id": g.camera_id,
            "cause": g.cause.value,
            "cause_label": gap_label(g.cause),
            "detail": g.detail,
            "gap_id": g.gap_id,
            "seconds": g.seconds,
        }
        for s, g in plan.gaps
    ]
    return {
        "range": _span(plan.range, tz),
        "time_zone": str(tz),
        "gaps": gaps,
        "unexplained": [
            {
                **_span(r, tz),
                "seconds": r.seconds,
                **({"note": "；".join(a.note for a in notes)} if notes else {}),
                **(
                    {"accepted_by": "、".join(sorted({a.accepted_by for a in notes if a.accepted_by}))}
                    if notes
                    else {}
                ),
            }
            for r, notes in accepted_notes(plan.unexplained, accepted)
        ],
        "alerts": alert_rows(alerts, tz),
    }


def page_data(
    plan: ExportPlan,
    tz: ZoneInfo,
    videos: Sequence[dict[str, Any]],
    files: Sequence[dict[str, Any]],
    custody: dict[str, Any],
    originals_with_sound: Sequence[dict[str, Any]] = (),
    late_entries: Sequence[dict[str, Any]] = (),
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """What ``index.html`` shows. ``originals_with_sound``: the G.711 remux files (path, stage,
    camera, codec, local times). ``late_entries``: see ``ExportOptions.late_entries``; events among
    them are marked in the events table, and all are listed with who entered them and when."""
    req = plan.request
    late = [
        {
            "kind": x["kind"],
            "id": x["id"],
            "type": x["type"],
            "label": event_label(EventType(x["type"])) if x["kind"] == "event" else x["type"],
            "local": local_stamp(parse_iso(x["time"]), tz),
            "room": _room_name(plan, x.get("room_id")),
            "by": x.get("entered_by") or "",
            "at": local_stamp(parse_iso(x["entered_at"]), tz) if x.get("entered_at") else "",
        }
        for x in late_entries
    ]
    late_events = {x["id"]: x for x in late if x["kind"] == "event"}
    stages = []
    for s in plan.stages:
        cams = [
            {
                "camera_id": c.camera_id,
                "footage": [_span(r, tz) for r in _runs([seg.range for seg in c.segments])],
                "gaps": [
                    {
                        **_span(g.range, tz),
                        "cause": g.cause.value,
                        "label": gap_label(g.cause),
                        "detail": g.detail,
                    }
                    for g in c.gaps
                ],
                "unexplained": [_span(r, tz) for r in c.unexplained],
            }
            for c in s.cameras
        ]
        if s.clips:
            cams.append(
                {
                    "camera_id": "bodycam",
                    "footage": [_span(r, tz) for r in _runs([c.range for c in s.clips])],
                    "gaps": [],
                    "unexplained": [],
                }
            )
        stages.append(
            {
                "slug": s.slug,
                "label_zh": s.label_zh,
                "label_en": s.label_en,
                **_span(s.interval, tz),
                "rooms": list(s.room_names),
                "cameras": cams,
                "unexplained": [_span(r, tz) for r in s.unexplained],
                "videos": [v for v in videos if v["stage"] == s.slug],
            }
        )
    events = [
        {
            "time": iso(e.time),
            "local": local_stamp(e.time, tz),
            "type": e.type.value,
            "label": event_label(e.type),
            "room": _room_name(plan, e.room_id),
            "late": e.event_id in late_events,
        }
        for e in plan.events
    ]
    return {
        "case": {"number": req.case.case_number, "title": req.case.title, "charge": req.case.charge},
        "subject": {"name": req.subject.name, "role": req.subject.role, "minor": req.subject.minor},
        "range": _span(plan.range, tz),
        "time_zone": str(tz),
        "stages": stages,
        "events": events,
        "late_entries": late,
        "gaps": gaps_data(plan, tz),
        "files": list(files),
        "custody": custody,
        "originals_with_sound": list(originals_with_sound),
        # shown on the page so a clerk can compare it by eye with the paper statement's
        "key": None if fingerprint is None else {"fingerprint": fingerprint, "grouped": grouped(fingerprint)},
    }


def _room_name(plan: ExportPlan, room_id: str | None) -> str:
    if room_id is None:
        return ""
    room = plan.rooms.get(room_id)
    return room.name if room is not None else room_id


def _json_for_script(data: Any) -> str:
    # "</" would end the <script> element early; \u003c keeps the JSON identical once parsed.
    return json.dumps(data, ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")


def index_html(data: dict[str, Any]) -> str:
    return PAGE.replace("/*DATA*/null", _json_for_script(data))


def gaps_html(data: dict[str, Any]) -> str:
    rows = (
        "".join(
            f"<tr><td>{html.escape(g['stage_label'])}</td><td>{html.escape(g['camera_id'])}</td>"
            f"<td>{g['start_local']}</td><td>{g['end_local']}</td><td>{g['seconds']:.1f}</td>"
            f"<td>{html.escape(g['cause_label'])}</td><td>{html.escape(g['detail'])}</td></tr>"
            for g in data["gaps"]
        )
        or "<tr><td colspan=7>无中断 No gaps</td></tr>"
    )
    unexplained = (
        "".join(
            f"<tr><td>{u['start_local']}</td><td>{u['end_local']}</td><td>{u['seconds']:.1f}</td>"
            f"<td class=note>{html.escape(u.get('note', ''))}</td><td>{html.escape(u.get('accepted_by', ''))}</td></tr>"
            for u in data["unexplained"]
        )
        or "<tr><td colspan=5>无 None</td></tr>"
    )
    alerts = (
        "".join(
            f"<tr><td>{html.escape(a['label_zh'])} {html.escape(a['label_en'])}</td>"
            f"<td>{html.escape(a['severity'])}</td><td>{a['start_local']}</td><td>{a['end_local']}</td>"
            f"<td>{html.escape(a.get('room_id') or '')}</td><td>{html.escape(a.get('camera_id') or '')}</td>"
            f"<td>{html.escape(a['message'])}</td><td>{html.escape(_handled(a))}</td></tr>"
            for a in data.get("alerts", [])
        )
        or "<tr><td colspan=8>无 None</td></tr>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        "<title>录像中断报告 Gap report</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px}</style></head><body>"
        "<h1>录像中断报告 <small>Gap report</small></h1>"
        f"<p>时区 Time zone: {html.escape(data['time_zone'])}；"
        f"范围 Range: {data['range']['start_local']} — {data['range']['end_local']}</p>"
        "<table><tr><th>阶段 Stage</th><th>摄像机 Camera</th><th>开始 Start</th><th>结束 End</th>"
        f"<th>秒 s</th><th>原因 Cause</th><th>说明 Detail</th></tr>{rows}</table>"
        "<h2>未说明的时段 Unexplained intervals</h2><table><tr><th>开始 Start</th><th>结束 End</th>"
        "<th>秒 s</th><th>说明 Note</th><th>确认人 Accepted by</th></tr>"
        f"{unexplained}</table>"
        "<h2>风险告警 Risk alerts</h2><table><tr><th>类型 Rule</th><th>级别 Severity</th>"
        "<th>开始 Start</th><th>结束 End</th><th>房间 Room</th><th>摄像机 Camera</th><th>说明 Message</th>"
        f"<th>处理 Handling</th></tr>{alerts}</table></body></html>\n"
    )


def _handled(a: dict[str, Any]) -> str:
    state = {"open": "未处理 open", "acknowledged": "已确认 acknowledged", "resolved": "已处置 resolved"}
    parts = [state.get(a.get("state") or "", a.get("state") or "")]
    if a.get("acknowledged_by"):
        parts.append(f"确认 {a['acknowledged_by']}")
    if a.get("resolved_by"):
        parts.append(f"处置 {a['resolved_by']}")
    if a.get("note"):
        parts.append(str(a["note"]))
    return "；".join(parts)


def custody_html(custody: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in custody.items()
        if k not in ("audit", "audit_head")
    )
    head = custody.get("audit_head")
    head_html = (
        ""
        if head is None
        else (
            "<h2>审计链头 <small>Audit trail head</small></h2>"
            "<p>导出时审计记录链的最后一条及其哈希，已签名存入证据存储；核对审计记录时应与此一致。"
            "<br><small>The audit trail's last row and hash when this disc was made, also signed into the "
            "evidence storage; a later check of the trail must agree with it.</small></p><table>"
            + "".join(
                f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in head.items()
            )
            + "</table>"
        )
    )
    audit = (
        "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
            for row in custody.get("audit", [])
        )
        or "<tr><td>—</td></tr>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        "<title>证据保管链 Chain of custody</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>证据保管链 <small>Chain of custody</small></h1><table>{rows}</table>{head_html}"
        f"<h2>审计记录 Audit records</h2><table>{audit}</table></body></html>\n"
    )
