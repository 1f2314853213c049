"""Camera passwords never leave the configuration: ``vaudit run`` end to end (issue 16, point 1).

Cameras that demand an RTSP Digest login are recorded with the login written into the URL and
with the login given apart (user in the file, password from the environment); one camera is
given a wrong password, two hostile servers have a login and a ``password=`` in their URLs. The
test stalls a camera for 12 s, points one at a port where nothing listens (the issue's case: a stall gap, a ``camera_lost`` alert), drives a
case through the API, exports the subject's disc, and then searches every output for every
secret, in every spelling: the log, the spool, the storage, a dump of the database, every API
answer an administrator can reach (every GET of the OpenAPI document, the pages, the alert
stream), the disc images and their files as 7z extracts them, and the recorder processes'
command lines. Runs on SQLite with recorder processes and on PostgreSQL with recorder threads.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from domain.credentials import CameraLogin, spellings, with_login
from domain.types import iso
from pipeline.simulator.camera import SimulatedCamera, free_port
from pipeline.simulator.hostile import GarbageRtpServer, MalformedReplyServer
from tests.support.centre_files import CamSpec, write_centre
from tests.support.tcp_proxy import TcpProxy
from tests.support.vaudit_proc import VauditRun

pytestmark = pytest.mark.integration

USER = "admin"
PASSWORD_A = "Aa1@x:y/z %密"  # in the URL (percent-encoded there)
PASSWORD_B = "Bb2#env&secret"  # apart from the URL, from the environment
WRONG = "Wr0ng-Guess!"  # a wrong password is a secret too (another camera's, say)
HOSTILE = "H0stile-Login"
QUERY = "Qu3ry-Secret"
SECRETS = (PASSWORD_A, PASSWORD_B, WRONG, HOSTILE, QUERY)


def leak_forms() -> dict[str, str]:
    """Spelling -> the secret it spells: every form a secret can take on its way out, and the
    Basic authorization header's base64 of each login."""
    forms: dict[str, str] = {}
    for secret in SECRETS:
        for form in spellings(secret):
            forms[form] = secret
        forms[base64.b64encode(f"{USER}:{secret}".encode()).decode()] = secret
    return forms


FORMS = leak_forms()


def leaks(data: bytes | str) -> list[str]:
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    raw = data if isinstance(data, bytes) else data.encode()
    found = [form for form in FORMS if form in text]
    # bytes too: a UTF-16 or Latin-1 copy (the ISO's Joliet names) would not show in UTF-8 text
    found += [f"{form} (utf-16)" for form in FORMS if form.encode("utf-16-be") in raw]
    return found


class Findings:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.checked = 0

    def check(self, where: str, data: bytes | str) -> None:
        self.checked += 1
        for form in leaks(data):
            self.items.append(f"{where}: {form!r}")

    def files(self, root: Path, what: str) -> None:
        for path in sorted(root.rglob("*")):
            self.check(f"{what} name {path.relative_to(root)}", str(path.relative_to(root)))
            if path.is_file():
                self.check(f"{what} {path.relative_to(root)}", path.read_bytes())


@pytest.fixture
def auth_cameras(tmp_path: Path) -> Iterator[dict[str, Any]]:
    a = SimulatedCamera(
        "auth-a", free_port(), width=320, height=240, bitrate_kbps=300, rtsp_credentials=(USER, PASSWORD_A)
    )
    b = SimulatedCamera(
        "auth-b", free_port(), width=320, height=240, bitrate_kbps=300, rtsp_credentials=(USER, PASSWORD_B)
    )
    with contextlib.ExitStack() as stack:
        for cam in (a, b):
            stack.enter_context(cam)
        proxy = stack.enter_context(TcpProxy("127.0.0.1", a.port))
        malformed = stack.enter_context(MalformedReplyServer("bad_sdp"))
        garbage = stack.enter_context(GarbageRtpServer(packets_per_second=50, seed=16))
        yield {"a": a, "b": b, "proxy": proxy, "malformed": malformed, "garbage": garbage}


def _config(tmp_path: Path, cams: dict[str, Any], db_url: str, processes: int) -> Path:
    a, proxy = cams["a"], cams["proxy"]
    hostile_login = CameraLogin(USER, HOSTILE)
    specs = [
        # the login in the URL (percent-encoded), through a proxy that can stall
        CamSpec(
            "auth-a",
            "int-1",
            "interrogation",
            with_login(proxy.url_for(a.path), CameraLogin(USER, PASSWORD_A)),
        ),
        # the login apart: user below, the password from VAUDIT_RECORDER__CAMERA_PASSWORDS
        CamSpec("auth-b", "int-1", "interrogation", cams["b"].url),
        # a wrong password: refused (401) every time
        CamSpec("wrong", "wait-1", "waiting", with_login(a.url, CameraLogin(USER, WRONG))),
        # hostile answers, a login and a password in the query string
        CamSpec(
            "bad-sdp",
            "wait-1",
            "waiting",
            with_login(cams["malformed"].url, hostile_login) + f"?channel=1&password={QUERY}",
        ),
        CamSpec("garbage", "wait-1", "waiting", with_login(cams["garbage"].url, hostile_login)),
        # nothing listens there: the connection is refused
        CamSpec(
            "refused", "wait-1", "waiting", with_login(f"rtsp://127.0.0.1:{free_port()}/x", hostile_login)
        ),
    ]
    extra = (
        f"stall_seconds = 3.0\nprocesses = {processes}\n"
        f'[api]\nupload_tmp = "{tmp_path / "uploads"}"\n'
        f'[export]\nout_dir = "{tmp_path / "exports"}"\nsigning_key = "{tmp_path / "keys" / "ed25519.pem"}"\n'
        '[[rooms]]\nid = "out-1"\nname = "出口"\nkind = "exit"\n'
    )
    path = write_centre(tmp_path / "centre.toml", specs, db_url, segment_seconds=2.0, extra=extra)
    text = path.read_text(encoding="utf-8").replace(
        '  id = "auth-b"\n', '  id = "auth-b"\n  user = "admin"\n'
    )
    path.write_text(text, encoding="utf-8")
    return path


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _segments(run: VauditRun, camera: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    body = run.get(
        f"/api/v1/cameras/{camera}/segments",
        start=iso(now - timedelta(minutes=10)),
        end=iso(now + timedelta(minutes=1)),
    ).json()
    return list(body["segments"])


def _fill(path: str, values: dict[str, list[str]]) -> list[str]:
    """Every concrete URL of an OpenAPI path template, from the known values of its parameters."""
    out = [path]
    for name in re.findall(r"{(\w+)}", path):
        assert name in values, f"GET {path}: no test value for {{{name}}}; add one to this test"
        out = [p.replace(f"{{{name}}}", v) for p in out for v in values[name]]
    return out


def _get_everything(run: VauditRun, ids: dict[str, list[str]], findings: Findings) -> None:
    now = datetime.now(UTC)
    query = {
        "start": iso(now - timedelta(minutes=10)),
        "end": iso(now + timedelta(minutes=1)),
        "since": iso(now - timedelta(minutes=10)),
        # the export plan of the case's subject
        "case": ids["case_id"][0],
        "subject": ids["subject_id"][0],
        "case_id": ids["case_id"][0],
    }
    spec = httpx.get(f"{run.base}/openapi.json", headers=run.headers, timeout=10).json()
    with httpx.Client(base_url=run.base, headers=run.headers, timeout=60) as client:
        for path, ops in sorted(spec["paths"].items()):
            if "get" not in ops:
                continue
            params = {}
            for param in ops["get"].get("parameters", []):
                if param["in"] == "query" and param.get("required"):
                    assert param["name"] in query, f"GET {path}: no test value for ?{param['name']}"
                    params[param["name"]] = query[param["name"]]
            for url in _fill(path, ids):
                if url.endswith("/stream"):
                    with client.stream("GET", url) as resp:  # Server-Sent Events: the snapshot
                        data = b""
                        for chunk in resp.iter_bytes():
                            data += chunk
                            if len(data) > 4096 or b"\n\n" in data:
                                break
                    findings.check(f"GET {url}", data)
                    continue
                resp = client.get(url, params=params)
                assert resp.status_code < 500, (url, resp.status_code, resp.text[:300])
                findings.check(f"GET {url} ({resp.status_code}) headers", str(resp.headers))
                findings.check(f"GET {url} ({resp.status_code})", resp.content)
        for page in (
            "/",
            "/search",
            "/play",
            "/live",
            "/alerts",
            "/admin/audit",
            "/metrics",
            *(f"/cases/{c}" for c in ids["case_id"]),
        ):
            resp = client.get(page)
            findings.check(f"page {page} ({resp.status_code})", resp.content)


def _database_dump(db_url: str) -> bytes:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        with contextlib.closing(sqlite3.connect(str(url.database))) as conn:
            return "\n".join(conn.iterdump()).encode()
    done = subprocess.run(
        ["pg_dump", "--no-owner", url.set(drivername="postgresql").render_as_string(False)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_camera_passwords_are_in_no_output(tmp_path: Path, auth_cameras: dict[str, Any], db_url: str) -> None:
    processes = 1 if db_url.startswith("sqlite") else 0
    config = _config(tmp_path, auth_cameras, db_url, processes)
    env = {"VAUDIT_RECORDER__CAMERA_PASSWORDS": json.dumps({"auth-b": PASSWORD_B})}
    findings = Findings()
    with VauditRun(config, tmp_path / "run.log", env=env) as run:
        assert run.proc is not None
        # both logins work: the cameras record
        _wait(
            "footage of both cameras",
            lambda: len(_segments(run, "auth-a")) >= 2 and len(_segments(run, "auth-b")) >= 2,
            40,
        )
        if processes:
            children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == run.proc.pid]
            assert children, "no recorder process"
            for child in children:
                findings.check(f"command line of pid {child.name}", (child / "cmdline").read_bytes())

        api = httpx.Client(base_url=f"{run.base}/api/v1", headers=run.headers, timeout=30)
        stamp = datetime.now(UTC).strftime("%H%M%S")
        case = api.post(
            "/cases", json={"case_number": f"C{stamp}", "title": "凭据泄露测试", "charge": "盗窃"}
        ).json()
        subject = api.post(f"/cases/{case['id']}/subjects", json={"name": "张三", "role": "suspect"}).json()
        entered = datetime.now(UTC)
        resp = api.post(
            "/observations",
            json={
                "id": f"o1-{stamp}",
                "room_id": "int-1",
                "time": iso(entered),
                "source": "wristband",
                "subject_id": subject["id"],
            },
        )
        assert resp.status_code in (200, 201), resp.text

        # the stall: 12 s without data on an open connection
        time.sleep(3)
        auth_cameras["proxy"].stall()
        time.sleep(12)
        auth_cameras["proxy"].resume()
        _wait(
            "the stall gap",
            lambda: [
                g
                for g in run.get(
                    "/api/v1/cameras/auth-a/gaps", start=iso(entered), end=iso(datetime.now(UTC))
                ).json()["gaps"]
                if g["cause"] == "stall"
            ],
            60,
        )
        alerts = run.get("/api/v1/alerts").json()
        assert "camera_lost" in json.dumps(alerts), alerts
        errors = {c["id"]: c.get("last_error") for c in run.get("/api/v1/cameras").json()["cameras"]}
        assert errors["wrong"] and "401" in errors["wrong"], errors
        assert errors["bad-sdp"] and errors["garbage"] and errors["refused"], errors

        time.sleep(4)
        left = datetime.now(UTC)
        resp = api.post(
            "/observations",
            json={
                "id": f"o2-{stamp}",
                "room_id": "out-1",
                "time": iso(left),
                "source": "wristband",
                "subject_id": subject["id"],
            },
        )
        assert resp.status_code in (200, 201), resp.text
        _wait(
            "footage past the stay",
            lambda: all(
                _segments(run, c)[-1]["end"] > iso(left + timedelta(seconds=1)) for c in ("auth-a", "auth-b")
            ),
            40,
        )
        job = api.post(
            "/exports",
            json={
                "case": case["case_number"],
                "subject": str(subject["id"]),
                "from": iso(entered + timedelta(seconds=1)),
                "to": iso(left),
                "allow_unexplained": True,
            },
        ).json()
        job = _wait(
            "the export",
            lambda: (
                (j := api.get(f"/exports/{job['id']}").json())["state"] not in ("queued", "running") and j
            ),
            300,
        )
        assert job["state"] == "done", job
        manifest = json.loads(next((tmp_path / "exports").rglob("manifest.json")).read_text(encoding="utf-8"))
        assert any(g["cause"] == "stall" for g in manifest["gaps"]), manifest["gaps"]

        alert_ids = [str(a["id"]) for a in api.get("/alerts").json()["items"]]
        officer = api.post("/officers", json={"name": "李明", "badge_number": f"P{stamp}"}).json()
        ids = {
            "camera_id": ["auth-a", "auth-b", "wrong", "bad-sdp", "garbage", "refused"],
            "case_id": [str(case["id"])],
            "subject_id": [str(subject["id"])],
            "officer_id": [str(officer["id"])],
            "job_id": [job["id"]],
            "alert_id": alert_ids or ["1"],
            "name": job["files"],
            "clip_id": ["1"],  # no clip was uploaded: the refusal must not echo a password either
        }
        _get_everything(run, ids, findings)
        api.close()

    # what stays behind: the log, spool, storage, the disc and the database
    findings.check("vaudit run log", (tmp_path / "run.log").read_bytes())
    log = (tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")
    assert "401" in log and "stall" in log, "the errors did not reach the log"
    for root in (tmp_path / "spool", tmp_path / "store"):
        findings.files(root, root.name)
        loose = [p for p in [root, *root.rglob("*")] if p.stat().st_mode & 0o007]
        assert not loose, f"readable by other accounts: {loose[:5]}"
    findings.files(tmp_path / "exports", "exports")
    images = sorted((tmp_path / "exports").rglob("*.iso"))
    assert images
    for image in images:
        out = tmp_path / "extracted" / image.stem
        subprocess.run(
            ["7z", "x", "-y", f"-o{out}", str(image)], capture_output=True, timeout=300, check=True
        )
        assert (out / "gaps.json").is_file() and (out / "manifest.json").is_file()
        assert "stall" in (out / "gaps.json").read_text(encoding="utf-8")
        findings.files(out, f"disc {image.name}")
    findings.check("database dump", _database_dump(db_url))
    assert findings.checked > 100, findings.checked
    assert not findings.items, "\n".join(findings.items[:40])


def _stat(proc: Path) -> str:
    try:
        return (proc / "stat").read_text()
    except OSError:
        return ""


def _ppid(proc: Path) -> int:
    text = _stat(proc)
    return int(text.rsplit(")", 1)[1].split()[1]) if text else -1
