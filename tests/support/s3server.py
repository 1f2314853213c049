"""A real S3 endpoint for tests: moto's server as a subprocess on 127.0.0.1, spoken to over HTTP.

    server = S3Server(); server.start()
    ... S3Storage(server.endpoint, "bucket", server.access_key, server.secret_key) ...
    server.pause(); server.resume()   # hung endpoint: SIGSTOP/SIGCONT, state kept
    server.stop(); server.start()     # refused endpoint: connection refused, then an EMPTY server

moto keeps its state in memory: a stopped and restarted server has lost every bucket and object.
A test that needs the endpoint "down for a while" and the objects afterwards must pause()/resume().
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

from pipeline.simulator.camera import free_port
from pipeline.storage import LocalStorage, S3Storage, Storage


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "moto_server"
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


class S3Server:
    access_key = "testing"
    secret_key = "testing"
    region = "us-east-1"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start (again, on the same port) and wait until it answers HTTP."""
        if self._proc is not None:
            raise RuntimeError("moto server already running")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                _moto_command(self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # our signals (Ctrl-C) do not reach it; we stop it ourselves
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"moto server exited with {code} while starting on port {self.port}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server not ready on port {self.port} after {timeout} s")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1.0) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections are accepted by the kernel but never answered."""
        if self._proc is None:
            raise RuntimeError("moto server not running")
        os.kill(self._proc.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._proc is not None and self._paused:
            os.kill(self._proc.pid, signal.SIGCONT)
        self._paused = False

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate, wait, kill if needed. Idempotent. The server's state is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._paused:
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process does not act on SIGTERM
            self._paused = False
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -- fixtures (tests/pipeline/conftest.py and tests/e2e/conftest.py take them by name) ----------
@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto server for the session; tests isolate themselves with their own bucket."""
    server = S3Server(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_server_private(tmp_path: Path) -> Iterator[S3Server]:
    """A server of the test's own, for tests that pause or stop it."""
    server = S3Server(log_path=tmp_path / "moto.log")
    server.start()
    yield server
    server.stop()


S3Factory = Callable[..., S3Storage]


def _make_s3_storage(server: S3Server, bucket: str | None = None, **kwargs: float) -> S3Storage:
    return S3Storage(
        server.endpoint,
        bucket or f"t-{uuid.uuid4().hex[:16]}",
        server.access_key,
        server.secret_key,
        server.region,
        **kwargs,
    )


@pytest.fixture
def make_s3() -> S3Factory:
    """``make_s3(server, bucket=None, connect_timeout=..., read_timeout=...)`` -> S3Storage."""
    return _make_s3_storage


@pytest.fixture
def s3_storage(s3_server: S3Server) -> S3Storage:
    """S3 storage on the shared server, in a fresh bucket (created on first use)."""
    return _make_s3_storage(s3_server, connect_timeout=2.0, read_timeout=5.0)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The same test on both back ends: a local directory, then a fresh bucket on moto's S3 server
    (that variant is marked integration: it needs the server)."""
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    s3: Storage = request.getfixturevalue("s3_storage")
    return s3
