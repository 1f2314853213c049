"""Log test clients in: create a user in the index database, fetch a bearer token."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from indexer.audit import AuditKey
from indexer.users import UserStore

PASSWORD = "correct horse battery"
# The audit key of tests that write the trail without an app (an app reads [audit] key_file).
AUDIT_KEY = AuditKey.of(bytes(range(32)))


def add_user(engine: Engine, name: str, role: str, officer_badge: str | None = None) -> None:
    UserStore(engine).create_user(name, role, PASSWORD, officer_badge=officer_badge)


def bearer(client: Any, name: str, password: str = PASSWORD) -> dict[str, str]:
    """Authorization header for ``name`` (``client`` is a TestClient or an httpx.Client)."""
    resp = client.post("/api/v1/auth/token", json={"name": name, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def log_in(client: Any, engine: Engine, name: str = "admin", role: str = "admin") -> None:
    """Create ``name`` and make every later request of ``client`` carry its token."""
    add_user(engine, name, role)
    client.headers.update(bearer(client, name))
