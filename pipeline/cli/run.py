"""``vaudit run``, ``vaudit recorder``, ``vaudit simulate`` and ``vaudit demo``: the commands that
keep something running until they are stopped (a centre, a fleet recording node, simulated
cameras) or that run the whole product once (the demo)."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import uvicorn
from rich.progress import Progress

from pipeline.cli.common import (
    EXIT_CANNOT_RUN,
    EXIT_PROBLEM,
    ConfigOpt,
    LogLevelOpt,
    console,
    fail,
    failing,
    settings_or_exit,
    wait_for_signal,
)

if TYPE_CHECKING:
    from pipeline.settings import Settings


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


def _server(
    app: Any,
    settings: Settings,
    before_shutdown: Callable[[], None],
    host: str | None = None,
    port: int | None = None,
) -> _GracefulServer:
    return _GracefulServer(
        uvicorn.Config(
            app,
            host=host or settings.api.host,
            port=port if port is not None else settings.api.port,
            log_config=None,
            access_log=False,
            # uvicorn would otherwise take X-Forwarded-For/-Proto from any local peer as the client's;
            # the app believes them only from api.trusted_proxies (pipeline/api/auth.py).
            proxy_headers=False,
        ),
        before_shutdown=before_shutdown,
    )


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
    server = _server(api, settings, before_shutdown=runtime.risk.hub.close, host=host, port=port)
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


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket for uvicorn (``port`` 0: any free port), or exit 2 naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        fail(f"cannot serve on {host}:{port} ({exc.strerror}); choose another with --port")
    return sock


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (or SIGTERM) while the block runs is reported, not obeyed: a second Ctrl-C during
    the demo's shutdown would leave recorders half closed."""

    def note(signum: int, frame: object) -> None:
        console.print("still stopping: closing the last segments and the cameras")

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    # The demo's cleanup runs on KeyboardInterrupt; SIGTERM (a CI timeout, `kill`) gets the same.
    raise KeyboardInterrupt


def demo(
    config: Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file")] = Path(
        "examples/centre.toml"
    ),
    seconds: Annotated[int, typer.Option(help="How long to record the simulated centre")] = 60,
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--no-serve",
            help="Then serve the recorded centre (cameras still live) with a one-time supervisor "
            "login until Ctrl-C (default: only when run from a terminal)",
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="HTTP port when serving (default from config, 8080; 0: any)")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="HTTP bind address when serving (default 127.0.0.1)")
    ] = None,
    picture: Annotated[
        str, typer.Option(help="The simulated cameras' picture, WIDTHxHEIGHT (smaller: less CPU)")
    ] = "1280x720",
) -> None:
    """Record a simulated centre, drive one case through the REST API, write its court disc, and
    (from a terminal, or with --serve) serve the centre for a look around until Ctrl-C."""
    from pipeline.node.demo import DemoCentre

    settings = settings_or_exit(config)
    size = re.fullmatch(r"([1-9][0-9]{1,4})x([1-9][0-9]{1,4})", picture)
    if size is None:
        fail(f"--picture {picture!r} is not WIDTHxHEIGHT, e.g. 1280x720")
    serving = sys.stdin.isatty() if serve is None else serve
    where = (host or settings.api.host, port if port is not None else settings.api.port)
    sock = _listen(*where) if serving else None  # a taken port fails now, not after the recording
    centre = DemoCentre(settings, (int(size[1]), int(size[2])))
    previous_term = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        with failing(EXIT_PROBLEM):
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("starting the simulated centre", total=None)
                centre.start()
                case = centre.record_case(
                    seconds,
                    say=lambda text: bar.console.print(text),
                    progress=lambda text: bar.update(task, description=text),
                )
            console.print("disc images (master and working copy), check them with `vaudit verify`:")
            for image in case.images:
                print(image, flush=True)
            if sock is not None:
                name, password = centre.login("supervisor")
                bound_host, bound_port = sock.getsockname()[:2]
                base = f"http://{bound_host if ':' not in bound_host else f'[{bound_host}]'}:{bound_port}"
                print(
                    f"serving the demo centre at {base}/ until Ctrl-C (the cameras keep recording)\n"
                    f"log in at {base}/login as a supervisor; this login works until the demo stops:\n"
                    f"  name:     {name}\n"
                    f"  password: {password}\n"
                    f"the case:  {base}/cases/{case.case_id}  (its footage, its events, its disc under "
                    "导出任务 / Export jobs)\n"
                    f"live view: {base}/live",
                    flush=True,
                )
                _server(centre.app, settings, before_shutdown=centre.runtime.risk.hub.close).run(
                    sockets=[sock]
                )
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(130) from None
    finally:
        with _interrupts_deferred():
            if sock is not None:
                sock.close()
            console.print("stopping the demo centre (closing the last segments, stopping the cameras)")
            centre.stop()
            signal.signal(signal.SIGTERM, previous_term)


def register(app: typer.Typer) -> None:
    for command in (run, recorder, simulate, demo):
        app.command()(command)
