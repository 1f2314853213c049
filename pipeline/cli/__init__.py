"""The ``vaudit`` command. Each command builds the one Settings object and passes it down."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import Progress

from domain.errors import VauditError
from pipeline.cli import admin as admin_cli
from pipeline.cli import retention as retention_cli
from pipeline.ops.logs import configure_logging
from pipeline.settings import Settings, load_settings

logger = logging.getLogger(__name__)
console = Console(stderr=True)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="video-audit: record case-handling centres, index cases, export verifiable court discs.",
)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file (TOML)")]
admin_cli.register(app)  # vaudit users ..., vaudit audit ...


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc


def _wait_for_signal() -> None:
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

    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for every open response before it returns; the alerts' SSE streams never
        # end by themselves, so they are ended first (else a SIGTERM would wait forever and the
        # recorders would never close their segments).
        if self._before_shutdown is not None:
            self._before_shutdown()
        await super().shutdown(sockets)


@app.command()
def run(
    config: ConfigOpt,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from config, 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default 127.0.0.1)")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    record: Annotated[
        bool,
        typer.Option(help="Record the cameras here (--no-record: API only, `vaudit recorder` nodes record)"),
    ] = True,
) -> None:
    """Record every configured camera, upload to storage, index, and serve the API."""
    from indexer.database import freeze_heap
    from pipeline.api.app import create_app
    from pipeline.node.centre import CentreRuntime
    from recorders.heap import limit_malloc_arenas

    settings = _settings(config)
    configure_logging(log_level)
    limit_malloc_arenas()  # a recorder thread per camera: share two arenas (recorders/heap.py)
    try:
        runtime = CentreRuntime(settings, assign_cameras=record)
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    api = create_app(settings, runtime.store, runtime=runtime)
    freeze_heap()  # start-up objects out of the collector's walk (docs/bench/index.md: footage p95 tail)
    server = _GracefulServer(
        uvicorn.Config(
            api,
            host=host or settings.api.host,
            port=port if port is not None else settings.api.port,
            log_config=None,
            access_log=False,
            # uvicorn would otherwise take X-Forwarded-For/-Proto from any local peer as the client's;
            # the app believes them only from api.trusted_proxies (pipeline/api/auth.py).
            proxy_headers=False,
        ),
        before_shutdown=runtime.risk.hub.close,
    )
    runtime.start()
    try:
        server.run()
    finally:
        # Open segments are closed and fsynced here, so a SIGTERM loses nothing.
        runtime.stop()


@app.command()
def recorder(
    config: ConfigOpt,
    node_id: Annotated[
        str | None, typer.Option(help="This node's id (default: fleet.node_id, else host name)")
    ] = None,
    health_port: Annotated[
        int | None, typer.Option(help="Serve GET /healthz here (default fleet.health_port; 0: none)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """A fleet recording node: record the cameras leased to this node (no API; shared PostgreSQL + S3)."""
    from pipeline.node.fleet import FleetNode, serve_health

    settings = _settings(config)
    configure_logging(log_level)
    try:
        node = FleetNode(settings, node_id)
        node.start()
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    port = health_port if health_port is not None else settings.fleet.health_port
    server = serve_health(node, settings.fleet.health_host, port) if port else None
    try:
        _wait_for_signal()
    finally:
        if server is not None:
            server.shutdown()
        node.stop()


retention_cli.register(app)  # vaudit retention run | hold | release


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


def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        console.print(f"[red]error:[/red] --{name} {text!r} is not an ISO 8601 time")
        raise typer.Exit(2) from exc
    if value.tzinfo is None:
        console.print(f"[red]error:[/red] --{name} {text!r} needs a time zone (Z or +08:00)")
        raise typer.Exit(2)
    return value


@app.command()
def export(
    config: ConfigOpt,
    case: Annotated[str, typer.Option("--case", help="Case number (or case id)")],
    subject: Annotated[str, typer.Option("--subject", help="Subject id, ID number or name")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the disc images")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Start (ISO 8601); default: first footage")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="End (ISO 8601); default: end of last interrogation")
    ] = None,
    media: Annotated[str | None, typer.Option(help="dvd5, dvd9, bd25, bd50 (default from config)")] = None,
    allow_unexplained: Annotated[
        bool, typer.Option(help="Export even if some seconds have no footage or gap")
    ] = False,
    exported_by: Annotated[str, typer.Option(help="Name recorded in the chain of custody")] = "",
) -> None:
    """Write the full-process disc images (master and working copy) of one subject of a case."""
    import getpass

    from indexer.database import create_engine_for, upgrade
    from pipeline.export.service import ExportService, ExportSpec
    from pipeline.storage import open_storage

    settings = _settings(config)
    configure_logging("warning", json_lines=False)
    if media is not None and media not in ("dvd5", "dvd9", "bd25", "bd50"):
        console.print(f"[red]error:[/red] --media {media!r}: choose dvd5, dvd9, bd25 or bd50")
        raise typer.Exit(2)
    spec = ExportSpec(
        case=case,
        subject=subject,
        start=_when(from_, "from"),
        end=_when(to, "to"),
        media=media,
        allow_unexplained=allow_unexplained,
        exported_by=exported_by or getpass.getuser(),
    )
    engine = create_engine_for(settings.database.url)
    try:
        upgrade(engine)
        service = ExportService(settings, engine, open_storage(settings.storage))
        with Progress(console=console) as progress:
            task = progress.add_task("exporting", total=1.0)

            def report(fraction: float, message: str) -> None:
                progress.update(task, completed=fraction, description=message[:60])

            result = service.run(spec, out_dir=out, progress=report)
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        for interval in exc.details.get("intervals", []) or []:
            console.print(f"  unexplained: {interval}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for path in (*result.master_images, *result.working_images):
        print(path)


@app.command()
def verify(
    images: Annotated[list[Path], typer.Argument(help="Disc image(s) of one export (all discs of a set)")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Also check against the centre's key, the index and the sidecars"),
    ] = None,
    expect_key: Annotated[
        str | None,
        typer.Option("--expect-key", help="The centre's key fingerprint (as on its statements); "
                                          "default with --config: [export] key_fingerprint or the signing key's"),
    ] = None,
) -> None:
    """Check disc images against their signed manifest and the centre's key (and, with --config,
    the index's capture hashes and the recorder's sidecars)."""
    from exporter.disc_verifier import grouped, normal_fingerprint
    from exporter.verify import verify_images

    configure_logging("warning", json_lines=False)
    missing = [p for p in images if not p.is_file()]
    if missing:
        console.print(f"[red]error:[/red] no such image: {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    expected = None if expect_key is None else normal_fingerprint(expect_key)
    if expect_key is not None and expected is None:
        console.print(f"[red]error:[/red] --expect-key wants the 64 hex digits of a SHA-256 fingerprint, not {expect_key!r}")
        raise typer.Exit(2)
    if config is not None:
        from indexer.database import create_engine_for
        from pipeline.export.service import ExportService
        from pipeline.storage import open_storage

        settings = _settings(config)
        engine = create_engine_for(settings.database.url)
        try:
            service = ExportService(settings, engine, open_storage(settings.storage))
            report = service.verify(images, expected)
            expected = expected or service.expected_fingerprint()
        except VauditError as exc:
            console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(2) from exc
        finally:
            engine.dispose()
    else:
        report = verify_images(images, expected_key=expected)
    for note in report.notes:
        console.print(f"note: {note}")
    if report.fingerprint:  # one line, never wrapped: compared by eye with the statement's
        print(f"key fingerprint / 公钥指纹: {grouped(report.fingerprint)}")
    if report.ok:
        against = ("the centre's key" if expected is not None
                   else "a key not compared with the centre's: give --expect-key or --config")
        console.print(
            f"[green]OK[/green]: {report.files_checked} files on {len(report.discs)} disc(s) match the signed "
            f"manifest, signed by {against}", soft_wrap=True
        )
        return
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    raise typer.Exit(1)


@app.command("key-fingerprint")
def key_fingerprint(config: ConfigOpt) -> None:
    """Print the centre's signing key fingerprint (the key is made if missing): what its statements
    show, what to publish, and what `verify.py --expect-key` and `vaudit verify --expect-key` take."""
    from exporter.disc_verifier import grouped
    from exporter.signing import public_key_info
    from pipeline.storage.anchors import centre_signing_key

    settings = _settings(config)
    configure_logging("warning", json_lines=False)
    try:
        key = centre_signing_key(settings)
    except VauditError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    assert key is not None
    fp = public_key_info(key).fingerprint
    configured = settings.export.key_fingerprint
    if configured is not None and configured != fp:
        console.print(f"[red]warning:[/red] [export] key_fingerprint {grouped(configured)} is not this key's")
    print(grouped(fp))
    print(fp)


@app.command()
def demo(
    config: Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file")] = Path(
        "examples/centre.toml"
    ),
    seconds: Annotated[int, typer.Option(help="How long to record the simulated centre")] = 60,
) -> None:
    """Record a simulated centre, drive one case through the REST API, and write its court disc."""
    from pipeline.node.demo import run_demo

    settings = _settings(config)
    configure_logging("warning", json_lines=False)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("starting the simulated centre", total=None)
        try:
            images = run_demo(
                settings,
                seconds,
                say=lambda text: bar.console.print(text),
                progress=lambda text: bar.update(task, description=text),
            )
        except VauditError as exc:
            console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(1) from exc
    console.print("disc images (master and working copy), check them with `vaudit verify`:")
    for image in images:
        print(image)


# Everything the service writes without a mode of its own (exports, the SQLite index, key and
# journal directories) is closed to other accounts; the spool and storage set theirs explicitly.
UMASK = 0o027


def main() -> None:
    os.umask(UMASK)
    try:
        app()
    except VauditError as exc:  # anything not handled by a command
        console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
