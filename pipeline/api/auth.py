"""Authentication, authorisation and the audit hook for every route.

* Browsers log in at ``/login`` and get a session cookie (HttpOnly, ``SameSite=Strict``):
  an opaque 256-bit secret whose SHA-256 is kept in ``credentials`` (revocable, expiring).
* API clients ``POST /api/v1/auth/token`` with name and password and send
  ``Authorization: Bearer <token>``.
* :class:`AuthGate` (pure ASGI, so streamed responses pass through untouched) lets only
  ``/healthz``, ``/metrics``, the login page, the token route and static assets through
  without a credential: an API path answers 401 in the one error shape, a page redirects to
  the login page. It also applies the role rules that follow from the path alone.
* CSRF: besides ``SameSite=Strict``, an unsafe request authenticated by the cookie must
  carry the session's CSRF token (``X-CSRF-Token`` header, or the ``csrf`` form field checked
  by the page's handler). Bearer requests carry no ambient credential, so need none.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from indexer.audit import AuditLog
from indexer.users import TOKEN_SECONDS, Principal, UserStore
from pipeline.api.errors import error_body

logger = logging.getLogger(__name__)

SESSION_COOKIE = "vaudit_session"
CSRF_HEADER = "x-csrf-token"
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/login", "/api/v1/auth/token"})
PUBLIC_PREFIXES = ("/static/",)
API_PREFIXES = ("/api/", "/openapi.json", "/docs", "/redoc")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ALL_ROLES = ("officer", "supervisor", "legal", "admin", "court_viewer")
WRITERS = ("officer", "supervisor", "admin")  # case records and body-camera imports
EXPORTERS = ("officer", "supervisor", "legal", "admin")
LIVE = ("supervisor", "legal", "admin")
AUDITORS = ("legal", "admin")
CAMERA_WIDE = ("supervisor", "legal", "admin", "court_viewer")  # footage not tied to one's cases

# (path prefix, methods or None for all, roles allowed); the first matching rule applies.
_RULES: tuple[tuple[str, frozenset[str] | None, tuple[str, ...]], ...] = (
    ("/api/v1/users", None, ("admin",)),
    ("/admin/users", None, ("admin",)),
    ("/api/v1/audit", None, AUDITORS),
    ("/admin/audit", None, AUDITORS),
    ("/api/v1/live", None, LIVE),
    ("/live", None, LIVE),
    ("/api/v1/exports", None, EXPORTERS),
    ("/api/v1/cameras", None, CAMERA_WIDE),
    # officers too, but only with a case of theirs and within its stays (pipeline.api.footage_access)
    ("/api/v1/playback", None, ALL_ROLES),
    ("/play", None, ALL_ROLES),
    ("/api/v1/alerts/", frozenset({"POST"}), LIVE),  # acknowledge/resolve: supervisor, legal, admin
    ("/api/v1/", frozenset({"POST", "PUT", "PATCH", "DELETE"}), WRITERS),
)


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret, so nothing more is stored."""
    return hmac.new(session_secret.encode(), b"vaudit-csrf", hashlib.sha256).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Security:
    users: UserStore
    audit: AuditLog


def security(app: Any) -> Security:
    sec: Security | None = getattr(app.state, "security", None)
    if sec is None:
        raise HTTPException(401, "authentication is not configured on this node")
    return sec


def _is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def allowed(role: str, path: str, method: str) -> bool:
    for prefix, methods, roles in _RULES:
        if path.startswith(prefix) and (methods is None or method in methods):
            return role in roles
    return role in ALL_ROLES


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class AuthGate:
    """Authenticates every HTTP request before the app sees it (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        sec: Security | None = getattr(scope["app"].state, "security", None)
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        method: str = scope.get("method", "GET")
        who: Principal | None = None
        via_cookie = False
        session_secret = ""
        if sec is not None:
            auth = _header(headers, b"authorization") or ""
            if auth[:7].lower() == "bearer ":
                who = await anyio.to_thread.run_sync(sec.users.resolve, auth[7:].strip(), "bearer")
            else:
                session_secret = _cookie(headers, SESSION_COOKIE) or ""
                if session_secret:
                    who = await anyio.to_thread.run_sync(sec.users.resolve, session_secret, "session")
                    via_cookie = who is not None
        if who is None:
            await self._refuse(scope, receive, send, path)
            return
        if not allowed(who.role, path, method):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _json(send, 403, "forbidden", f"role {who.role} may not use {method} {path}")
            return
        if via_cookie and method not in SAFE_METHODS and _is_api(path):
            sent = _header(headers, CSRF_HEADER.encode()) or ""
            if not hmac.compare_digest(sent, csrf_token(session_secret)):
                await _json(send, 403, "csrf_failed", "missing or wrong X-CSRF-Token for a cookie session")
                return
        state = scope.setdefault("state", {})
        state["principal"] = who
        state["user"] = who.name
        state["csrf"] = csrf_token(session_secret) if via_cookie else ""
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation: not logged in
            return
        if _is_api(path):
            await _json(
                send, 401, "unauthorized", "log in first: POST /api/v1/auth/token, then Authorization: Bearer"
            )
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", f"/login?next={quote(target, safe='')}".encode()),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def _json(send: Send, status: int, code: str, message: str) -> None:
    import json

    body = json.dumps(error_body(code, message), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- helpers for routes ---------------------------------------------------------------------


def principal(request: Request) -> Principal:
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None:
        raise HTTPException(401, "not authenticated")
    return who


def client_addr(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def audit(request: Request, action: str, obj: str, **detail: Any) -> None:
    """Append one audit row for this request (user, time, object, client address)."""
    who = principal(request)
    security(request.app).audit.append(
        who.name,
        action,
        obj,
        client_addr(request),
        {k: v for k, v in detail.items() if v is not None} or None,
    )


def require_case(request: Request, case_id: int) -> None:
    """403 unless the caller may see this case (officers: only cases they are on)."""
    who = principal(request)
    if who.sees_all_cases:
        return
    if who.officer_id is None or not security(request.app).users.officer_on_case(who.officer_id, case_id):
        raise HTTPException(403, f"case {case_id} is not one of your cases")


def visible_cases(request: Request) -> set[int] | None:
    """None: every case; otherwise the ids the caller may see."""
    who = principal(request)
    if who.sees_all_cases:
        return None
    if who.officer_id is None:
        return set()
    return security(request.app).users.officer_cases(who.officer_id)


# --- routes -----------------------------------------------------------------------------------

router = APIRouter(tags=["auth"])


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


@router.post("/api/v1/auth/token", summary="A bearer token for an API client (name and password)")
def issue_token(request: Request, body: TokenIn) -> dict[str, Any]:
    sec = security(request.app)
    who = sec.users.check_password(body.name, body.password)
    if who is None:
        sec.audit.append(body.name, "token_refused", "auth", client_addr(request))
        raise HTTPException(401, "wrong name or password")
    token = sec.users.issue(who, "bearer")
    sec.audit.append(who.name, "token_issued", f"user:{who.name}", client_addr(request))
    return {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_SECONDS, "role": who.role}


@router.get("/api/v1/auth/me", summary="Who this credential belongs to")
def me(request: Request) -> dict[str, Any]:
    who = principal(request)
    return {"name": who.name, "role": who.role, "officer_id": who.officer_id}


def install(app: FastAPI, engine: Engine, audit_log: AuditLog) -> Security:
    """Users, audit trail (keyed: pipeline/audit_anchor.py) and the gate; routes read
    ``app.state.security``."""
    sec = Security(UserStore(engine), audit_log)
    app.state.security = sec
    app.add_middleware(AuthGate)
    app.include_router(router)
    return sec
