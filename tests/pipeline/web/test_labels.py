"""labels.js names every audit action the code writes (a new action without a name shows its raw
code on the 法制员's audit page: ``board_view`` did), and names events and gap causes in the disc's
words (domain.names), as the playback subtitles do."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from domain.names import EVENT_NAMES, GAP_CAUSE_NAMES
from domain.types import EventType, GapCause, GapRecord
from pipeline.api.playback import gap_text

ROOT = Path(__file__).resolve().parents[3]
LABELS = ROOT / "pipeline" / "web" / "static" / "labels.js"
# caller.audit("action", ...), sec.audit.append(who, "action", ...), audit_log.append(user, "action", ...)
WRITES = re.compile(r"""(?:\.audit\(\s*|audit(?:_log)?\.append\(\s*[^,()]+,\s*)["']([a-z_.]+)["']""")


def _kind(name: str) -> set[str]:
    text = LABELS.read_text(encoding="utf-8")
    body = re.search(rf"\n  {name}: \{{(.*?)\}},\n", text, re.S)
    assert body, f"labels.js has no kind {name}"
    return set(re.findall(r"""(?:^|[\s{,])["']?([a-z_.]+)["']?:\s*\[""", body[1]))


def _written() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("indexer/**/*.py")]:
        found |= set(WRITES.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_audit_action_written_has_a_name() -> None:
    written = _written()
    assert {"login", "view_case", "board_view", "playback"} <= written, written  # the scan works
    missing = written - _kind("audit_action")
    assert not missing, f"audit actions without a name in labels.js: {sorted(missing)}"


def test_every_audit_client_word_has_a_name() -> None:
    assert "cli" in _kind("audit_client")


def _pairs(name: str) -> dict[str, tuple[str, str]]:
    text = LABELS.read_text(encoding="utf-8")
    body = re.search(rf"\n  {name}: \{{(.*?)\}},\n", text, re.S)
    assert body, f"labels.js has no kind {name}"
    return {m[0]: (m[1], m[2]) for m in re.findall(r'(\w+): \["([^"]+)", "([^"]+)"\]', body[1])}


def test_events_and_gap_causes_are_named_as_on_the_disc() -> None:
    """The web and the disc say the same words for the same event or gap (domain.names)."""
    assert _pairs("event") == {t.value: names for t, names in EVENT_NAMES.items()}
    assert _pairs("cause") == {c.value: names for c, names in GAP_CAUSE_NAMES.items()}
    assert set(EVENT_NAMES) == set(EventType) and set(GAP_CAUSE_NAMES) == set(GapCause)


def test_playback_subtitles_say_the_gap_in_the_pages_language() -> None:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    gap = GapRecord("cam", t, t, GapCause.DISCONNECT, "")
    assert gap_text(gap, "zh-CN") == "录像中断：连接中断"
    assert gap_text(gap, "en") == "gap: disconnected"
    audio = GapRecord("cam", t, t, GapCause.AUDIO_LOST, "")
    assert gap_text(audio, "zh-CN") == "录音中断：无声音（画面照常）"  # the picture was recorded
