"""The case's risk alerts on the disc: the gap/alert report (gaps.json, gaps.html) and the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exporter import disc_page
from exporter.plan import build_plan
from tests.exporter.conftest import export, extract
from tests.exporter.scenario import Scenario

ALERTS = (
    {
        "id": 7,
        "rule": "recording_lost",
        "label_zh": "录像中断",
        "label_en": "Recording lost",
        "severity": "high",
        "state": "resolved",
        "start": "2024-05-01T01:00:15.000000Z",
        "end": "2024-05-01T01:00:20.000000Z",
        "room_id": "R-INT",
        "camera_id": "cam-int",
        "message": "camera cam-int in room R-INT: recording gap (disconnect) while occupied",
        "acknowledged_by": "zhang",
        "resolved_by": "li",
        "note": "摄像机重启",
    },
    {
        "id": 9,
        "rule": "officers_short",
        "label_zh": "讯问民警不足两人",
        "label_en": "Fewer than two officers",
        "severity": "high",
        "state": "open",
        "start": "2024-05-01T01:00:30.000000Z",
        "end": None,
        "room_id": "R-INT",
        "camera_id": None,
        "message": "interrogation of 张某 in room R-INT with 1 officer(s)",
        "acknowledged_by": None,
        "resolved_by": None,
        "note": None,
    },
)


@pytest.mark.integration  # a whole export of its own: ~2.6 s
def test_alerts_are_listed_in_the_report_and_manifest(
    scenario: tuple[Scenario, Path], tmp_path: Path
) -> None:
    sc, key = scenario
    _plan, result = export(sc, key, tmp_path / "out", alerts=ALERTS)
    root = extract(result.master_images[0], tmp_path / "x")
    report = json.loads((root / "gaps.json").read_text(encoding="utf-8"))
    got = [(a["id"], a["rule"], a["start_local"], a["end_local"]) for a in report["alerts"]]
    assert got == [
        (7, "recording_lost", "2024-05-01 09:00:15", "2024-05-01 09:00:20"),
        (9, "officers_short", "2024-05-01 09:00:30", ""),
    ]
    page = (root / "gaps.html").read_text(encoding="utf-8")
    assert (
        "风险告警 Risk alerts" in page
        and "讯问民警不足两人" in page
        and "已处置 resolved；确认 zhang；处置 li；摄像机重启" in page
    )
    statement = (root / "statement.html").read_text(encoding="utf-8")
    assert "风险告警" in statement and "2 条，详见 gaps.html（2 alert(s), see gaps.html）" in statement
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert [(a["id"], a["state"], a["end"]) for a in manifest["alerts"]] == [
        (7, "resolved", "2024-05-01T01:00:20.000000Z"),
        (9, "open", None),
    ]
    entry = next(f for f in manifest["files"] if f["path"] == "gaps.json")
    assert entry["role"] == "report"  # hashed and signed with the rest of the disc


def test_no_alerts_says_none(scenario: tuple[Scenario, Path]) -> None:
    sc, _key = scenario
    plan = build_plan(sc.request, sc.footage, sc.events, sc.rooms)
    data = disc_page.gaps_data(plan, ZoneInfo("Asia/Shanghai"))
    assert data["alerts"] == []
    page = disc_page.gaps_html(data)
    assert "<h2>风险告警 Risk alerts</h2>" in page and "colspan=8>无 None" in page
