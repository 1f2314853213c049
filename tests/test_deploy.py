"""docker-compose.yml against the code (Docker itself cannot run here): the file parses, every
service has a named image, every ``vaudit`` command and option exists, every VAUDIT_* key is a
real setting and the centre file loads with the compose environment, long-running services have
health checks, named volumes are declared."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from pipeline.settings import Settings, load_settings
from tests.support.vaudit_proc import VAUDIT

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("image", "").startswith("video-audit")}
_DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


def _env(svc: dict[str, Any]) -> dict[str, str]:
    return {k: _DEFAULT.sub(r"\1", str(v)) for k, v in (svc.get("environment") or {}).items()}


def test_services_and_images() -> None:
    assert {"minio", "minio-init", "postgres", "cameras", "api", "recorder-1", "recorder-2", "recorder-3"} <= set(
        SERVICES
    )
    for name, svc in SERVICES.items():
        assert svc.get("image"), f"{name} has no image"
        assert ":" in svc["image"], f"{name}: image {svc['image']} has no tag"
    assert "--with-lock" in " ".join(SERVICES["minio-init"]["command"])
    long_running = [n for n, s in SERVICES.items() if n != "minio-init" and "jobs" not in s.get("profiles", [])]
    for name in long_running:
        assert "healthcheck" in SERVICES[name], f"{name} has no health check"
    declared = set(COMPOSE["volumes"])
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                assert source in declared, f"{name}: volume {source} not declared"


def _help(args: list[str]) -> str:
    out = subprocess.run([VAUDIT, *args, "--help"], capture_output=True, text=True, timeout=60,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("name", sorted(OURS))
def test_command_and_options_exist(name: str) -> None:
    command = [str(c) for c in OURS[name]["command"]]
    words = [c for c in command if not c.startswith("-")]
    sub = [words[0]] + ([words[1]] if words[0] == "retention" else [])
    text = _help(sub)
    for option in (c for c in command if c.startswith("--")):
        assert re.search(rf"{re.escape(option)}\b", text), f"{name}: vaudit {' '.join(sub)} has no {option}"


def _field(model: type[BaseModel], path: list[str]) -> None:
    name = path[0].lower()
    assert name in model.model_fields, f"{model.__name__} has no field {name!r}"
    if len(path) > 1:
        annotation = model.model_fields[name].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel), name
        _field(annotation, path[1:])


@pytest.mark.parametrize("name", sorted(OURS))
def test_environment_maps_to_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(OURS[name])
    for key in env:
        assert key.startswith("VAUDIT_"), key
        _field(Settings, key.removeprefix("VAUDIT_").split("__"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(ROOT / "deploy" / "centre.toml")
    if name.startswith("recorder") or name == "api":
        assert settings.storage.kind == "s3" and settings.retention.object_lock
        assert settings.database.url.startswith("postgresql://")
    if name.startswith("recorder"):
        assert str(settings.recorder.spool) == "/spool"
        assert settings.fleet.renew_seconds * 2 <= settings.fleet.lease_seconds


def test_each_recorder_has_its_own_spool_and_health_port() -> None:
    recorders = {n: s for n, s in OURS.items() if s["command"][0] == "recorder"}
    assert len(recorders) >= 3
    spools = {next(v for v in s["volumes"] if v.endswith(":/spool")) for s in recorders.values()}
    ports = {s["command"][s["command"].index("--health-port") + 1] for s in recorders.values()}
    nodes = {s["command"][s["command"].index("--node-id") + 1] for s in recorders.values()}
    assert len(spools) == len(ports) == len(nodes) == len(recorders)
