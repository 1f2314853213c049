"""Errors in the browser: a page the user may not see, an unknown page or a bad page address is a
Chinese (or English, as chosen) HTML page with the English detail kept in it; the API keeps its
JSON; the favicon is a real icon anyone may fetch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.support.auth import PASSWORD, add_user

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what Chromium sends for a page


@pytest.fixture
def client(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(api={"upload_tmp": tmp_path / "up"}, export={"out_dir": tmp_path / "exports"})
    app = create_app(settings, store, engine=engine, storage=LocalStorage(tmp_path / "store"))
    with TestClient(app) as c:
        yield c


def _log_in(c: TestClient, engine: Engine, name: str, role: str) -> None:
    add_user(engine, name, role)
    c.get("/login")
    form = {"name": name, "password": PASSWORD, "csrf": c.cookies.get("vaudit_login_csrf"), "next": "/"}
    assert c.post("/login", data=form, follow_redirects=False).status_code == 303


def test_a_forbidden_page_is_a_chinese_page_and_the_api_keeps_json(
    client: TestClient, engine: Engine
) -> None:
    _log_in(client, engine, "wang", "officer")
    page = client.get("/live", headers=HTML)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "您无权查看此页面" in page.text and 'role="alert"' in page.text
    assert 'title="role officer may not use GET /live"' in page.text  # the English detail, kept
    assert '<html lang="zh-CN">' in page.text
    english = client.get("/admin/audit?lang=en", headers=HTML)
    assert english.status_code == 403 and "You may not see this page" in english.text
    api = client.get("/api/v1/live/rooms", headers=HTML)
    assert api.status_code == 403 and api.json()["error"]["code"] == "forbidden"
    assert client.get("/live").json()["error"]["code"] == "forbidden"  # a non-browser client: JSON


def test_unknown_and_bad_page_addresses_are_pages(client: TestClient, engine: Engine) -> None:
    _log_in(client, engine, "zhang", "supervisor")
    missing = client.get("/no-such-page", headers=HTML, follow_redirects=False)
    assert missing.status_code == 404 and "未找到所请求的内容" in missing.text
    bad = client.get("/cases/abc", headers=HTML)
    assert bad.status_code == 422 and "请求的参数有误" in bad.text
    assert client.get("/api/v1/cases/abc", headers=HTML).json()["error"]["code"] == "validation_failed"
    nav = client.get("/search", headers=HTML).text
    assert "(监督员)" in nav and "(supervisor)" not in nav  # the role's name, not its code


def test_the_favicon_is_a_public_icon(client: TestClient) -> None:
    r = client.get("/favicon.ico", follow_redirects=False)
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00" and len(r.content) > 100  # an ICO header
    assert '<link rel="icon" href="/favicon.ico">' in client.get("/login").text
