"""One live HTTP server for the tests that need real sockets (SSE streams, a browser, requests
that lie about their length): an ASGI app under uvicorn in a thread.

    with live_server(app) as server:
        httpx.get(f"{server.base}/api/v1/...")

The listening socket is bound before the server starts, so the port is free and stays ours (no
race with another worker); the server counts as started when ``/healthz`` answers 200; it is
always stopped on the way out (``should_exit``, then the thread is joined) and a server that does
not stop in time is forced down and fails the test. Streams that never end by themselves (the
alerts' SSE) must be ended inside the ``with`` block, before the server is asked to exit.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn


@dataclass(frozen=True)
class LiveServer:
    base: str  # http://127.0.0.1:PORT
    port: int
    server: uvicorn.Server


def wait_until_serving(
    base: str, timeout: float = 20.0, alive: Callable[[], bool] = lambda: True, path: str = "/healthz"
) -> None:
    """Poll ``base + path`` until it answers 200; fail if ``alive()`` turns false or time runs out."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            answer = httpx.get(f"{base}{path}", timeout=1.0)
            if answer.status_code == 200:
                return
            last = answer.status_code
        except httpx.HTTPError as exc:
            last = exc
        if not alive():
            raise AssertionError(f"the server at {base} ended before {path} answered (last: {last!r})")
        if time.monotonic() > deadline:
            raise AssertionError(f"{base}{path} did not answer 200 within {timeout} s (last: {last!r})")
        time.sleep(0.05)


@contextlib.contextmanager
def live_server(
    app: Any, *, start_timeout: float = 20.0, stop_timeout: float = 10.0, **config: Any
) -> Iterator[LiveServer]:
    """``app`` served on 127.0.0.1 at a free port; ``config`` goes to ``uvicorn.Config``
    (``log_config=None`` unless given: the tests' logging stays pytest's)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, **{"log_config": None, **config}))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}"
    )
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, start_timeout, thread.is_alive)
        yield LiveServer(base, port, server)
    finally:
        server.should_exit = True
        thread.join(stop_timeout)
        hung = thread.is_alive()
        if hung:
            server.force_exit = True
            thread.join(5)
        sock.close()
        if hung:
            raise AssertionError(f"uvicorn at {base} did not stop within {stop_timeout} s of should_exit")
