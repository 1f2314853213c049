"""The risk engine inside the running centre as ``vaudit run`` composes it (CentreRuntime,
create_app, the CLI's uvicorn server): events posted to the server raise an alert that its SSE
stream delivers, and asking the server to exit with the stream still open ends it (uvicorn
would otherwise wait for the never-ending stream, and a SIGTERM would never reach the
recorders' shutdown)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from domain.types import iso
from pipeline.api.app import create_app
from pipeline.cli.run import _GracefulServer
from pipeline.node.centre import CentreRuntime
from pipeline.settings import Settings
from pipeline.simulator.camera import free_port
from tests.support.auth import add_user, bearer
from tests.support.live_server import wait_until_serving

pytestmark = pytest.mark.integration  # vaudit's own uvicorn server on a real socket


def read_stream(
    base: str, headers: dict[str, str], got: list[dict[str, Any]], ready: threading.Event
) -> None:
    with (
        httpx.Client(base_url=base, headers=headers, timeout=60) as c,
        c.stream("GET", "/api/v1/alerts/stream") as r,
    ):
        for line in r.iter_lines():
            if line == ": connected":
                ready.set()
            elif line.startswith("data: "):
                got.append(json.loads(line[6:]))
    got.append({"event": "closed by the server"})


def test_runtime_raises_streams_and_server_exits_with_a_stream_open(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "storage": {"path": str(tmp_path / "store")},
            "database": {"url": f"sqlite:///{tmp_path / 'index.db'}"},
            "recorder": {"spool": str(tmp_path / "spool")},
            "rooms": [{"id": "wait", "name": "候问室", "kind": "waiting"}],
        }
    )
    runtime = CentreRuntime(settings)
    app = create_app(settings, runtime.store, runtime=runtime)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    server = _GracefulServer(config, before_shutdown=runtime.risk.hub.close)
    base = f"http://127.0.0.1:{port}"
    got: list[dict[str, Any]] = []
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def client() -> None:
        try:
            drive(base, runtime, got, outcome)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc
        finally:
            server.should_exit = True  # what the CLI's SIGTERM handler does
            if not finished.wait(15):  # still waiting for the open stream: force it, and fail
                outcome["hung"] = True
                server.force_exit = True

    runtime.start()
    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    try:
        server.run()  # the main thread, as in `vaudit run` (its signal handlers need it)
        finished.set()
    finally:
        worker.join(20)
        runtime.stop()
    if "error" in outcome:
        raise outcome["error"]
    assert "hung" not in outcome, "the server kept waiting for the open alert stream"
    assert outcome["items"][0]["rule"] == "co_suspects"
    assert got[0]["event"] == "raised" and got[0]["alert"]["id"] == outcome["items"][0]["id"]
    outcome["reader"].join(5)
    assert got[-1] == {"event": "closed by the server"}


def drive(base: str, runtime: CentreRuntime, got: list[dict[str, Any]], outcome: dict[str, Any]) -> None:
    wait_until_serving(base)
    add_user(runtime.engine, "admin", "admin")
    with httpx.Client(base_url=base, timeout=30) as c:
        c.headers.update(bearer(c, "admin"))
        ready = threading.Event()
        reader = threading.Thread(target=read_stream, args=(base, dict(c.headers), got, ready), daemon=True)
        reader.start()
        outcome["reader"] = reader
        assert ready.wait(20)
        cid = c.post("/api/v1/cases", json={"case_number": "R1", "title": "t", "charge": "c"}).json()["id"]
        now = datetime.now(UTC) - timedelta(seconds=5)
        for n, name in enumerate(("甲", "乙")):
            sid = c.post(f"/api/v1/cases/{cid}/subjects", json={"name": name, "role": "suspect"}).json()["id"]
            body = {"id": f"e{n}", "type": "entry", "time": iso(now), "room_id": "wait", "subject_id": sid}
            assert c.post("/api/v1/events", json=body).status_code == 201
        outcome["items"] = c.get("/api/v1/alerts", params={"state": "open"}).json()["items"]
    assert [i["rule"] for i in outcome["items"]] == ["co_suspects"]
    for _ in range(100):
        if got:
            break
        time.sleep(0.05)
