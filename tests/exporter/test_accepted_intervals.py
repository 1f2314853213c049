"""Unexplained seconds accepted with a note: the plan lets them through only when every one is
accepted, and the note reaches the recording statement and the gap report on the disc."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from domain.types import TimeRange
from exporter.errors import UnexplainedFootage
from exporter.job import ExportOptions, run_export
from exporter.plan import AcceptedInterval, ExportPlan, build_plan
from tests.exporter.conftest import REF, extract
from tests.exporter.scenario import Scenario, at

NOTE = "押解途中（警车内无摄像机）"


def transfer_plan(sc: Scenario) -> ExportPlan:
    """The scenario with the entry registered 2.2 s after the arrest clip ends (the transfer)."""
    footage = list(sc.footage)
    entry = footage[1]
    footage[1] = replace(
        entry,
        stay=replace(entry.stay, start=at(5.2)),
        interval=TimeRange(at(5.2), entry.interval.end),
    )
    return build_plan(sc.request, footage, sc.events, sc.rooms)


def test_accepting_every_unexplained_second_lets_the_plan_through(scenario: tuple[Scenario, Path]) -> None:
    sc, _key = scenario
    plan = transfer_plan(sc)
    assert plan.unexplained == (TimeRange(at(3), at(5.2)),)  # between the clip and the entry
    with pytest.raises(UnexplainedFootage):
        plan.require_explained()
    plan.require_explained(accepted=[AcceptedInterval(TimeRange(at(3), at(5.2)), NOTE, "zhang")])
    # a note on part of the hole leaves the rest refused, and the error names only the rest
    with pytest.raises(UnexplainedFootage) as err:
        plan.require_explained(accepted=[AcceptedInterval(TimeRange(at(3), at(4)), NOTE)])
    assert err.value.intervals == [TimeRange(at(4), at(5.2))]
    # a note elsewhere explains nothing
    with pytest.raises(UnexplainedFootage):
        plan.require_explained(accepted=[AcceptedInterval(TimeRange(at(30), at(40)), NOTE)])


@pytest.mark.integration  # a whole export of its own: ~3 s
def test_the_note_is_on_the_statement_and_in_the_gap_report(
    scenario: tuple[Scenario, Path], tmp_path: Path
) -> None:
    sc, key = scenario
    plan = transfer_plan(sc)
    accepted = (AcceptedInterval(TimeRange(at(3) - timedelta(seconds=1), at(5.2)), NOTE, "zhang"),)
    opts = ExportOptions(
        signing_key=key, reference_time=REF, exported_by="zhang", host="h", accepted=accepted
    )
    with pytest.raises(UnexplainedFootage):
        run_export(plan, sc.reader, tmp_path / "refused", replace(opts, accepted=()))
    result = run_export(plan, sc.reader, tmp_path / "out", opts)
    root = extract(result.master_images[0], tmp_path / "x")
    statement = (root / "statement.html").read_text(encoding="utf-8")
    assert "未说明的时段" in statement and NOTE in statement and "确认人 zhang" in statement
    assert "2024-05-01 09:00:03" in statement and "2.2 秒" in statement
    report = json.loads((root / "gaps.json").read_text(encoding="utf-8"))
    assert [(u["start_local"], u["note"], u["accepted_by"]) for u in report["unexplained"]] == [
        ("2024-05-01 09:00:03", NOTE, "zhang")
    ]
    assert NOTE in (root / "gaps.html").read_text(encoding="utf-8")
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert next(f for f in manifest["files"] if f["path"] == "statement.html")["role"] == "statement"
