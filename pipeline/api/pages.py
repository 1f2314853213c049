"""Server-rendered pages: login, logout and the shell of the supervisor web.

zh-CN by default, English with ``?lang=en`` (remembered in a cookie). Forms are CSRF-safe:
the session cookie is ``SameSite=Strict`` and every form carries a CSRF token (the login
form a double-submit token, since there is no session yet).
"""

from __future__ import annotations

import hmac
import html
import re
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from domain.errors import Forbidden, TooManyAttempts, Unauthenticated
from pipeline.api.auth import (
    LIVE,
    SESSION_COOKIE,
    Caller,
    CallerDep,
    authenticate,
    client_addr,
    csrf_token,
    from_trusted_proxy,
)
from pipeline.api.deps import CaseApiDep, MaybeRiskDep, Security, SecurityDep, SettingsDep
from pipeline.api.errors import LANG_COOKIE
from pipeline.settings import Settings

router = APIRouter(tags=["pages"], include_in_schema=False)

LOGIN_CSRF_COOKIE = "vaudit_login_csrf"
_LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")  # what secrets.token_urlsafe(24) makes

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "title": "执法办案音视频审计",
        "login": "登录",
        "name": "用户名",
        "password": "密码",
        "bad_login": "用户名或密码错误",
        "throttled": "登录失败次数过多，请 {seconds} 秒后再试",
        "logout": "退出",
        "search": "检索",
        "live": "实时",
        "audit": "审计日志",
        "switch": "English",
        "welcome": "已登录",
        "case": "案件",
        "playback": "回放",
        "replay": "全程回放",
        "alerts": "风险告警",
        "board": "在区人员",
    },
    "en": {
        "title": "Case-handling video audit",
        "login": "Log in",
        "name": "User name",
        "password": "Password",
        "bad_login": "Wrong user name or password",
        "throttled": "Too many failed logins: try again in {seconds} s",
        "logout": "Log out",
        "search": "Search",
        "live": "Live",
        "audit": "Audit trail",
        "switch": "中文",
        "welcome": "Logged in as",
        "case": "Case",
        "playback": "Playback",
        "replay": "Full-stay replay",
        "alerts": "Risk alerts",
        "board": "In the centre",
    },
}


ROLE_NAMES: dict[str, tuple[str, str]] = {  # indexer.users.ROLES, as labels.js's user_role
    "officer": ("办案民警", "Officer"),
    "supervisor": ("监督员", "Supervisor"),
    "legal": ("法制员", "Legal affairs"),
    "admin": ("管理员", "Administrator"),
    "court_viewer": ("法庭查看", "Court viewer"),
}


def role_name(lang: str, role: str) -> str:
    names = ROLE_NAMES.get(role)
    return role if names is None else names[0 if lang == "zh-CN" else 1]


def lang_of(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "zh-CN"
    return "en" if asked.lower().startswith("en") else "zh-CN"


def t(lang: str, key: str) -> str:
    return TEXT[lang].get(key, key)


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def page(lang: str, title: str, body: str, status: int = 200) -> HTMLResponse:
    e = html.escape
    doc = f"""<!doctype html>
<html lang="{e(lang)}"><head><meta charset="utf-8"><title>{e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/favicon.ico"><link rel="stylesheet" href="/static/app.css"></head>
<body>{body}</body></html>"""
    resp = HTMLResponse(doc, status_code=status)
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:"
    )
    resp.headers["X-Frame-Options"] = "DENY"
    resp.set_cookie(LANG_COOKIE, lang, samesite="strict", httponly=True)
    return resp


def _login_form(lang: str, next_: str, token: str, error: str = "") -> str:
    e = html.escape
    other = "en" if lang == "zh-CN" else "zh-CN"
    err = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    return f"""<main class="login"><h1>{e(t(lang, "title"))}</h1>{err}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{e(token)}"><input type="hidden" name="next" value="{e(next_)}">
<label>{e(t(lang, "name"))} <input name="name" autocomplete="username" required></label>
<label>{e(t(lang, "password"))} <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">{e(t(lang, "login"))}</button></form>
<p><a href="/login?lang={other}&next={e(next_)}">{e(t(lang, "switch"))}</a></p></main>"""


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    lang = lang_of(request)
    # Keep the browser's current form token: a second load of the login page (another tab, or the
    # browser's own /favicon.ico request redirected here) must not void the form already shown.
    held = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    token = held if _LOGIN_TOKEN.fullmatch(held) else secrets.token_urlsafe(24)
    resp = page(lang, t(lang, "login"), _login_form(lang, _safe_next(next), token))
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, samesite="strict", httponly=True, path="/login")
    return resp


@router.post("/login")
def login(
    request: Request,
    sec: SecurityDep,
    risk: MaybeRiskDep,
    name: Annotated[str, Form(max_length=128)],
    password: Annotated[str, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    lang = lang_of(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf):
        raise Forbidden("login form expired or forged (CSRF); reload the login page")
    addr = client_addr(request, sec.trusted_proxies)
    try:
        who = authenticate(sec, risk, addr, name, password, "login_failed")
    except (Unauthenticated, TooManyAttempts) as exc:
        token = secrets.token_urlsafe(24)
        if isinstance(exc, TooManyAttempts):
            seconds = exc.details["retry_after_seconds"]
            error, status = t(lang, "throttled").format(seconds=seconds), 429
        else:
            error, status = t(lang, "bad_login"), 401
        resp: Response = page(
            lang, t(lang, "login"), _login_form(lang, _safe_next(next), token, error), status
        )
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, samesite="strict", httponly=True, path="/login")
        if status == 429:
            resp.headers["Retry-After"] = str(exc.details["retry_after_seconds"])
        return resp
    secret = sec.users.issue(who, "session")
    sec.audit.append(who.name, "login", f"user:{who.name}", addr)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE, secret, httponly=True, samesite="strict", secure=_https(request, sec), path="/"
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


def _https(request: Request, sec: Security) -> bool:
    """Served over HTTPS (directly, or by a trusted TLS proxy that says so): the cookie is Secure."""
    forwarded = (
        from_trusted_proxy(request, sec.trusted_proxies)
        and request.headers.get("x-forwarded-proto") == "https"
    )
    return request.url.scheme == "https" or forwarded


def check_form_csrf(request: Request, sent: str) -> None:
    secret = request.cookies.get(SESSION_COOKIE, "")
    if not secret or not hmac.compare_digest(csrf_token(secret), sent):
        raise Forbidden("form expired or forged (CSRF)")


@router.post("/logout")
def logout(request: Request, caller: CallerDep, csrf: Annotated[str, Form(max_length=100)]) -> Response:
    check_form_csrf(request, csrf)
    caller.audit("logout", f"user:{caller.who.name}")
    caller.security.users.revoke(request.cookies.get(SESSION_COOKIE, ""))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


def nav(caller: Caller, lang: str, query: Iterable[tuple[str, str]] = ()) -> str:
    """The bar on every page: links by role, the user, language switch and logout form. The switch
    keeps the page's other query parameters (``query``): /play in English is the same camera and range."""
    e = html.escape
    who = caller.who
    links = [("/search", t(lang, "search"))]
    if who.role in LIVE:
        links.append(("/live", t(lang, "live")))
        links.append(("/board", t(lang, "board")))
    links.append(("/alerts", t(lang, "alerts")))  # officers see their own cases' alerts
    if who.role in ("legal", "admin"):
        links.append(("/admin/audit", t(lang, "audit")))
    other = "en" if lang == "zh-CN" else "zh-CN"
    items = "".join(f'<a href="{h}">{e(label)}</a>' for h, label in links)
    switch = urlencode([("lang", other), *((k, v) for k, v in query if k != "lang")])
    return f"""<nav>{items}<span class="who">{e(t(lang, "welcome"))} {e(who.name)} ({e(role_name(lang, who.role))})</span>
<a href="?{e(switch)}">{e(t(lang, "switch"))}</a>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{e(caller.csrf)}">
<button type="submit">{e(t(lang, "logout"))}</button></form></nav>"""


def app_page(
    request: Request,
    caller: Caller,
    settings: Settings,
    name: str,
    title_key: str,
    scripts: tuple[str, ...] = (),
    **data: str,
) -> HTMLResponse:
    """A page drawn in the browser from the JSON API by ``/static/app.js`` and the page's own script
    (``scripts``: more scripts of the page, loaded before it)."""
    lang = lang_of(request)
    e = html.escape
    attrs = "".join(f' data-{k.replace("_", "-")}="{e(v)}"' for k, v in data.items())
    tz = settings.centre.timezone
    body = (
        nav(caller, lang, request.query_params.multi_items())
        + f'<main id="app" data-page="{e(name)}" data-lang="{e(lang)}" data-tz="{e(tz)}"'
        + f' data-csrf="{e(caller.csrf)}" data-role="{e(caller.who.role)}"{attrs}>'
        + f"<h1>{e(t(lang, title_key))}</h1></main>"
        + '<script src="/static/app.js" defer></script>'
        + '<script src="/static/labels.js" defer></script>'
        + "".join(f'<script src="/static/{e(extra)}.js" defer></script>' for extra in scripts)
        + f'<script src="/static/{e(name)}.js" defer></script>'
    )
    return page(lang, t(lang, title_key), body)


FAVICON = Path(__file__).resolve().parent.parent / "web" / "static" / "favicon.ico"


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The browser's icon request on every page (public, see pipeline.api.auth): a real icon, not a 404."""
    return FileResponse(
        FAVICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/search", status_code=303)


@router.get("/search")
def search_page(request: Request, caller: CallerDep, settings: SettingsDep) -> HTMLResponse:
    return app_page(request, caller, settings, "search", "search")


@router.get("/cases/{case_id}")
def case_page(
    request: Request, caller: CallerDep, settings: SettingsDep, api: CaseApiDep, case_id: int
) -> HTMLResponse:
    # The page answers as GET /api/v1/cases/{id} does, in the same order (an unknown case 404, a
    # case the caller may not see 403: pipeline.api.cases.get_case), as an error page rather than
    # a 200 shell around an error box. The API call of case.js writes the audit row.
    api.store.get_case(case_id)
    caller.require_case(case_id)
    return app_page(request, caller, settings, "case", "case", ("export_dialog",), case_id=str(case_id))


@router.get("/play")
def play_page(request: Request, caller: CallerDep, settings: SettingsDep) -> HTMLResponse:
    return app_page(request, caller, settings, "play", "playback")


@router.get("/cases/{case_id}/replay")
def replay_page(request: Request, caller: CallerDep, settings: SettingsDep, case_id: int) -> HTMLResponse:
    """全程回放: one subject's whole stay in one player (``?subject=N``; play.js in replay mode)."""
    return app_page(request, caller, settings, "play", "replay", case_id=str(case_id), mode="replay")


@router.get("/live")
def live_page(request: Request, caller: CallerDep, settings: SettingsDep) -> HTMLResponse:
    caller.audit("live_view", "live:grid")
    return app_page(request, caller, settings, "live", "live")


@router.get("/board")
def board_page(request: Request, caller: CallerDep, settings: SettingsDep) -> HTMLResponse:
    if caller.who.role not in LIVE:
        raise Forbidden(f"role {caller.who.role} may not see who is in the centre")
    caller.audit("board_view", "board")
    return app_page(request, caller, settings, "board", "board")


@router.get("/admin/audit")
def audit_page(request: Request, caller: CallerDep, settings: SettingsDep) -> HTMLResponse:
    return app_page(request, caller, settings, "audit", "audit")
