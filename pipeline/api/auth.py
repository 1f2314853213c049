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
* Logins (token route and login form) are throttled per account and per client address
  (:mod:`indexer.login_throttle`); a run of failures raises a ``login_failures`` alert. Owners
  list and revoke their own tokens under ``/api/v1/auth/tokens``.
* API answers carry ``Cache-Control: no-store`` unless the route set its own: case, subject and
  footage data must not stay in a shared or browser cache.
* The client address of the audit trail is the TCP peer's; ``X-Forwarded-For`` counts only
  when the peer is one of ``api.trusted_proxies``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.errors import CsrfFailed, Forbidden, TooManyAttempts, Unauthenticated
from domain.types import from_unix, iso
from indexer.alert_store import AlertStore, NewAlert
from indexer.audit import AuditLog
from indexer.case_records import Writer
from indexer.database import DB_INT_MAX
from indexer.login_throttle import LoginThrottle, Streak, ThrottlePolicy
from indexer.users import TOKEN_SECONDS, Principal, UserStore
from pipeline.api.deps import MaybeRiskDep, Network, Security, SecurityDep
from pipeline.api.errors import API_PREFIXES, send_error, send_error_for
from pipeline.risk.engine import RiskEngine
from pipeline.risk.push import alert_json
from pipeline.settings import Settings

SESSION_COOKIE = "vaudit_session"
CSRF_HEADER = "x-csrf-token"
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/login", "/api/v1/auth/token", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ALL_ROLES = ("officer", "supervisor", "legal", "admin", "court_viewer")
WRITERS = ("officer", "supervisor", "admin")  # case records and body-camera imports
LATE_WRITERS = ("supervisor", "legal", "admin")  # may write late entries and confirm readings
EXPORTERS = ("officer", "supervisor", "legal", "admin")
LIVE = ("supervisor", "legal", "admin")
AUDITORS = ("legal", "admin")
CAMERA_WIDE = ("supervisor", "legal", "admin", "court_viewer")  # footage not tied to one's cases

# (path prefix, methods or None for all, roles allowed); the first matching rule applies.
_RULES: tuple[tuple[str, frozenset[str] | None, tuple[str, ...]], ...] = (
    ("/api/v1/auth/", None, ALL_ROLES),  # one's own identity and tokens
    ("/api/v1/users", None, ("admin",)),
    ("/admin/users", None, ("admin",)),
    ("/api/v1/audit", None, AUDITORS),
    ("/admin/audit", None, AUDITORS),
    ("/api/v1/live", None, LIVE),
    ("/live", None, LIVE),
    ("/api/v1/exports", None, EXPORTERS),
    # a camera's segments and gaps: officers too, with a case of theirs (pipeline.api.footage_access)
    ("/api/v1/cameras/", frozenset({"GET", "HEAD"}), ALL_ROLES),
    ("/api/v1/cameras", None, CAMERA_WIDE),
    # officers too, but only with a case of theirs and within its stays (pipeline.api.footage_access)
    ("/api/v1/playback", None, ALL_ROLES),
    ("/play", None, ALL_ROLES),
    ("/api/v1/alerts/", frozenset({"POST"}), LIVE),  # acknowledge/resolve: supervisor, legal, admin
    # officer records are personnel data, not a case's: officers do not create them
    ("/api/v1/officers", frozenset({"POST", "PUT", "PATCH", "DELETE"}), ("supervisor", "admin")),
    ("/api/v1/readings/confirm", None, LATE_WRITERS),
    ("/api/v1/", frozenset({"POST", "PUT", "PATCH", "DELETE"}), WRITERS),
)


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret, so nothing more is stored."""
    return hmac.new(session_secret.encode(), b"vaudit-csrf", hashlib.sha256).hexdigest()[:40]


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


def _no_store(send: Send) -> Send:
    """``send`` with ``Cache-Control: no-store`` added to a response that sets no cache policy."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(k.lower() == b"cache-control" for k, _ in headers):
                headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
        await send(message)

    return sending


class AuthGate:
    """Authenticates every HTTP request before the app sees it (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["type"] == "http" and _is_api(path):
            send = _no_store(send)
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
            # a browser asking for a page it may not see gets a page saying so; the API its JSON
            await send_error_for(
                scope, send, 403, "forbidden", f"role {who.role} may not use {method} {path}"
            )
            return
        if via_cookie and method not in SAFE_METHODS and _is_api(path):
            sent = _header(headers, CSRF_HEADER.encode()) or ""
            if not hmac.compare_digest(sent, csrf_token(session_secret)):
                await send_error(
                    send,
                    CsrfFailed.http_status,
                    CsrfFailed.code,
                    "missing or wrong X-CSRF-Token for a cookie session",
                )
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
            await send_error(
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


# --- helpers for routes ---------------------------------------------------------------------


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(proxies: tuple[Network, ...], host: str | None) -> bool:
    addr = _address(host) if host else None
    return addr is not None and any(addr in net for net in proxies)


def from_trusted_proxy(conn: HTTPConnection, proxies: tuple[Network, ...]) -> bool:
    """The TCP peer is one of ``proxies`` (``api.trusted_proxies``: its X-Forwarded-* headers count)."""
    peer = conn.client.host if conn.client is not None else None
    return _trusted(proxies, peer)


def client_addr(conn: HTTPConnection, proxies: tuple[Network, ...]) -> str | None:
    """The client's address: the TCP peer's, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not itself a trusted proxy (hops further left are
    whatever the client chose to send)."""
    peer = conn.client.host if conn.client is not None else None
    if not _trusted(proxies, peer):
        return peer
    hops = [h.strip() for part in conn.headers.getlist("x-forwarded-for") for h in part.split(",")]
    for hop in reversed([h for h in hops if h]):
        if _address(hop) is None:
            return peer  # a malformed chain proves nothing about the client
        if not _trusted(proxies, hop):
            return hop
    return peer


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request acts as (the gate authenticated them), with the audit trail and the case
    rules that apply to them: what every route but the public ones starts from."""

    who: Principal
    security: Security
    address: str | None  # for the audit trail: see client_addr
    csrf: str  # the session's CSRF token for the page's forms; "" with a bearer token

    def audit(self, action: str, obj: str, **detail: Any) -> None:
        """Append one audit row for this request (user, time, object, client address)."""
        self.security.audit.append(
            self.who.name,
            action,
            obj,
            self.address,
            {k: v for k, v in detail.items() if v is not None} or None,
        )

    def require_case(self, case_id: int) -> None:
        """403 unless the caller may see this case (officers: only cases they are on)."""
        who = self.who
        if who.sees_all_cases:
            return
        if who.officer_id is None or not self.security.users.officer_on_case(who.officer_id, case_id):
            raise Forbidden(f"case {case_id} is not one of your cases")

    def writer(self) -> Writer:
        """The caller as a writer of case data: an officer writes into their own cases only and no
        late entries; supervisor, legal and admin write anywhere (route rules keep legal out of most)."""
        who = self.who
        if who.role != "officer":
            return Writer(who.user_id, who.name, None, who.officer_id, who.role in LATE_WRITERS)
        mine = self.visible_cases()
        return Writer(who.user_id, who.name, frozenset(mine or ()), who.officer_id, False)

    def visible_cases(self) -> set[int] | None:
        """None: every case; otherwise the ids the caller may see."""
        who = self.who
        if who.sees_all_cases:
            return None
        if who.officer_id is None:
            return set()
        return self.security.users.officer_cases(who.officer_id)


async def current_caller(conn: HTTPConnection, sec: SecurityDep) -> Caller:
    """The request's :class:`Caller`, from what :class:`AuthGate` put in the request's state
    (``async``: no thread hop for it, see :mod:`pipeline.api.deps`)."""
    who: Principal | None = getattr(conn.state, "principal", None)
    if who is None:
        raise Unauthenticated("not authenticated")
    return Caller(who, sec, client_addr(conn, sec.trusted_proxies), getattr(conn.state, "csrf", ""))


CallerDep = Annotated[Caller, Depends(current_caller)]


# --- routes -----------------------------------------------------------------------------------

router = APIRouter(tags=["auth"])


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


def authenticate(
    sec: Security, risk: RiskEngine | None, addr: str | None, name: str, password: str, refused: str
) -> Principal:
    """Check a name and password under the login throttle: the account, or TooManyAttempts (the
    password not even looked at) or Unauthenticated; every outcome is audited, and a run of
    failures on the account or the address raises a ``login_failures`` alert (published on
    ``risk``'s live stream too, on a node that runs one). ``addr``: the client's address;
    ``refused``: the audit action of a wrong password."""
    wait = sec.throttle.begin(name, addr)
    if wait is not None:
        sec.audit.append(name[:128], "login_throttled", "auth", addr, {"retry_after_seconds": round(wait, 3)})
        raise TooManyAttempts(
            f"too many failed logins for this account or address: try again in {math.ceil(wait)} s",
            retry_after_seconds=max(1, math.ceil(wait)),
        )
    who = sec.users.check_password(name, password)
    if who is None:
        sec.audit.append(name[:128], refused, "auth", addr)
        for streak in sec.throttle.failed(name, addr):
            _alert(sec, risk, streak)
        raise Unauthenticated("wrong name or password")
    sec.throttle.succeeded(name, addr)
    return who


def _alert(sec: Security, risk: RiskEngine | None, streak: Streak) -> None:
    kind, _, value = streak.key.partition(":")
    what = "account" if kind == "user" else "address"
    message = f"{streak.failures} failed logins in a row for {what} {value}"
    new = NewAlert(
        "login_failures",
        f"login_failures:{streak.key}",
        "high",
        message,
        from_unix(streak.first_us / 1_000_000),
        from_unix(streak.last_us / 1_000_000),  # a closed instance: the risk engine leaves it alone
        details={what: value, "failures": streak.failures},
    )
    rec, created = sec.alerts.raise_or_continue(new, datetime.now(UTC))
    sec.audit.append("system", "alert_raised", f"alert:{rec.id}", None, {"rule": rec.rule, what: value})
    if risk is not None:  # the live alert stream of a recording node
        risk.hub.publish({"event": "raised" if created else "continued", "alert": alert_json(rec)})


@router.post(
    "/api/v1/auth/token",
    summary="A bearer token for an API client (name and password)",
    responses={429: {"description": "Too many failed logins for this account or address (see Retry-After)"}},
)
def issue_token(request: Request, body: TokenIn, sec: SecurityDep, risk: MaybeRiskDep) -> dict[str, Any]:
    addr = client_addr(request, sec.trusted_proxies)
    who = authenticate(sec, risk, addr, body.name, body.password, "token_refused")
    token = sec.users.issue(who, "bearer")
    sec.audit.append(who.name, "token_issued", f"user:{who.name}", addr)
    return {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_SECONDS, "role": who.role}


@router.get("/api/v1/auth/me", summary="Who this credential belongs to")
def me(caller: CallerDep) -> dict[str, Any]:
    who = caller.who
    return {"name": who.name, "role": who.role, "officer_id": who.officer_id}


@router.get("/api/v1/auth/tokens", summary="Your own sessions and API tokens that have not expired")
def my_tokens(caller: CallerDep) -> dict[str, Any]:
    who = caller.who
    return {
        "tokens": [
            {
                "id": c.id,
                "kind": c.kind,
                "created": iso(from_unix(c.created_us / 1_000_000)),
                "expires": iso(from_unix(c.expires_us / 1_000_000)),
                "revoked": c.revoked,
                "current": c.id == who.credential_id,
            }
            for c in caller.security.users.credentials(who.user_id)
        ]
    }


@router.post("/api/v1/auth/tokens/{token_id}/revoke", summary="Revoke one of your own sessions or tokens")
def revoke_token(caller: CallerDep, token_id: Annotated[int, Path(ge=1, le=DB_INT_MAX)]) -> dict[str, Any]:
    who = caller.who
    caller.security.users.revoke_credential(who.user_id, token_id)
    caller.audit("token_revoked", f"user:{who.name}", token_id=token_id)
    return {"id": token_id, "revoked": True}


@router.post(
    "/api/v1/auth/tokens/revoke-all",
    summary="Revoke all your own sessions and tokens, this one too (e.g. after a token leaked)",
)
def revoke_all_tokens(caller: CallerDep) -> dict[str, Any]:
    who = caller.who
    caller.audit("token_revoked_all", f"user:{who.name}")  # before: the credential dies with it
    return {"revoked": caller.security.users.revoke_all(who.user_id)}


def install(app: FastAPI, engine: Engine, audit_log: AuditLog) -> Security:
    """Users, audit trail (keyed: pipeline/storage/anchors.py), login throttle and the gate, on
    ``app.state.security`` (routes take it as :data:`pipeline.api.deps.SecurityDep` or in their
    :data:`CallerDep`)."""
    settings: Settings = app.state.settings
    cfg = settings.auth
    policy = ThrottlePolicy(
        cfg.free_attempts,
        cfg.base_delay_seconds,
        cfg.max_delay_seconds,
        cfg.reset_seconds,
        cfg.alert_after_failures,
    )
    sec = Security(
        UserStore(engine, min_password=cfg.min_password_length),
        audit_log,
        LoginThrottle(engine, policy),
        AlertStore(engine),
        tuple(ipaddress.ip_network(p, strict=False) for p in settings.api.trusted_proxies),
    )
    app.state.security = sec
    app.add_middleware(AuthGate)
    app.include_router(router)
    return sec
