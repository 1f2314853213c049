"""``vaudit run``, ``vaudit recorder``, ``vaudit simulate`` and ``vaudit demo``: the commands that
keep something running until they are stopped (a centre, a fleet recording node, simulated
cameras) or that run the whole product once (the demo)."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.progress import Progress

from pipeline.cli.common import (
    EXIT_CANNOT_RUN,
    EXIT_PROBLEM,
    ConfigOpt,
    LogLevelOpt,
    console,
    failing,
    settings_or_exit,
    wait_for_signal,
)


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


def run(
    config: ConfigOpt,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from config, 8080)")] = None,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default 127.0.0.1)")] = None,
    log_level: LogLevelOpt = "info",
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

    settings = settings_or_exit(config, log_level, json_lines=True)
    limit_malloc_arenas()  # a recorder thread per camera: share two arenas (recorders/heap.py)
    with failing(EXIT_CANNOT_RUN):
        runtime = CentreRuntime(settings, assign_cameras=record)
    api = create_app(settings, runtime.store, runtime=runtime)
    freeze_heap()  # start-up objects out of the collector's walk (docs: footage p95 tail)
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


def recorder(
    config: ConfigOpt,
    node_id: Annotated[
        str | None, typer.Option(help="This node's id (default: fleet.node_id, else host name)")
    ] = None,
    health_port: Annotated[
        int | None, typer.Option(help="Serve GET /healthz here (default fleet.health_port; 0: none)")
    ] = None,
    log_level: LogLevelOpt = "info",
) -> None:
    """A fleet recording node: record the cameras leased to this node (no API; shared PostgreSQL + S3)."""
    from pipeline.node.fleet import FleetNode, serve_health

    settings = settings_or_exit(config, log_level, json_lines=True)
    with failing(EXIT_CANNOT_RUN):
        node = FleetNode(settings, node_id)
        node.start()
    port = health_port if health_port is not None else settings.fleet.health_port
    server = serve_health(node, settings.fleet.health_host, port) if port else None
    try:
        wait_for_signal()
    finally:
        if server is not None:
            server.shutdown()
        node.stop()


def simulate(
    config: ConfigOpt,
    events_dir: Annotated[
        Path | None, typer.Option(help="Write each camera's keyframe/RTCP log here")
    ] = None,
) -> None:
    """Serve one simulated RTSP camera (GStreamer) per configured camera until interrupted."""
    from pipeline.simulator.centre import start_centre, stop_centre

    settings = settings_or_exit(config, "info")
    with failing(EXIT_CANNOT_RUN):
        cams = start_centre(settings, events_dir=events_dir)
    try:
        for cam in cams:
            console.print(f"serving {cam.url}")
        console.print("simulated centre running; Ctrl-C to stop")
        wait_for_signal()
    finally:
        stop_centre(cams)


def demo(
    config: Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file")] = Path(
        "examples/centre.toml"
    ),
    seconds: Annotated[int, typer.Option(help="How long to record the simulated centre")] = 60,
) -> None:
    """Record a simulated centre, drive one case through the REST API, and write its court disc."""
    from pipeline.node.demo import run_demo

    settings = settings_or_exit(config)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("starting the simulated centre", total=None)
        with failing(EXIT_PROBLEM):
            images = run_demo(
                settings,
                seconds,
                say=lambda text: bar.console.print(text),
                progress=lambda text: bar.update(task, description=text),
            )
    console.print("disc images (master and working copy), check them with `vaudit verify`:")
    for image in images:
        print(image)


def register(app: typer.Typer) -> None:
    for command in (run, recorder, simulate, demo):
        app.command()(command)
