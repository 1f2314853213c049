"""docker-compose.yml against the code (Docker itself cannot run here): the file parses, every
service has a named image, every ``vaudit`` command and option exists, every VAUDIT_* key is a
real setting and the centre file loads with the compose environment, long-running services have
health checks, named volumes are declared. And its security: no password has a default (the file
does not even interpolate without them), the secrets check refuses the demo's passwords outside
demo mode, nothing but the TLS proxy's 443 is published beyond this host, and the API believes
X-Forwarded-For from that proxy alone."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
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
# services that run `vaudit` (secrets-check runs the project's image with its own entrypoint)
OURS = {
    name: svc
    for name, svc in SERVICES.items()
    if svc.get("image", "").startswith("video-audit") and "entrypoint" not in svc
}
_VAR = re.compile(r"\$\{([A-Z_]+)(?::([-?])([^}]*))?\}")
DEMO_ENV = dict(
    line.split("=", 1)
    for line in (ROOT / "deploy" / "demo.env").read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
)
SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")


class Unset(Exception):
    """A ``${VAR:?message}`` whose variable is unset: docker compose refuses to start."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            raise Unset(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VAR.sub(one, text)


def _env(svc: dict[str, Any], env: dict[str, str] = DEMO_ENV) -> dict[str, str]:
    return {k: interpolate(str(v), env) for k, v in (svc.get("environment") or {}).items()}


def test_services_and_images() -> None:
    assert {
        "secrets-check",
        "minio",
        "minio-init",
        "postgres",
        "cameras",
        "api",
        "proxy",
        "recorder-1",
        "recorder-2",
        "recorder-3",
    } <= set(SERVICES)
    for name, svc in SERVICES.items():
        assert svc.get("image"), f"{name} has no image"
        assert ":" in svc["image"], f"{name}: image {svc['image']} has no tag"
    assert "--with-lock" in " ".join(SERVICES["minio-init"]["command"])
    once = ("minio-init", "secrets-check")
    long_running = [n for n, s in SERVICES.items() if n not in once and "jobs" not in s.get("profiles", [])]
    for name in long_running:
        assert "healthcheck" in SERVICES[name], f"{name} has no health check"
    declared = set(COMPOSE["volumes"])
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                assert source in declared, f"{name}: volume {source} not declared"


def _help(args: list[str]) -> str:
    out = subprocess.run(
        [VAUDIT, *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
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


# --- security of the deployment ---------------------------------------------------------------


def test_no_secret_has_a_default_and_the_file_does_not_start_without_them() -> None:
    raw = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for m in _VAR.finditer(raw):
        if m.group(1) in SECRETS:
            assert m.group(2) == "?", f"{m.group(0)} gives {m.group(1)} a default"
    assert "vaudit-secret" not in raw and "POSTGRES_PASSWORD: vaudit" not in raw
    for secret in SECRETS:
        missing = {k: v for k, v in DEMO_ENV.items() if k != secret}
        with pytest.raises(Unset, match=secret):
            interpolate(raw, missing)
    interpolate(raw, DEMO_ENV)  # the demo's env file sets everything the file needs


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = ROOT / "deploy" / "check_secrets.py"
    return subprocess.run(
        [sys.executable, str(script)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_secrets_check_refuses_the_demo_passwords_outside_demo_mode() -> None:
    check = SERVICES["secrets-check"]
    assert check["entrypoint"][-1] == "/etc/vaudit/check_secrets.py"
    # what the service is given, from the demo's env file with the mode left at its default
    production = {k: v for k, v in DEMO_ENV.items() if k != "VAUDIT_DEPLOY_MODE"}
    env = _env(check, production)
    assert env["VAUDIT_DEPLOY_MODE"] == "production"
    refused = _check(env)
    assert refused.returncode == 1
    assert "POSTGRES_PASSWORD is a published default" in refused.stderr
    assert "MINIO_ROOT_PASSWORD is a published default" in refused.stderr
    assert _check(_env(check, DEMO_ENV)).returncode == 0  # demo mode: warned, not refused
    strong = {**env, "POSTGRES_PASSWORD": "Xq7-t9Lm2vR8sK4pW1", "MINIO_ROOT_PASSWORD": "b6Yh3Nc9Qz5Tf2Lw8"}
    assert _check(strong).returncode == 0, _check(strong).stderr
    bad_url = _check({**strong, "POSTGRES_PASSWORD": "Xq7@t9Lm2vR8sK4pW1/"})
    assert bad_url.returncode == 1 and "database URL" in bad_url.stderr
    # the stores that hold the evidence and the index start only after the check passed
    for name in ("minio", "postgres"):
        assert SERVICES[name]["depends_on"]["secrets-check"] == {
            "condition": "service_completed_successfully"
        }


def _published(svc: dict[str, Any]) -> list[str]:
    return [str(p) for p in svc.get("ports", [])]


def test_only_the_tls_proxy_is_published_beyond_this_host() -> None:
    assert "ports" not in SERVICES["api"], "the API speaks plain HTTP: never publish it"
    for name, svc in SERVICES.items():
        for port in _published(svc):
            if name == "proxy":
                assert port == "443:443", port
            else:
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every address"
    caddy = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    assert "reverse_proxy api:8080" in caddy and "tls {$VAUDIT_TLS}" in caddy
    # the client's own X-Forwarded-For is replaced, not appended to
    assert "header_up X-Forwarded-For {remote_host}" in caddy
    proxy = SERVICES["proxy"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]


def test_the_api_trusts_forwarded_headers_from_the_proxy_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy_ip = SERVICES["proxy"]["networks"]["edge"]["ipv4_address"]
    subnet = ipaddress.ip_network(COMPOSE["networks"]["edge"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(proxy_ip) in subnet
    assert "edge" in SERVICES["api"]["networks"]
    for key, value in _env(SERVICES["api"]).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(ROOT / "deploy" / "centre.toml")
    assert settings.api.trusted_proxies == [proxy_ip]
