"""``vaudit demo`` as a newcomer meets it: it records the demo case, writes the disc, then serves
the centre it recorded with a one-time supervisor login until Ctrl-C, which stops every camera
process and server it started."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.database import create_engine_for
from indexer.users import UserStore
from pipeline.simulator.camera import free_port

pytestmark = pytest.mark.integration  # ~2 min: records the demo's 58 s script, exports, serves

VAUDIT = str(Path(sys.executable).with_name("vaudit"))
ROOMS = [
    ("entry-1", "入区登记室", "entry"),
    ("search-1", "人身检查室", "search"),
    ("wait-1", "候问室", "waiting"),
    ("int-1", "讯问室1", "interrogation"),
]


def _centre(root: Path) -> Path:
    lines = [
        f'[storage]\nkind = "local"\npath = "{root / "store"}"',
        f'[database]\nurl = "sqlite:///{root / "index.db"}"',
        f'[recorder]\nsegment_seconds = 4\nspool = "{root / "spool"}"',
        f'[api]\nupload_tmp = "{root / "uploads"}"',
        f'[export]\nout_dir = "{root / "exports"}"\nsigning_key = "{root / "keys" / "ed25519.pem"}"',
        f'[audit]\nkey_file = "{root / "keys" / "audit.key"}"',
    ]
    for rid, name, kind in ROOMS:
        lines.append(f'[[rooms]]\nid = "{rid}"\nname = "{name}"\nkind = "{kind}"')
        lines.append(
            f'  [[rooms.cameras]]\n  id = "{rid}-a"\n  url = "rtsp://127.0.0.1:{free_port()}/{rid}-a"'
        )
    path = root / "centre.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, theirs, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = {p for p, pp in parents.items() if pp == parent}
        found |= kids
        todo.extend(kids)
    return found


PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """This process adopts the orphans of its descendants (Linux's child subreaper) instead of
    init: a camera process the demo left behind stays visible here, even once it has exited (as
    an unreaped zombie), rather than vanishing into init the moment its stdin closes."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    assert prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _left_behind(pids: set[int]) -> dict[int, str]:
    """Those of ``pids`` still in the process table (running, or exited but never reaped by the
    demo), with their command lines; reaped here if they became this process's children."""
    left = {}
    for pid in sorted(pids):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        comm, state = stat.split("(", 1)[1].rsplit(")", 1)[0], stat.rsplit(")", 1)[1].split()[0]
        left[pid] = f"{comm} state {state}: {cmdline[:200]}"
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return left


def _read_lines(stream: object, out: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        out.put(line.rstrip("\n"))
    out.put(None)


def _until(lines: queue.Queue[str | None], pattern: str, seen: list[str], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line matching {pattern!r} in {timeout:.0f} s: {seen}") from None
        if line is None:
            raise AssertionError(f"the demo ended before printing {pattern!r}: {seen}")
        seen.append(line)
        if (m := re.search(pattern, line)) is not None:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"no line matching {pattern!r} in {timeout:.0f} s: {seen}")


def _login(client: httpx.Client, name: str, password: str) -> None:
    """The login form, as the browser submits it (its CSRF token from the form's cookie)."""
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert form.status_code == 200 and token is not None, form.text[:500]
    done = client.post("/login", data={"name": name, "password": password, "csrf": token[1], "next": "/"})
    assert done.status_code == 303, done.text[:500]


def test_demo_serves_what_it_recorded_until_ctrl_c(tmp_path: Path) -> None:
    with _adopting_orphans():
        _demo_until_ctrl_c(tmp_path)


def _demo_until_ctrl_c(tmp_path: Path) -> None:
    config = _centre(tmp_path)
    stderr = (tmp_path / "demo.err").open("wb")
    proc = subprocess.Popen(
        [VAUDIT, "demo", "--config", str(config), "--serve", "--port", "0", "--picture", "640x360"],
        stdin=subprocess.DEVNULL,  # not a terminal: --serve asks for the serving
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # its own process group, so the test can press "Ctrl-C" on it
    )
    stderr.close()
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    children: set[int] = set()
    try:
        base = _until(lines, r"serving the demo centre at (http://\S+)/ until Ctrl-C", seen, 400)[1]
        name = _until(lines, r"^  name:\s+(\S+)$", seen, 10)[1]
        password = _until(lines, r"^  password:\s+(\S+)$", seen, 10)[1]
        case_url = _until(lines, r"^the case:\s+(http://\S+)", seen, 10)[1]
        assert name.startswith("demo-supervisor-") and case_url.startswith(base + "/cases/")
        assert [s for s in seen if s.endswith(".iso")], seen  # the disc images came first

        with httpx.Client(base_url=base, timeout=30.0) as web:
            _login(web, name, password)
            me = web.get("/api/v1/auth/me").json()
            assert me["role"] == "supervisor", me
            case_id = int(case_url.rsplit("/", 1)[1])
            page = web.get(f"/cases/{case_id}")
            assert page.status_code == 200 and "case.js" in page.text
            case = web.get(f"/api/v1/cases/{case_id}").json()
            assert case["title"] == "张某盗窃案" and [s["name"] for s in case["subjects"]] == ["张三"]
            found = web.get("/api/v1/cases", params={"case_number": case["case_number"]}).json()
            assert [c["id"] for c in found["items"]] == [case_id], found
            exports = web.get("/api/v1/exports").json()["exports"]
            disc = [j for j in exports if j["case"] == case["case_number"]]
            assert len(disc) == 1 and disc[0]["state"] == "done", exports
            # A newcomer's own export runs too: the app served the demo's export first, and its
            # shutdown then stopped the export worker (the job sat queued for ever).
            csrf = re.search(r'data-csrf="([^"]+)"', page.text)
            assert csrf, page.text[:500]
            started = web.post(
                "/api/v1/exports",
                json={"case": case["case_number"], "subject": "张三"},
                headers={"X-CSRF-Token": csrf[1]},
            )
            assert started.status_code in (200, 201, 202), started.text
            job_id = started.json()["id"]
            deadline = time.monotonic() + 180
            while (job := web.get(f"/api/v1/exports/{job_id}").json())["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, job
                time.sleep(1)
            assert job["state"] == "done", job
            assert web.get("/live").status_code == 200
            cameras = web.get("/api/v1/cameras").json()["cameras"]
            assert len(cameras) == len(ROOMS) and all(c["connected"] for c in cameras), cameras

        children = _descendants(proc.pid)
        assert len(children) >= len(ROOMS), children  # at least the camera processes
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends the terminal's foreground group
        assert proc.wait(90) == 0, (tmp_path / "demo.err").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    left = _left_behind(children)
    assert not left, left  # each stopped and reaped by the demo itself
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=5.0)
    # the printed login worked only while the demo ran
    engine = create_engine_for(f"sqlite:///{tmp_path / 'index.db'}")
    try:
        assert UserStore(engine).check_password(name, password) is None
    finally:
        engine.dispose()
