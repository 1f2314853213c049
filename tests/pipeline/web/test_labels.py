"""labels.js names every audit action the code writes: a new action without a name shows its raw
code on the 法制员's audit page (``board_view`` did)."""

from __future__ import annotations

import re
from pathlib import Path

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
