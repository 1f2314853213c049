"""Integration: cameras that demand a login (RTSP Digest), recorded with the login in the URL or
given apart; a stall, a wrong password and a hostile server with a login in its URL. The
password appears in nothing the recorder produces: gap records, statuses, logs, spool files."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from domain.credentials import CameraLogin, spellings, with_login
from domain.types import GapCause
from pipeline.simulator.hostile import MalformedReplyServer
from recorders.worker import CameraWorker
from tests.recorders.conftest import TEST_OPTIONS, CollectingSink, running
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

USER = "admin"
PASSWORD = "Pw@7:x/y z%密"
WRONG = "Wr0ng@Guess"


def leak_forms(*secrets: str) -> set[str]:
    """What a leak may look like: every spelling of the secret, and Basic auth's base64."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= spellings(secret)
        forms.add(base64.b64encode(f"{USER}:{secret}".encode()).decode())
    return forms


def assert_clean(text: str, where: str, forms: set[str]) -> None:
    found = sorted(f for f in forms if f in text)
    assert not found, f"{where} leaks {found}: {text[:400]}"


def spool_text(spool: Path) -> dict[str, str]:
    out = {}
    for path in spool.rglob("*"):
        if path.is_file():
            out[str(path.relative_to(spool))] = path.read_bytes().decode("utf-8", "replace") + path.name
    return out


def test_logins_are_used_and_never_leave_the_recorder(
    tmp_path: Path, sink: CollectingSink, cameras: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="recorders")
    spool = tmp_path / "spool"
    cam = cameras("auth", tmp_path, rtsp_credentials=(USER, PASSWORD))
    login = CameraLogin(USER, PASSWORD)
    forms = leak_forms(PASSWORD, WRONG, "hostile-secret", "query-secret")
    with TcpProxy("127.0.0.1", cam.port) as proxy, MalformedReplyServer("bad_status") as hostile:
        workers = [
            # the login written into the URL, as older configurations did; through a proxy to stall
            CameraWorker("in-url", with_login(proxy.url_for(cam.path), login), spool, TEST_OPTIONS, sink),
            # the login given apart from the URL
            CameraWorker("apart", cam.url, spool, TEST_OPTIONS, sink, login=login),
            # a wrong password: the camera refuses (401) every time
            CameraWorker("wrong", cam.url, spool, TEST_OPTIONS, sink, login=CameraLogin(USER, WRONG)),
            # a hostile answer, with a login and a password in the query string
            CameraWorker(
                "hostile",
                with_login(hostile.url, CameraLogin(USER, "hostile-secret"))
                + "?channel=1&password=query-secret",
                spool,
                TEST_OPTIONS,
                sink,
            ),
        ]
        partials: dict[str, str] = {}
        with running(workers):
            assert sink.wait_for(lambda: len(sink.segs("in-url")) >= 2 and len(sink.segs("apart")) >= 2, 30)
            partials.update({k: v for k, v in spool_text(spool).items() if k.endswith(".partial.json")})
            proxy.stall()  # the stall: 12-15 s (the socket buffers hold a few seconds)
            time.sleep(12)
            proxy.resume()
            assert sink.wait_for(lambda: any(g.cause is GapCause.STALL for g in sink.gaps_of("in-url")), 30)

    assert partials, "no open segment was seen"
    assert any('"url": "rtsp://***@127.0.0.1' in text for text in partials.values()), partials
    assert not sink.segs("wrong") and not sink.segs("hostile")
    errors = {
        cid: [s.last_error for s in sink.statuses if s.camera_id == cid and s.last_error]
        for cid in ("in-url", "wrong", "hostile")
    }
    assert any("401" in e for e in errors["wrong"]), errors["wrong"]
    assert any("stall" in e for e in errors["in-url"]), errors["in-url"]
    assert errors["hostile"], "the hostile server produced no error"
    for cid, texts in errors.items():
        for text in texts:
            assert_clean(text, f"{cid} last_error", forms)
    for gap, path in sink.gaps:
        assert_clean(gap.detail, f"gap of {gap.camera_id}", forms)
        assert_clean(path.read_text(encoding="utf-8"), str(path), forms)
    for name, text in {**spool_text(spool), **partials}.items():
        assert_clean(text, f"spool file {name}", forms)
    assert caplog.records, "nothing was logged"
    for record in caplog.records:
        rendered = f"{record.getMessage()} {record.__dict__}"
        assert_clean(rendered, f"log record {record.getMessage()!r}", forms)
