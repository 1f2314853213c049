"""One error handler for the whole API, with one fixed JSON shape:

    {"error": {"code": "<stable code>", "message": "<human text>", "details": {...}}}

Validation problems carry ``details.fields``: a list of {"field": "body.x.y", "message": ...}.

A browser asking for a *page* (a path outside the API that accepts ``text/html``) gets the same
error as an HTML page in the user's language instead (:func:`error_page`): the message is the
code's, in Chinese by default; the API's English message stays in the page (the ``title`` of the
message and a ``data-detail`` attribute) for whoever reports the problem. The API keeps its JSON.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from domain.errors import VauditError

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
}


API_PREFIXES = ("/api/", "/openapi.json", "/docs", "/redoc")  # JSON answers, never a page
LANG_COOKIE = "vaudit_lang"  # the page language the user chose (pipeline.api.pages)

# The pages' names of the error codes (the web's labels.js has the same for errors the API returns
# to a page's script): what a user reads instead of the English message.
PAGE_ERRORS: dict[str, tuple[str, str]] = {
    "forbidden": ("您无权查看此页面", "You may not see this page"),
    "csrf_failed": ("表单已过期，请刷新页面后重试", "The form has expired: reload the page and try again"),
    "not_found": ("未找到所请求的内容", "Not found"),
    "unauthorized": ("请先登录", "Please log in"),
    "validation_failed": ("请求的参数有误", "The request is not valid"),
    "bad_request": ("请求有误", "Bad request"),
    "method_not_allowed": ("不支持此操作", "Method not allowed"),
    "conflict": ("与已有记录冲突", "Conflicts with a stored record"),
    "too_many_requests": ("尝试次数过多，请稍后再试", "Too many attempts: try again later"),
    "payload_too_large": ("提交的内容过大", "Request too large"),
    "internal_error": ("服务器内部错误，请联系管理员", "Internal error: contact the administrator"),
}
_PAGE_TEXT = {
    "zh-CN": {"title": "出错了", "back": "返回检索", "other": "服务暂时无法完成此请求"},
    "en": {"title": "Error", "back": "Back to search", "other": "The request could not be completed"},
}


def _page_lang(query: str, cookie_header: str) -> str:
    asked = (parse_qs(query).get("lang") or [""])[0]
    if not asked:
        for part in cookie_header.split(";"):
            k, _, v = part.strip().partition("=")
            if k == LANG_COOKIE:
                asked = v
    return "en" if asked.lower().startswith("en") else "zh-CN"


def wants_page(scope: Scope) -> bool:
    """A browser asking for a page (not the API, and HTML accepted): errors become pages."""
    if scope.get("type") != "http" or str(scope.get("path", "")).startswith(API_PREFIXES):
        return False
    accept = b", ".join(v for k, v in scope.get("headers", []) if k == b"accept")
    return b"text/html" in accept


def error_page(scope: Scope, status: int, code: str, message: str) -> HTMLResponse:
    """The error as a page in the user's language (see the module docstring)."""
    headers = dict(scope.get("headers", []))
    lang = _page_lang(
        scope.get("query_string", b"").decode("latin-1"), headers.get(b"cookie", b"").decode("latin-1")
    )
    text = _PAGE_TEXT[lang]
    zh, en = PAGE_ERRORS.get(code, (text["other"], _PAGE_TEXT["en"]["other"]))
    shown = zh if lang == "zh-CN" else en
    e = html.escape
    doc = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{e(text["title"])}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/favicon.ico"><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="error-page" data-status="{status}" data-code="{e(code)}"><h1>{e(text["title"])} ({status})</h1>
<p class="error" role="alert" title="{e(message)}" data-detail="{e(message)}">{e(shown)}</p>
<p><a href="/search">{e(text["back"])}</a></p></main></body></html>"""
    resp = HTMLResponse(doc, status_code=status)
    resp.headers["Content-Security-Policy"] = "default-src 'self'"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def send_error_for(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """:func:`send_error`, or for a browser asking for a page :func:`error_page` (ASGI middleware)."""
    if not wants_page(scope):
        await send_error(send, status, code, message)
        return
    page = error_page(scope, status, code, message)
    await send({"type": "http.response.start", "status": status, "headers": page.raw_headers})
    await send({"type": "http.response.body", "body": page.body})


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    close: bool = False,
) -> None:
    """The error shape from pure ASGI middleware (the auth gate, the body limit), which answers
    before the framework and its handlers. ``close``: ask the client to close the connection (a
    body that was refused unread must not be taken for the next request)."""
    body = json.dumps(error_body(code, message, details), ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        out.append({"field": loc, "message": str(err.get("msg", "invalid")).removeprefix("Value error, ")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    document_errors(app)

    @app.exception_handler(VauditError)
    async def _vaudit(request: Request, exc: VauditError) -> Response:
        if exc.http_status >= 500:
            logger.error(
                "request failed: %s", exc.message, extra={"path": request.url.path, "code": exc.code}
            )
        headers = None
        retry = exc.details.get("retry_after_seconds")
        if isinstance(retry, int):  # TooManyAttempts: tell the client when to come back
            headers = {"Retry-After": str(retry)}
        if wants_page(request.scope):
            return error_page(request.scope, exc.http_status, exc.code, exc.message)
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = _field_errors(exc)
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        if wants_page(request.scope):
            return error_page(request.scope, 422, "validation_failed", f"request is invalid: {summary}")
        return JSONResponse(
            error_body("validation_failed", f"request is invalid: {summary}", {"fields": fields}),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if wants_page(request.scope):
            return error_page(request.scope, exc.status_code, code, str(exc.detail))
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error", extra={"path": request.url.path})
        if wants_page(request.scope):
            return error_page(request.scope, 500, "internal_error", "internal error; see the server log")
        return JSONResponse(
            error_body("internal_error", "internal error; see the server log"), status_code=500
        )


# --- the error shape in the OpenAPI document ---------------------------------------------------

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code"},
                "message": {"type": "string"},
                "details": {"type": "object", "description": "e.g. fields: [{field, message}]"},
            },
        }
    },
}

# Why each status can come from any API operation (route-specific ones are declared on the route).
_COMMON_ERRORS = {
    "400": "Malformed request (body not parseable)",
    "401": "No or unknown credential (POST /api/v1/auth/token first)",
    "403": "The user's role or case access does not allow this",
    "404": "The object named in the path or body does not exist",
    "413": "Request body larger than the configured limit",
    "422": "Request fails validation (details.fields)",
    "503": "A service this node needs is not configured or not reachable",
}
_WRITE_ERRORS = {"409": "Conflicts with what is stored under the same key"}
REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"description": "The same request was made before: the stored record, unchanged"}
}


def document_errors(app: FastAPI) -> None:
    """Make the app's OpenAPI document say what its error handlers send.

    FastAPI documents 422 as its own ``HTTPValidationError`` shape and no other error status,
    while every error this API sends is :data:`ERROR_SCHEMA` (see the handlers above). Clients
    and the schema-driven fuzz test read the document, so it must match the wire.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorResponse"] = ERROR_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue  # health and metrics answer 200 or not at all
            for method, op in operations.items():
                responses = op.setdefault("responses", {})
                errors = dict(_COMMON_ERRORS)
                if method in ("post", "put", "patch", "delete"):
                    errors.update(_WRITE_ERRORS)
                # error statuses a route declares itself (e.g. playback's 409) have the same shape
                errors.update(
                    {
                        s: r.get("description", "")
                        for s, r in responses.items()
                        if s.isdigit() and int(s) >= 400 and s not in errors
                    }
                )
                for status, why in errors.items():
                    description = responses.get(status, {}).get("description") or why
                    responses[status] = {"description": description, **ref}
                for status in [c for c in responses if c[:1] in ("4", "5") and c not in errors]:
                    responses[status] = {"description": responses[status].get("description", ""), **ref}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
