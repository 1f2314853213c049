"""The ``vaudit`` command. Each command builds the one Settings object and passes it down."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import Progress

from domain.errors import VauditError
from pipeline.logging_setup import configure_logging
from pipeline.settings import Settings, load_settings

logger = logging.getLogger(__name__)
console = Console(stderr=True)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="video-audit: record case-handling centres, index cases, export verifiable court discs.",
)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file (TOML)")]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(0.5):
        pass


class _GracefulServer(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after shutting down, which would kill the process
    before the recorders close their segments; here a signal only asks the server to exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def ask_exit(signum: int, frame: object) -> None:
            self.should_exit = True

        previous = {sig: signal.signal(sig, ask_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@app.command()
def run(
    config: ConfigOpt,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from config, 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default 127.0.0.1)")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Record every configured camera, upload to storage, index, and serve the API."""
    from pipeline.api.app import create_app
    from pipeline.runtime import CentreRuntime

    settings = _settings(config)
    configure_logging(log_level)
    try:
        runtime = CentreRuntime(settings)
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    api = create_app(settings, runtime.store, runtime=runtime)
    server = _GracefulServer(
        uvicorn.Config(
            api,
            host=host or settings.api.host,
            port=port if port is not None else settings.api.port,
            log_config=None,
            access_log=False,
        )
    )
    runtime.start()
    try:
        server.run()
    finally:
        # Open segments are closed and fsynced here, so a SIGTERM loses nothing.
        runtime.stop()


@app.command()
def simulate(
    config: ConfigOpt,
    events_dir: Annotated[
        Path | None, typer.Option(help="Write each camera's keyframe/RTCP log here")
    ] = None,
) -> None:
    """Serve one simulated RTSP camera (GStreamer) per configured camera until interrupted."""
    from pipeline.simulator.centre import start_centre, stop_centre

    settings = _settings(config)
    configure_logging("info", json_lines=False)
    try:
        cams = start_centre(settings, events_dir=events_dir)
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    try:
        for cam in cams:
            console.print(f"serving {cam.url}")
        console.print("simulated centre running; Ctrl-C to stop")
        _wait_for_signal()
    finally:
        stop_centre(cams)


@app.command()
def reindex(config: ConfigOpt) -> None:
    """Rebuild segment and gap rows from the sidecars in storage (after losing the database)."""
    from indexer.database import create_engine_for, upgrade
    from indexer.reindex import reindex as rebuild
    from indexer.reindex import sidecars_in
    from indexer.segment_store import SegmentStore
    from pipeline.storage import open_storage

    settings = _settings(config)
    configure_logging("warning", json_lines=False)
    storage = open_storage(settings.storage)
    engine = create_engine_for(settings.database.url)
    upgrade(engine)
    store = SegmentStore(engine)
    store.sync_rooms(settings.room_rows())

    def counted(items: Iterator[tuple[str, bytes | Exception]]) -> Iterator[tuple[str, bytes | Exception]]:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("reading sidecars from storage", total=None)
            for item in items:
                progress.advance(task)
                yield item

    report = rebuild(store, counted(sidecars_in(storage)))
    engine.dispose()
    console.print(
        f"segments: {report.segments_added} added, {report.segments_present} already indexed; "
        f"gaps: {report.gaps_added} added, {report.gaps_present} already indexed"
    )
    for problem in [*report.malformed, *report.conflicts, *report.chain_breaks]:
        console.print(f"[yellow]problem:[/yellow] {problem}")
    if not report.clean:
        raise typer.Exit(1)


@app.command()
def demo(
    config: Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file")] = Path(
        "examples/centre.toml"
    ),
    seconds: Annotated[int, typer.Option(help="How long to record the simulated centre")] = 40,
) -> None:
    """Start a simulated centre, record it with the real pipeline, and print what was recorded."""
    from datetime import timedelta

    from domain.types import from_unix
    from pipeline.runtime import CentreRuntime
    from pipeline.simulator.centre import start_centre, stop_centre

    settings = _settings(config)
    configure_logging("warning", json_lines=False)
    cams = start_centre(settings)
    try:
        runtime = CentreRuntime(settings)
        started = time.time()
        runtime.start()
        try:
            with Progress(console=console) as progress:
                task = progress.add_task(f"recording {len(cams)} cameras", total=seconds)
                while (elapsed := time.time() - started) < seconds:
                    progress.update(task, completed=elapsed)
                    time.sleep(0.5)
                progress.update(task, completed=seconds)
        finally:
            runtime.stop()
        lo = from_unix(started) - timedelta(seconds=5)
        hi = from_unix(time.time()) + timedelta(seconds=5)
        for room, cam in settings.cameras():
            segs = runtime.store.segments(cam.id, lo, hi)
            gaps = runtime.store.gaps(cam.id, lo, hi)
            covered = sum(s.range.seconds for s in segs)
            console.print(
                f"{room.name} {cam.id}: {len(segs)} segments, {covered:.1f} s recorded, {len(gaps)} gaps"
            )
        where = settings.storage.path if settings.storage.kind == "local" else settings.storage.bucket
        console.print(f"storage: {where}")
    finally:
        stop_centre(cams)


def main() -> None:
    try:
        app()
    except VauditError as exc:  # anything not handled by a command
        console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
