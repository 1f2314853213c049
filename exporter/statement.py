"""The recording statement (录音录像说明), as HTML and as PDF rendered by headless Chromium.

Fields follow docs/design/domain.md rule 5: start/end time, interrogators, interpreter, recording
operator, suspect name, charge (案由), place, times taken out/returned (提押/还押). Chinese first,
English beneath each label. The PDF is printed from the same HTML (fonts-noto-cjk supplies the glyphs)
and its two timestamps are pinned to the export's reference time so the disc stays reproducible.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from domain.types import EventType
from exporter.disc_verifier import grouped
from exporter.errors import ToolMissing
from exporter.lanes import local_stamp
from exporter.plan import AcceptedInterval, ExportPlan, OfficerRole, accepted_notes

log = logging.getLogger(__name__)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
)

STYLE = """
body{font-family:"Noto Sans CJK SC","Noto Serif CJK SC",sans-serif;margin:2cm;color:#000}
h1{text-align:center;font-size:22pt;letter-spacing:.3em}
table{border-collapse:collapse;width:100%;font-size:11pt}
th,td{border:1px solid #000;padding:6px 8px;vertical-align:top;text-align:left}
th{width:28%;background:#f2f2f2}
.en{display:block;font-weight:normal;font-size:8pt;color:#444}
.sign{margin-top:2cm;display:flex;justify-content:space-between;font-size:11pt}
"""


# How to hear the originals' G.711 sound: the TS gives players no codec label (docs/design/export.md).
SOUND_NOTES = {
    "remux": (
        "原始录像（originals/，MPEG-TS）中的 G.711 声音没有编码标识，常用播放器播放时无声。"
        "originals-with-sound/ 中的 MKV 文件是原始录像的逐字节转封装（未解码、未重新编码，位于母盘），"
        "用 VLC 或 ffplay 打开即可听到原始声音；verify.py 核对其声音与原始录像逐字节相同。"
        "（The G.711 sound in the originals carries no codec label, so common players play them "
        "silent. The MKV files in originals-with-sound/ (master copy) are byte-for-byte remuxes, "
        "nothing decoded or re-encoded: open them in VLC or ffplay to hear the original sound; "
        "verify.py checks that their sound equals the originals' byte for byte.）"
    ),
    "originals": (
        "原始录像（originals/，MPEG-TS）中的 G.711 声音没有编码标识，常用播放器播放时无声；"
        "可用以下命令收听：ffmpeg -v error -i 文件.ts -map 0:d:0 -c copy -f data - | ffplay -f alaw -ar 8000 -"
        "（µ-law 用 -f mulaw）。（The originals' G.711 sound carries no codec label, so common "
        "players play them silent; listen with the command above, -f mulaw for µ-law.）"
    ),
}


def _names(plan: ExportPlan, role: OfficerRole) -> str:
    return "、".join(o.name for o in plan.request.officers if o.role is role) or "无 (none)"


def statement_rows(
    plan: ExportPlan,
    tz: ZoneInfo,
    fingerprint: str,
    exported_at: datetime,
    alerts: int | None = None,
    sound: str | None = None,
    accepted: Sequence[AcceptedInterval] = (),
) -> list[tuple[str, str, str]]:
    """``alerts``: how many risk alerts the gap/alert report lists (None: no row). ``sound``: how
    the originals' G.711 is heard, a key of ``SOUND_NOTES`` (None: no G.711 original, no row).
    ``accepted``: the operator's notes on unexplained intervals, quoted in the row of those
    intervals (a row only when the range has unexplained seconds)."""
    req = plan.request
    moves = [e for e in plan.events if e.type in (EventType.TAKEN_OUT, EventType.RETURNED)]
    move_text = (
        "；".join(
            f"{'提押' if e.type is EventType.TAKEN_OUT else '还押'} {local_stamp(e.time, tz)}" for e in moves
        )
        or "无 (none)"
    )
    places = [n for s in plan.stages for n in s.room_names]
    place = req.place + ("：" if req.place and places else "") + "、".join(dict.fromkeys(places))
    subject = req.subject.name + ("（未成年人 minor）" if req.subject.minor else "")
    gaps = len(plan.gaps)
    alert_row = [
        ("风险告警", "Risk alerts", f"{alerts} 条，详见 gaps.html（{alerts} alert(s), see gaps.html）")
    ]
    return [
        ("案件编号", "Case number", req.case.case_number),
        ("案件名称", "Case", req.case.title),
        ("案由", "Charge", req.case.charge),
        ("犯罪嫌疑人", "Suspect", f"{subject}（身份证号 {req.subject.id_number}）"),
        ("录制开始时间", "Recording start", local_stamp(plan.range.start, tz)),
        ("录制结束时间", "Recording end", local_stamp(plan.range.end, tz)),
        ("讯问人", "Interrogators", _names(plan, OfficerRole.INTERROGATOR)),
        ("翻译人员", "Interpreter", _names(plan, OfficerRole.INTERPRETER)),
        ("录制人员", "Recording operator", _names(plan, OfficerRole.RECORDER)),
        ("法定代理人", "Guardian", _names(plan, OfficerRole.GUARDIAN)),
        ("地点", "Place", place or "—"),
        ("提押/还押时间", "Taken out / returned", move_text),
        ("录制中断", "Recording interruptions", f"{gaps} 处，详见 gaps.html（{gaps} gap(s), see gaps.html）"),
        *(alert_row if alerts is not None else []),
        *(
            [("未说明的时段", "Unexplained intervals", _unexplained(plan, tz, accepted))]
            if plan.unexplained
            else []
        ),
        *([("原始录像的声音", "Sound of the originals", SOUND_NOTES[sound])] if sound else []),
        ("时区", "Time zone", str(tz)),
        (
            "光盘签名公钥指纹 (SHA-256)，核对光盘时应与此一致",
            "Signing key fingerprint: a disc checks out only against this key (verify.py --expect-key)",
            grouped(fingerprint),
        ),
        ("导出时间", "Exported at", local_stamp(exported_at, tz)),
    ]


def _unexplained(plan: ExportPlan, tz: ZoneInfo, accepted: Sequence[AcceptedInterval]) -> str:
    """Each unexplained interval with its seconds and the note that accepted it (or that none did)."""
    parts = []
    for r, notes in accepted_notes(plan.unexplained, accepted):
        span = f"{local_stamp(r.start, tz)} — {local_stamp(r.end, tz)}（{r.seconds:.1f} 秒 s）"
        if notes:
            by = "、".join(sorted({a.accepted_by for a in notes if a.accepted_by}))
            why = "；".join(a.note for a in notes)
            parts.append(f"{span}：说明 {why}" + (f"（确认人 {by}）" if by else ""))
        else:
            parts.append(f"{span}：无说明 (not explained)")
    return f"{len(parts)} 处，详见 gaps.html（{len(parts)} interval(s), see gaps.html）：" + "；".join(parts)


def statement_html(
    plan: ExportPlan,
    tz: ZoneInfo,
    fingerprint: str,
    exported_at: datetime,
    alerts: int | None = None,
    sound: str | None = None,
    accepted: Sequence[AcceptedInterval] = (),
) -> str:
    rows = "\n".join(
        f"<tr><th>{html.escape(zh)}<span class=en>{html.escape(en)}</span></th><td>{html.escape(v)}</td></tr>"
        for zh, en, v in statement_rows(plan, tz, fingerprint, exported_at, alerts, sound, accepted)
    )
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8"><title>录音录像说明</title>'
        f"<style>{STYLE}</style></head><body><h1>录音录像说明</h1>"
        '<p style="text-align:center">Audio-video recording statement</p>'
        f"<table>{rows}</table>"
        "<div class=sign><span>讯问人签名 Interrogators：</span><span>录制人签名 Operator：</span>"
        "<span>犯罪嫌疑人签名 Suspect：</span></div></body></html>\n"
    )


def find_chromium(
    candidates: Sequence[str] = ("chromium", "chromium-browser", "google-chrome"),
) -> str | None:
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None


_PDF_DATE = re.compile(rb"/(CreationDate|ModDate) \(D:[0-9]{14}[^)]*\)")


def pin_pdf_dates(pdf: bytes, when: datetime) -> bytes:
    """Replace Chromium's print time with ``when``, keeping each string's length (xref stays valid)."""

    def repl(m: re.Match[bytes]) -> bytes:
        old = m.group(0)
        new = f"/{m.group(1).decode()} (D:{when.strftime('%Y%m%d%H%M%S')}+00'00')".encode()
        return new if len(new) == len(old) else old

    return _PDF_DATE.sub(repl, pdf)


def html_to_pdf(
    html_path: Path, pdf_path: Path, when: datetime, chromium: str | None = None, timeout: float = 120
) -> None:
    exe = chromium or find_chromium()
    if exe is None:
        raise ToolMissing("Chromium is needed to print the recording statement to PDF (apt install chromium)")
    with tempfile.TemporaryDirectory(prefix="vaudit-chromium-") as profile:
        cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf_path}",
            html_path.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not pdf_path.exists():
        raise ToolMissing(
            f"Chromium failed to print {html_path.name} (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-400:]}"
        )
    pdf_path.write_bytes(pin_pdf_dates(pdf_path.read_bytes(), when))
