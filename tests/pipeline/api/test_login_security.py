"""Logins through the real app (create_app), on SQLite and PostgreSQL (issue 16, points 7 and 8).

Failed logins are throttled per account and per client address with growing delays, kept in the
index (a restarted app still refuses), and a run of failures raises an alert; the password rule
refuses short, common and name-like passwords; owners list and revoke their own tokens, and a
revoked token fails at once; the audit's client address believes X-Forwarded-For from a
configured proxy only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from indexer.audit import AuditLog
from indexer.segment_store import SegmentStore
from indexer.users import UserStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.support.auth import PASSWORD, add_user, bearer

AUTH = {"free_attempts": 3, "base_delay_seconds": 1.0, "max_delay_seconds": 60.0, "alert_after_failures": 5}


class Clock:
    """The throttle's clock, moved by hand (microseconds)."""

    def __init__(self) -> None:
        self.us = 1_800_000_000_000_000

    def __call__(self) -> int:
        return self.us

    def advance(self, seconds: float) -> None:
        self.us += int(seconds * 1_000_000)


@dataclass
class Login:
    app: FastAPI
    client: TestClient
    clock: Clock

    def token(self, name: str, password: str) -> Any:
        return self.client.post("/api/v1/auth/token", json={"name": name, "password": password})


def _app(engine: Engine, store: SegmentStore, tmp_path: Path, clock: Clock, **api: Any) -> FastAPI:
    settings = Settings(
        api={"upload_tmp": tmp_path / "up", **api}, auth=AUTH, export={"out_dir": tmp_path / "exports"}
    )
    app = create_app(settings, store, engine=engine, storage=LocalStorage(tmp_path / "store"))
    app.state.security.throttle.now_us = clock
    return app


@pytest.fixture
def login(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[Login]:
    clock = Clock()
    app = _app(engine, store, tmp_path, clock)
    with TestClient(app, follow_redirects=False) as c:
        yield Login(app, c, clock)


@pytest.mark.integration  # waits out the real delays: ~3 s
def test_failed_logins_are_throttled_with_growing_delays(login: Login, engine: Engine) -> None:
    add_user(engine, "boss", "admin")
    codes = [login.token("boss", f"wrong-{i}").status_code for i in range(4)]
    assert codes == [401, 401, 401, 401]  # three free failures, the fourth sets the first delay
    # the right password now waits too: it is not even checked
    held = login.token("boss", PASSWORD)
    assert held.status_code == 429 and held.json()["error"]["code"] == "too_many_requests"
    waits = [int(held.headers["retry-after"])]
    for _ in range(3):
        login.clock.advance(waits[-1])
        assert login.token("boss", "wrong-again").status_code == 401
        r = login.token("boss", "wrong-again")
        assert r.status_code == 429
        waits.append(int(r.headers["retry-after"]))
    assert waits == [1, 2, 4, 8]
    # the 140 wrong passwords in a row: all but none get checked, and the right one waits
    assert {login.token("boss", f"guess-{i}").status_code for i in range(140)} == {429}
    assert login.token("boss", PASSWORD).status_code == 429
    login.clock.advance(waits[-1])
    assert login.token("boss", PASSWORD).status_code == 200  # after the delay
    # the success cleared the account's count (seen from another address: this one keeps its own,
    # or an attacker could clear it by logging into an account of theirs between guesses)
    with TestClient(login.app, client=("10.1.1.1", 40000)) as elsewhere:
        typo = elsewhere.post("/api/v1/auth/token", json={"name": "boss", "password": "one-typo"})
        assert typo.status_code == 401
    assert login.token("boss", "one-typo").status_code == 429
    actions = [r.action for r in AuditLog(engine).rows(user="boss", limit=1000)]
    assert actions.count("login_throttled") >= 140 and "token_refused" in actions


@pytest.mark.integration  # waits out the real delays: ~2.5 s
def test_throttle_per_address_survives_a_restart_and_raises_an_alert(
    login: Login, engine: Engine, store: SegmentStore, tmp_path: Path
) -> None:
    add_user(engine, "boss", "admin")
    add_user(engine, "cop", "officer")
    # spraying: one guess each at many names from one address
    codes = [login.token(f"user{i}", "password-guess").status_code for i in range(6)]
    assert codes[:4] == [401] * 4 and codes[4:] == [429, 429]
    # a name never tried before is held as well: the address is throttled
    assert login.token("boss", PASSWORD).status_code == 429
    # a new process on the same index (a restart) still holds it
    again = _app(engine, store, tmp_path, login.clock)
    with TestClient(again) as c:
        assert c.post("/api/v1/auth/token", json={"name": "boss", "password": PASSWORD}).status_code == 429
        login.clock.advance(60)
        # two more failures: five on this address, the alert threshold
        for i in range(2):
            assert (
                c.post("/api/v1/auth/token", json={"name": f"x{i}", "password": "nope-nope"}).status_code
                == 401
            )
            login.clock.advance(60)
        admin = bearer(c, "boss")
        items = c.get("/api/v1/alerts", headers=admin).json()["items"]
        alerts = [a for a in items if a["rule"] == "login_failures"]
        assert len(alerts) == 1 and alerts[0]["severity"] == "high" and alerts[0]["case_id"] is None
        assert alerts[0]["details"]["failures"] == 5 and "address" in alerts[0]["message"]
        assert alerts[0]["label"]["zh-CN"] == "连续登录失败"
        # officers see their own cases' alerts only
        login.clock.advance(60)  # the address keeps its count after a success: wait out its delay
        cop = bearer(c, "cop")
        assert all(
            a["rule"] != "login_failures" for a in c.get("/api/v1/alerts", headers=cop).json()["items"]
        )


def test_login_form_is_throttled_too(login: Login, engine: Engine) -> None:
    add_user(engine, "sup", "supervisor")
    c = login.client
    for i in range(5):
        form = c.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        r = c.post(
            "/login", data={"name": "sup", "password": f"bad-{i}", "csrf": token.group(1), "next": "/"}
        )
        if r.status_code == 429:
            break
        assert r.status_code == 401
    assert r.status_code == 429 and "登录失败次数过多" in r.text and r.headers["retry-after"] == "1"
    assert "login_throttled" in [x.action for x in AuditLog(engine).rows(user="sup")]


def test_password_rule(login: Login, engine: Engine) -> None:
    add_user(engine, "root", "admin")
    admin = bearer(login.client, "root")

    def create(name: str, password: str) -> Any:
        return login.client.post(
            "/api/v1/users", json={"name": name, "role": "admin", "password": password}, headers=admin
        )

    for password, why in (
        ("12345678", "at least 12 characters"),  # the admin password
        ("qwerty123456", "most common passwords"),
        ("1q2w3e4r5t6y", "most common passwords"),
        ("zhangwei-2026!", "user name"),
    ):
        r = create("zhangwei", password)
        assert r.status_code == 422, password
        assert any(why in f["message"] for f in r.json()["error"]["details"]["fields"]), (password, r.text)
    assert create("zhangwei", "tea-kettle-harbour-7").status_code == 201
    with pytest.raises(Exception, match="most common"):
        UserStore(engine).create_user("li", "officer", "administrator")


def test_owner_lists_and_revokes_own_tokens(login: Login, engine: Engine) -> None:
    add_user(engine, "wang", "supervisor")
    add_user(engine, "zhao", "supervisor")
    c = login.client
    first, second = bearer(c, "wang"), bearer(c, "wang")
    other = bearer(c, "zhao")
    listed = c.get("/api/v1/auth/tokens", headers=first).json()["tokens"]
    assert len(listed) == 2 and [t["current"] for t in listed].count(True) == 1
    assert all("token" not in t and "hash" not in t for t in listed)  # no secret is shown
    current = next(t["id"] for t in listed if t["current"])
    spare = next(t["id"] for t in listed if not t["current"])
    # someone else's token is not theirs to revoke (not even told it exists)
    theirs = c.get("/api/v1/auth/tokens", headers=other).json()["tokens"][0]["id"]
    assert c.post(f"/api/v1/auth/tokens/{theirs}/revoke", headers=first).status_code == 404
    assert c.get("/api/v1/auth/me", headers=other).status_code == 200
    # revoke the second token from the first: it fails on its very next request
    assert c.post(f"/api/v1/auth/tokens/{spare}/revoke", headers=first).status_code == 200
    assert c.get("/api/v1/auth/me", headers=second).status_code == 401
    assert c.get("/api/v1/auth/me", headers=first).status_code == 200
    assert [
        t["revoked"] for t in c.get("/api/v1/auth/tokens", headers=first).json()["tokens"] if t["id"] == spare
    ] == [True]
    third = bearer(c, "wang")
    assert c.post("/api/v1/auth/tokens/revoke-all", headers=first).json()["revoked"] == 2  # current, third
    assert c.get("/api/v1/auth/me", headers=first).status_code == 401
    assert c.get("/api/v1/auth/me", headers=third).status_code == 401
    assert c.get("/api/v1/auth/me", headers=other).status_code == 200
    rows = [
        (r.action, r.detail) for r in AuditLog(engine).rows(user="wang") if r.action.startswith("token_rev")
    ]
    assert rows == [("token_revoked_all", None), ("token_revoked", {"token_id": spare})]
    assert current != spare


def _client_addrs(engine: Engine, name: str) -> list[str | None]:
    return [r.client_addr for r in AuditLog(engine).rows(user=name, action="token_issued")]


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(
    engine: Engine, store: SegmentStore, tmp_path: Path
) -> None:
    add_user(engine, "sup", "supervisor")
    body = {"name": "sup", "password": PASSWORD}
    spoof = {"X-Forwarded-For": "203.0.113.66"}
    plain = _app(engine, store, tmp_path, Clock())
    with TestClient(plain, client=("127.0.0.1", 40000)) as c:
        assert c.post("/api/v1/auth/token", json=body, headers=spoof).status_code == 200
    assert _client_addrs(engine, "sup") == ["127.0.0.1"]  # localhost is no proxy unless configured
    proxied = _app(engine, store, tmp_path, Clock(), trusted_proxies=["10.9.0.0/24"])
    with TestClient(proxied, client=("10.9.0.5", 40000)) as c:
        # the client's own claim (left) is ignored: the proxy appended the address it saw
        chain = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        assert c.post("/api/v1/auth/token", json=body, headers=chain).status_code == 200
    with TestClient(proxied, client=("192.0.2.9", 40000)) as c:  # not the proxy: header ignored
        assert c.post("/api/v1/auth/token", json=body, headers=spoof).status_code == 200
    assert _client_addrs(engine, "sup") == ["192.0.2.9", "203.0.113.7", "127.0.0.1"]


@pytest.mark.integration  # starts `vaudit run`
def test_vaudit_run_does_not_take_forwarded_for_from_localhost(tmp_path: Path) -> None:
    """The real server (uvicorn as `vaudit run` configures it): uvicorn trusts X-Forwarded-For from
    127.0.0.1 by default, which made any local process name the client in the audit trail."""
    import httpx

    from indexer.database import create_engine_for
    from tests.support.vaudit_proc import E2E_USER, VauditRun

    db = tmp_path / "index.db"
    config = tmp_path / "centre.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n[storage]\npath = "{tmp_path / "store"}"\n'
        f'[recorder]\nspool = "{tmp_path / "spool"}"\n[api]\nupload_tmp = "{tmp_path / "up"}"\n'
        f'[export]\nout_dir = "{tmp_path / "exports"}"\n',
        encoding="utf-8",
    )
    with VauditRun(config, tmp_path / "run.log") as run:
        r = httpx.get(
            f"{run.base}/api/v1/auth/me", headers={**run.headers, "X-Forwarded-For": "203.0.113.66"}
        )
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        spoofed = httpx.post(
            f"{run.base}/api/v1/auth/token",
            json={"name": E2E_USER, "password": "wrong-password-here"},
            headers={"X-Forwarded-For": "203.0.113.66"},
            timeout=10,
        )
        assert spoofed.status_code == 401
    engine = create_engine_for(f"sqlite:///{db}")
    try:
        refused = AuditLog(engine).rows(action="token_refused")
        assert [r.client_addr for r in refused] == ["127.0.0.1"]
    finally:
        engine.dispose()
