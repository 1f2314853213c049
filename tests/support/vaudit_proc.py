"""Run the real ``vaudit run`` as a subprocess for end-to-end tests: free port, poll until
ready, always stopped (SIGTERM, wait, SIGKILL). Before the first start an admin account is
made with ``vaudit users create`` (password on stdin); requests carry its bearer token."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from pipeline.simulator.camera import free_port

VAUDIT = str(Path(sys.executable).with_name("vaudit"))
E2E_USER = "e2e-admin"
E2E_PASSWORD = "e2e-password-1234"


class VauditRun:
    def __init__(
        self, config: Path, log: Path, env: dict[str, str] | None = None, start_timeout: float = 30.0
    ) -> None:
        self.config = config
        self.start_timeout = start_timeout  # the fault suite restarts under load: it gives more
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}
        self._user_made = False

    def create_user(self, name: str, role: str, password: str, officer: str | None = None) -> None:
        """``vaudit users create NAME --role ROLE`` with the password on stdin; an existing
        account of that name is left as it is."""
        extra = ["--officer", officer] if officer else []
        done = subprocess.run(
            [VAUDIT, "users", "create", name, "--role", role, "--config", str(self.config), *extra],
            input=f"{password}\n".encode(),
            capture_output=True,
            env=self.env,
            cwd=self.config.parent,
            timeout=60,
        )
        if done.returncode != 0 and b"already exists" not in done.stderr:
            raise RuntimeError(f"vaudit users create failed: {done.stderr.decode()[-2000:]}")

    def token(self, name: str, password: str) -> dict[str, str]:
        resp = httpx.post(
            f"{self.base}/api/v1/auth/token", json={"name": name, "password": password}, timeout=10.0
        )
        resp.raise_for_status()
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float | None = None) -> None:
        timeout = self.start_timeout if timeout is None else timeout
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if not self._user_made:
            self.create_user(E2E_USER, "admin", E2E_PASSWORD)
            self._user_made = True
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [VAUDIT, "run", "--config", str(self.config), "--port", str(self.port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.config.parent,
        )
        fh.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vaudit run exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=1.0).status_code == 200:
                    self.headers = self.token(E2E_USER, E2E_PASSWORD)
                    return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"vaudit run not ready in {timeout} s:\n{self.log.read_text()[-4000:]}")

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", params=params, headers=self.headers, timeout=10.0)

    def log_records(self, message: str) -> list[dict[str, object]]:
        """The JSON log records (``vaudit run`` logs one per line) whose message is ``message``."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == message:
                    found.append(record)
        return found

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> VauditRun:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
