"""Users, roles, authentication and the audit trail through the real app (create_app).

Without a credential pages redirect to the login page and the API answers 401; an officer
cannot open another officer's case (403); each view writes an audit row; tampering with an
audit row (after getting round the append-only triggers, as someone with database access
would) makes ``vaudit audit verify`` fail naming the row.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from indexer.audit import AuditLog, load_audit_key
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.support.auth import AUDIT_KEY, PASSWORD, add_user, bearer
from tests.support.centre_files import write_keyed_centre
from tests.support.vaudit_proc import VAUDIT


@pytest.fixture
def app_client(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        api={"upload_tmp": tmp_path / "up"},
        export={"out_dir": tmp_path / "exports"},
        audit={"key_file": tmp_path / "audit.key"},
    )
    app = create_app(settings, store, engine=engine, storage=LocalStorage(tmp_path / "store"))
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _actions(engine: Engine) -> list[tuple[str, str, str]]:
    return [(r.user, r.action, r.object) for r in reversed(AuditLog(engine).rows(limit=1000))]


def test_without_login_pages_redirect_and_api_is_401(app_client: TestClient) -> None:
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/metrics").status_code == 200
    assert app_client.get("/login").status_code == 200
    for path in ("/", "/search", "/admin/audit"):
        r = app_client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    for path in ("/api/v1/cases", "/api/v1/cameras", "/api/v1/alerts", "/api/v1/exports", "/openapi.json"):
        r = app_client.get(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized"
    assert app_client.post("/api/v1/cases", json={}).status_code == 401
    bad = app_client.get("/api/v1/cases", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401


def test_wrong_password_is_401_and_audited(app_client: TestClient, engine: Engine) -> None:
    add_user(engine, "alice", "supervisor")
    r = app_client.post("/api/v1/auth/token", json={"name": "alice", "password": "wrong-password"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert ("alice", "token_refused", "auth") in _actions(engine)


def test_officer_sees_only_own_cases_and_views_are_audited(
    app_client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    add_user(engine, "admin", "admin")
    admin = bearer(app_client, "admin")
    ids = {}
    for n, badge in ((1, "P-1"), (2, "P-2")):
        off = app_client.post(
            "/api/v1/officers", json={"name": f"警官{n}", "badge_number": badge}, headers=admin
        )
        case = app_client.post(
            "/api/v1/cases", json={"case_number": f"A-{n}", "title": "案", "charge": "盗窃"}, headers=admin
        )
        cid = case.json()["id"]
        app_client.post(f"/api/v1/cases/{cid}/officers", json={"officer_id": off.json()["id"]}, headers=admin)
        app_client.post(
            f"/api/v1/cases/{cid}/subjects", json={"name": f"张{n}", "role": "suspect"}, headers=admin
        )
        ids[badge] = cid
    add_user(engine, "li", "officer", officer_badge="P-1")
    li = bearer(app_client, "li")
    assert app_client.get(f"/api/v1/cases/{ids['P-1']}", headers=li).status_code == 200
    other = app_client.get(f"/api/v1/cases/{ids['P-2']}", headers=li)
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
    assert app_client.get(f"/api/v1/cases/{ids['P-2']}/timeline", headers=li).status_code == 403
    found = app_client.get("/api/v1/cases", headers=li).json()
    assert [h["case_number"] for h in found["items"]] == ["A-1"]
    assert app_client.get("/api/v1/cases", headers=admin).json()["total"] == 2
    # role rules: an officer may not browse whole cameras, nor the audit trail or users
    assert app_client.get("/api/v1/cameras", headers=li).status_code == 403
    assert app_client.get("/api/v1/audit", headers=li).status_code == 403
    court = (add_user(engine, "court", "court_viewer"), bearer(app_client, "court"))[1]
    assert app_client.post("/api/v1/cases", json={}, headers=court).status_code == 403
    actions = _actions(engine)
    assert ("li", "view_case", "case:A-1") in actions
    assert ("li", "search", "cases") in actions
    assert ("admin", "search", "cases") in actions
    assert ("admin", "token_issued", "user:admin") in actions
    assert AuditLog(engine, load_audit_key(tmp_path / "audit.key")).verify().ok


def test_browser_login_session_and_csrf(app_client: TestClient, engine: Engine) -> None:
    add_user(engine, "sup", "supervisor")
    form = app_client.get("/login?next=/api/v1/auth/me")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    forged = app_client.post(
        "/login", data={"name": "sup", "password": PASSWORD, "csrf": "forged", "next": "/"}
    )
    assert forged.status_code == 403
    # The browser loads something else meanwhile that lands on the login page (another tab; the
    # favicon is public now): the form already shown stays valid.
    again = app_client.get("/search", follow_redirects=True)
    assert again.url.path == "/login"
    assert re.search(r'name="csrf" value="([^"]+)"', again.text).group(1) == token.group(1)  # type: ignore[union-attr]
    ok = app_client.post(
        "/login",
        data={"name": "sup", "password": PASSWORD, "csrf": token.group(1), "next": "/api/v1/auth/me"},
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/api/v1/auth/me"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert app_client.get("/api/v1/auth/me").json()["role"] == "supervisor"
    # an unsafe API call on the cookie needs the session's CSRF token
    r = app_client.post("/api/v1/exports", json={"case": "x", "subject": "y"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    home = app_client.get("/search")
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert csrf is not None
    r = app_client.post(
        "/api/v1/exports", json={"case": "x", "subject": "y"}, headers={"X-CSRF-Token": csrf.group(1)}
    )
    assert r.status_code == 404  # past the gate: the case does not exist
    out = app_client.post("/logout", data={"csrf": csrf.group(1)})
    assert out.status_code == 303
    assert app_client.get("/api/v1/auth/me").status_code == 401
    assert [a for _u, a, _o in _actions(engine) if a in ("login", "logout")] == ["login", "logout"]


@pytest.mark.integration  # `vaudit` subprocesses: ~7 s
def test_cli_users_create_and_audit_verify_catches_tampering(db_url: str, tmp_path: Path) -> None:
    cfg = write_keyed_centre(tmp_path, db_url)
    made = subprocess.run(
        [VAUDIT, "users", "create", "boss", "--role", "admin", "--config", str(cfg)],
        input=b"s3cret-password\n",
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr.decode()
    short = subprocess.run(
        [VAUDIT, "users", "create", "x", "--role", "admin", "--config", str(cfg)],
        input=b"short\n",
        capture_output=True,
        timeout=60,
    )
    assert short.returncode == 1
    from indexer.database import create_engine_for

    engine = create_engine_for(db_url)
    try:
        from indexer.users import UserStore

        assert UserStore(engine).check_password("boss", "s3cret-password") is not None
        log = AuditLog(engine, load_audit_key(tmp_path / "keys" / "audit.key"))
        for n in range(5):
            log.append("boss", "search", f"cases:{n}", "10.0.0.9", {"n": n})

        def verify() -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [VAUDIT, "audit", "verify", "--config", str(cfg)], capture_output=True, timeout=60
            )

        assert verify().returncode == 0
        victim = log.rows(limit=1000)[-3].seq  # the third row
        with engine.begin() as conn:
            # the triggers refuse; an attacker with database access removes them first
            if engine.dialect.name == "sqlite":
                conn.execute(text("DROP TRIGGER audit_log_no_update"))
            else:
                conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            conn.execute(
                text("UPDATE audit_log SET object = 'cases:nothing to see' WHERE seq = :s"), {"s": victim}
            )
        broken = verify()
        assert broken.returncode == 1
        assert f"row {victim}" in broken.stdout.decode()
    finally:
        engine.dispose()


def test_case_audit_rows_go_into_the_exports_chain_of_custody(engine: Engine, tmp_path: Path) -> None:
    from indexer.case_records import NewCase
    from indexer.case_store import CaseStore
    from pipeline.export.service import ExportService

    cases = CaseStore(engine)
    cases.create_case(NewCase("A-1", "案一", "盗窃"))
    cases.create_case(NewCase("A-10", "案十", "盗窃"))
    log = AuditLog(engine, AUDIT_KEY)
    log.append("li", "view_case", "case:A-1", "10.0.0.1")
    log.append("wang", "view_case", "case:A-10", "10.0.0.2")
    log.append("li", "export", "case:A-1", "10.0.0.1", {"job": "j1"})
    settings = Settings(export={"out_dir": tmp_path / "exports"}, audit={"key_file": tmp_path / "audit.key"})
    rows = ExportService(settings, engine, LocalStorage(tmp_path / "store")).case_audit("A-1")
    assert [(r["user"], r["action"]) for r in rows] == [("li", "view_case"), ("li", "export")]
    assert all(len(r["hash"]) == 64 for r in rows)
