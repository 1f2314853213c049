"""A private PostgreSQL server for tests that stop and start it (never the machine's shared one).

    with PrivatePostgres() as pg:          # initdb + pg_ctl start on a free port, as user postgres
        url = pg.url                       # postgresql+psycopg://postgres@127.0.0.1:PORT/test
        pg.stop(); pg.start()              # a restart under whoever is connected
    # stopped and its directory removed

initdb refuses to run as root, so the server runs as the ``postgres`` user (``runuser``); the data
directory lives in a fresh directory under /tmp owned by that user (pytest's tmp_path is private to
root). Skips the test when the binaries, the user or runuser are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import pytest

from pipeline.simulator.camera import free_port

PG_BIN = Path(os.environ.get("VAUDIT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivatePostgres:
    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
            pytest.skip(f"no PostgreSQL server binaries in {PG_BIN} (or no runuser)")
        try:
            self._user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no postgres user to run a private PostgreSQL server as")
        if os.geteuid() != 0:
            pytest.skip("a private PostgreSQL server is started through runuser, which needs root")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="vaudit-pg-"))
        os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self.data = self.root / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/test"

    def _pg(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def init(self) -> None:
        self._pg(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()
        self._pg(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "test")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
