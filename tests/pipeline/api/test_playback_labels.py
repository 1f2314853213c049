"""The subtitles' gap names are the pages' names: pipeline/api/playback.py's GAP_NAMES and the
"cause" table of pipeline/web/static/labels.js say the same for every cause."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from domain.types import GapCause, GapRecord
from pipeline.api.playback import GAP_NAMES, gap_text

LABELS_JS = Path(__file__).resolve().parents[3] / "pipeline" / "web" / "static" / "labels.js"


def _cause_table() -> dict[str, tuple[str, str]]:
    text = LABELS_JS.read_text(encoding="utf-8")
    block = text[text.index("  cause: {") : text.index("},", text.index("  cause: {"))]
    return {m[0]: (m[1], m[2]) for m in re.findall(r'(\w+): \["([^"]+)", "([^"]+)"\]', block)}


def test_every_cause_is_named_as_on_the_pages() -> None:
    table = _cause_table()
    assert set(table) == {c.value for c in GapCause}
    assert {c.value: names for c, names in GAP_NAMES.items()} == table


def test_gap_text_by_language() -> None:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    gap = GapRecord("cam", t, t, GapCause.DISCONNECT, "")
    assert gap_text(gap, "zh-CN") == "录像中断：连接断开"
    assert gap_text(gap, "en") == "gap: disconnected"
    audio = GapRecord("cam", t, t, GapCause.AUDIO_LOST, "")
    assert gap_text(audio, "zh-CN") == "录音中断：音频丢失"  # the picture was recorded
