"""Exports shared by the exporter tests (built once per session: real media, real images)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.job import ExportOptions, ExportResult, run_export
from exporter.plan import ExportPlan, build_plan
from exporter.signing import generate_signing_key
from tests.exporter.scenario import Scenario, build_scenario

REF = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
TINY_MEDIA = 3_000_000  # bytes: forces the set over several discs
TINY_FILE = 150_000  # bytes: forces videos to split into parts


@dataclass
class Exported:
    scenario: Scenario
    plan: ExportPlan
    key: Path
    result: ExportResult
    extracted: Path  # the master image extracted by xorriso
    manifest: dict[str, Any]


def extract(image: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(dest)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for p in dest.rglob("*"):  # xorriso keeps the read-only modes of the disc
        p.chmod(0o755 if p.is_dir() else 0o644)
    dest.chmod(0o755)
    return dest


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Path]:
    base = tmp_path_factory.mktemp("scenario")
    key = base / "signing.pem"
    generate_signing_key(key)
    return build_scenario(base / "store"), key


def export(sc: Scenario, key: Path, out: Path, **kw: Any) -> tuple[ExportPlan, ExportResult]:
    plan = build_plan(sc.request, sc.footage, sc.events, sc.rooms)
    opts = ExportOptions(
        signing_key=key,
        reference_time=REF,
        exported_by="测试员 tester",
        host="test-host",
        audit_rows=({"time": "2024-05-01T05:59:00Z", "user": "tester", "action": "export.request"},),
        **kw,
    )
    return plan, run_export(plan, sc.reader, out, opts)


@pytest.fixture(scope="session")
def exported(scenario: tuple[Scenario, Path], tmp_path_factory: pytest.TempPathFactory) -> Exported:
    sc, key = scenario
    out = tmp_path_factory.mktemp("export")
    plan, result = export(sc, key, out)
    extracted = extract(result.master_images[0], out / "extracted")
    manifest = json.loads((extracted / "manifest.json").read_text(encoding="utf-8"))
    return Exported(sc, plan, key, result, extracted, manifest)


@pytest.fixture(scope="session")
def split_exports(
    scenario: tuple[Scenario, Path], tmp_path_factory: pytest.TempPathFactory
) -> list[ExportResult]:
    """The same input exported twice on a tiny medium with tiny file limits."""
    sc, key = scenario
    results = []
    for name in ("split-a", "split-b"):
        _plan, res = export(
            sc, key, tmp_path_factory.mktemp(name), media=TINY_MEDIA, max_file_bytes=TINY_FILE
        )
        results.append(res)
    return results
