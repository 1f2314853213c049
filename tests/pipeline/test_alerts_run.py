"""The risk engine inside the real ``vaudit run``: events posted to the process raise an alert
that its SSE stream delivers, and a SIGTERM with the stream still open ends the process cleanly
(uvicorn would otherwise wait for the never-ending stream and the recorders would not stop)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.types import iso
from tests.support.vaudit_proc import VauditRun

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "centre.toml"
    cfg.write_text(
        f"""[storage]
kind = "local"
path = "{tmp_path / "store"}"
[database]
url = "sqlite:///{tmp_path / "index.db"}"
[recorder]
spool = "{tmp_path / "spool"}"
[[rooms]]
id = "wait"
name = "候问室"
kind = "waiting"
""",
        encoding="utf-8",
    )
    return cfg


def read_stream(
    run: VauditRun, got: list[dict[str, Any]], ready: threading.Event, ended: threading.Event
) -> None:
    with (
        httpx.Client(base_url=run.base, headers=run.headers, timeout=60) as c,
        c.stream("GET", "/api/v1/alerts/stream") as r,
    ):
        for line in r.iter_lines():
            if line == ": connected":
                ready.set()
            elif line.startswith("data: "):
                got.append(json.loads(line[6:]))
    ended.set()  # the server closed the stream


def test_run_raises_streams_and_stops_with_a_stream_open(tmp_path: Path) -> None:
    run = VauditRun(write_config(tmp_path), tmp_path / "run.log")
    run.start()
    try:
        got: list[dict[str, Any]] = []
        ready, ended = threading.Event(), threading.Event()
        reader = threading.Thread(target=read_stream, args=(run, got, ready, ended), daemon=True)
        reader.start()
        assert ready.wait(20)
        with httpx.Client(base_url=run.base, headers=run.headers, timeout=30) as c:
            cid = c.post("/api/v1/cases", json={"case_number": "R1", "title": "t", "charge": "c"}).json()[
                "id"
            ]
            now = datetime.now(UTC) - timedelta(seconds=5)
            for n, name in enumerate(("甲", "乙")):
                sid = c.post(f"/api/v1/cases/{cid}/subjects", json={"name": name, "role": "suspect"}).json()[
                    "id"
                ]
                body = {
                    "id": f"e{n}",
                    "type": "entry",
                    "time": iso(now),
                    "room_id": "wait",
                    "subject_id": sid,
                }
                assert c.post("/api/v1/events", json=body).status_code == 201
            items = c.get("/api/v1/alerts", params={"state": "open"}).json()["items"]
        assert [i["rule"] for i in items] == ["co_suspects"]
        for _ in range(100):
            if got:
                break
            ended.wait(0.1)
        assert got and got[0]["event"] == "raised" and got[0]["alert"]["id"] == items[0]["id"]
        assert run.stop(timeout=20) == 0  # SIGTERM honoured with the stream open (not killed)
        assert ended.wait(5)
    finally:
        run.stop()
