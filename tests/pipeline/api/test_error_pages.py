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
from tests.support.auth import PASSWORD, add_user, bearer

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what Chromium sends for a page


@pytest.fixture
def client(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(api={"upload_tmp": tmp_path / "up"}, export={"out_dir": tmp_path / "exports"})
    app = create_app(settings, store, engine=engine, storage=LocalStorage(tmp_path / "store"))
    with TestClient(app) as c:
        yield c


def _log_in(c: TestClient, engine: Engine, name: str, role: str, badge: str | None = None) -> None:
    add_user(engine, name, role, officer_badge=badge)
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


def test_the_case_page_answers_as_the_case_api_does(client: TestClient, engine: Engine) -> None:
    add_user(engine, "admin", "admin")
    admin = bearer(client, "admin")
    ids = []
    for n in (1, 2):
        body = {"case_number": f"A-{n}", "title": "案", "charge": "盗窃"}
        ids.append(client.post("/api/v1/cases", json=body, headers=admin).json()["id"])
    officer = client.post("/api/v1/officers", json={"name": "李警官", "badge_number": "P-1"}, headers=admin)
    assert client.post(
        f"/api/v1/cases/{ids[0]}/officers", json={"officer_id": officer.json()["id"]}, headers=admin
    ).is_success
    mine, others, missing = ids[0], ids[1], max(ids) + 999
    add_user(engine, "li", "officer", officer_badge="P-1")
    li = bearer(client, "li")  # the same officer through the API

    _log_in(client, engine, "zhang", "supervisor")
    unknown = client.get(f"/cases/{missing}", headers=HTML)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")
    assert "未找到所请求的内容" in unknown.text and 'data-code="not_found"' in unknown.text
    assert f'title="case {missing} does not exist"' in unknown.text
    assert 'data-page="case"' not in unknown.text  # no page shell around an error box
    english = client.get(f"/cases/{missing}?lang=en", headers=HTML)
    assert english.status_code == 404 and ">Not found<" in english.text
    shown = client.get(f"/cases/{others}", headers=HTML)
    assert shown.status_code == 200 and f'data-case-id="{others}"' in shown.text

    # An officer: the page gives what the API gives for the same case, whatever that is.
    client.cookies.clear()
    _log_in(client, engine, "li-web", "officer", badge="P-1")
    for case_id in (mine, others, missing):
        page = client.get(f"/cases/{case_id}", headers=HTML)
        api = client.get(f"/api/v1/cases/{case_id}", headers=li)
        assert page.status_code == api.status_code, case_id
        if api.status_code != 200:
            assert f'data-code="{api.json()["error"]["code"]}"' in page.text
    assert client.get(f"/cases/{mine}", headers=HTML).status_code == 200
