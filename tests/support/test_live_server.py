"""The live-server helper itself: it serves, it always stops, and it fails when it cannot start
or stop (a helper that hid a hung server would let every test using it pass on a broken shutdown)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.live_server import live_server

pytestmark = pytest.mark.integration  # uvicorn on real sockets


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def test_serves_once_healthz_answers_and_is_stopped_after() -> None:
    app = Starlette(routes=[Route("/healthz", healthz)])
    with live_server(app) as server:
        assert httpx.get(f"{server.base}/healthz", timeout=5).text == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base}/healthz", timeout=1)


def test_an_app_without_healthz_fails_to_start_and_is_stopped() -> None:
    threads = set(threading.enumerate())
    with (
        pytest.raises(AssertionError, match="did not answer 200"),
        live_server(Starlette(), start_timeout=0.5),
    ):
        pass
    assert not [t for t in set(threading.enumerate()) - threads if t.name.startswith("uvicorn-")]


def test_a_server_that_does_not_stop_fails_the_test() -> None:
    release = threading.Event()

    async def endless(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"first\n"
            while not release.is_set():  # a stream that never ends by itself, like the alerts' SSE
                await anyio.sleep(0.05)

        return StreamingResponse(body())

    app = Starlette(routes=[Route("/healthz", healthz), Route("/endless", endless)])
    opened = threading.Event()

    def reader(base: str) -> None:
        try:
            with httpx.stream("GET", f"{base}/endless", timeout=10) as r:
                opened.set()
                for _ in r.iter_bytes():
                    pass
        except httpx.HTTPError:
            pass  # cut by the forced shutdown

    try:
        with (
            pytest.raises(AssertionError, match="did not stop"),
            live_server(app, stop_timeout=0.5) as server,
        ):
            thread = threading.Thread(target=reader, args=(server.base,), daemon=True)
            thread.start()
            assert opened.wait(5)
    finally:
        release.set()
    thread.join(5)
