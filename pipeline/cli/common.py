"""What every ``vaudit`` command shares: the configuration option, loading the one Settings object,
opening the index, failing with a message, and the exit codes.

Exit codes (the same for every command, so scripts can rely on them):

* 0 — done;
* 1 — the work ran and found a problem (a verification failed, an export was refused, a record
  was refused): the message says which;
* 2 — the command could not run (bad configuration, bad option, unreachable storage or index).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from sqlalchemy import Engine

from domain.errors import VauditError
from pipeline.ops.logs import configure_logging, protect_secrets
from pipeline.settings import Settings, load_settings

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_CANNOT_RUN = 2

console = Console(stderr=True)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file (TOML)")]
LogLevelOpt = Annotated[str, typer.Option(help="debug, info, warning, error")]


def fail(message: str, code: int = EXIT_CANNOT_RUN) -> NoReturn:
    """Print ``error: message`` and leave with ``code``."""
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def failing(code: int = EXIT_PROBLEM) -> Iterator[None]:
    """Run the block; a :class:`VauditError` becomes its message and exit ``code``."""
    try:
        yield
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(code) from exc


def settings_or_exit(
    config: Path | None, log_level: str | None = "warning", json_lines: bool = False, **overrides: object
) -> Settings:
    """The command's Settings (exit 2 naming what is wrong), with logging configured at
    ``log_level`` (None: left as it is; ``json_lines``: a service's log, one JSON object a line)
    and the configured secrets masked in every log line from now on."""
    with failing(EXIT_CANNOT_RUN):
        settings = load_settings(config, **overrides)
    protect_secrets(*settings.secrets())  # before anything can log them
    if log_level is not None:
        configure_logging(log_level, json_lines=json_lines)
    return settings


@contextlib.contextmanager
def open_index(settings: Settings) -> Iterator[Engine]:
    """The index's engine, migrated to the newest schema, disposed at the end."""
    from indexer.database import create_engine_for, upgrade

    with failing(EXIT_CANNOT_RUN):
        engine = create_engine_for(settings.database.url)
    try:
        with failing(EXIT_CANNOT_RUN):
            upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def when(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with a zone from the ``--name`` option, or None when not given."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--{name} {text!r} is not an ISO 8601 time")
    if value.tzinfo is None:
        fail(f"--{name} {text!r} needs a time zone (Z or +08:00)")
    return value


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    # A flag, not threading.Event.set(): a handler runs in the main thread between bytecodes, and
    # Event.set() there deadlocks if the signal lands while that thread holds the Event's own lock
    # inside Event.wait() (seen in the recorder process, which had the same pattern).
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not received:
        time.sleep(0.2)
