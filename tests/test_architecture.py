"""The package layout's one-way imports, checked by import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: " in result.stdout and " broken" in result.stdout
    assert "0 broken" in result.stdout


def test_domain_types_do_no_io() -> None:
    """domain/ is the shared vocabulary; it must not reach for files, sockets or libraries."""
    forbidden = {
        "os",
        "io",
        "socket",
        "subprocess",
        "pathlib",
        "sqlalchemy",
        "av",
        "requests",
        "httpx",
        "minio",
    }
    for path in (ROOT / "domain").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            bad = forbidden.intersection(names)
            assert not bad, f"{path.name} imports {bad}"
