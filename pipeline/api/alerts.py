"""Risk alerts over HTTP: list, get, snapshot, acknowledge, resolve, a live SSE stream, and the
alerts page.

The routes use the alert store (an :class:`indexer.alert_store.AlertStore`, on every node with a
database) and the risk engine (the :class:`pipeline.risk.engine.RiskEngine` of a recording node,
or None on an API-only node: the stream then has nothing to deliver, and acknowledge/resolve
write the store directly). Acknowledge and resolve are for supervisor,
legal and admin users and go into the audit trail; officers see the alerts of their own cases.

The legacy list of *system* alerts (storage down, camera lost; :mod:`pipeline.ops.health_alerts`) stays
in the list answer as ``system`` (and as ``alerts``, the key older clients read).
"""

from __future__ import annotations

import html
import json
import queue
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from domain.errors import Forbidden, ValidationFailed
from indexer.alert_store import AlertQuery, AlertRecord, AlertStore
from pipeline.api.auth import Caller, CallerDep
from pipeline.api.deps import AlertStoreDep, MaybeRiskDep, MaybeRuntimeDep, RiskDep, SettingsDep
from pipeline.api.pages import lang_of, nav, page
from pipeline.risk.engine import RiskEngine
from pipeline.risk.push import Doc, alert_json

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
pages_router = APIRouter(tags=["pages"], include_in_schema=False)

HANDLERS = ("supervisor", "legal", "admin")  # may acknowledge and resolve
STREAM_POLL_SECONDS = 1.0  # how soon a closed connection is noticed (and its thread freed)
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often keeps proxies from closing an idle stream


def install(app: FastAPI, engine: Engine) -> None:
    app.state.alert_store = AlertStore(engine)
    app.include_router(router)
    app.include_router(pages_router)


def _may_see(caller: Caller, alert: AlertRecord) -> bool:
    mine = caller.visible_cases()
    return mine is None or (alert.case_id is not None and alert.case_id in mine)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(default=None, max_length=2000, description="Why (kept with the alert)")


@router.get("", summary="Risk alerts (filters combine), newest first; system alerts beside them")
def list_alerts(
    caller: CallerDep,
    alerts: AlertStoreDep,
    runtime: MaybeRuntimeDep,
    state: Literal["open", "acknowledged", "resolved", "active"] | None = Query(
        default=None, description="active = open or acknowledged"
    ),
    case_id: int | None = None,
    room_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[
        datetime | None, Query(description="condition still holding at or after (ISO 8601)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Doc:
    if since is not None and since.tzinfo is None:
        raise ValidationFailed(
            "since needs a time zone", fields=[{"field": "query.since", "message": "no time zone"}]
        )
    if case_id is not None:
        caller.require_case(case_id)
    items = alerts.find(AlertQuery(state, case_id, room_id, since, limit))
    system = [a.to_json() for a in runtime.alerts.recent()] if runtime is not None else []
    return {
        "items": [alert_json(a) for a in items if _may_see(caller, a)],
        "system": system,
        "alerts": system,
    }


async def _events(
    request: Request, caller: Caller, risk: RiskEngine, q: queue.Queue[Doc | None]
) -> AsyncIterator[str]:
    idle = 0.0
    try:
        yield "retry: 3000\n: connected\n\n"
        while not await request.is_disconnected():
            try:
                doc = await anyio.to_thread.run_sync(q.get, True, STREAM_POLL_SECONDS)
            except queue.Empty:
                idle += STREAM_POLL_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield ": ping\n\n"
                continue
            if doc is None:  # the engine stops: end the stream (the browser reconnects)
                return
            alert = doc["alert"]
            mine = caller.visible_cases()
            if mine is not None and alert["case_id"] not in mine:
                continue
            yield f"id: {alert['id']}\nevent: {doc['event']}\ndata: {json.dumps(doc, ensure_ascii=False)}\n\n"
    finally:
        risk.hub.unsubscribe(q)


@router.get(
    "/stream",
    summary="Live alert changes as Server-Sent Events (event: raised, continued, ended, acknowledged, "
    "resolved, snapshot; data: {event, alert})",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def stream_alerts(request: Request, caller: CallerDep, risk: RiskDep) -> StreamingResponse:
    q = risk.hub.subscribe()
    return StreamingResponse(
        _events(request, caller, risk, q),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/{alert_id}", summary="One alert")
def get_alert(caller: CallerDep, alerts: AlertStoreDep, alert_id: int) -> Doc:
    alert = alerts.get(alert_id)
    if not _may_see(caller, alert):
        raise Forbidden(f"alert {alert_id} is not about one of your cases")
    return alert_json(alert)


@router.get(
    "/{alert_id}/snapshot.jpg",
    summary="The alert's evidence picture (JPEG)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def alert_snapshot(caller: CallerDep, alerts: AlertStoreDep, alert_id: int) -> Response:
    alert = alerts.get(alert_id)
    if not _may_see(caller, alert):
        raise Forbidden(f"alert {alert_id} is not about one of your cases")
    jpeg, taken, camera = alerts.snapshot(alert_id)
    caller.audit("view_alert_snapshot", f"alert:{alert_id}", camera_id=camera)
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={"X-Snapshot-Time": taken.isoformat(), "Cache-Control": "private, max-age=3600"},
    )


def _act(
    caller: Caller,
    store: AlertStore,
    risk: RiskEngine | None,
    alert_id: int,
    body: ActionIn | None,
    action: Literal["acknowledge", "resolve"],
) -> Doc:
    who = caller.who
    if who.role not in HANDLERS:
        raise Forbidden(f"role {who.role} may not acknowledge or resolve alerts")
    user, uid = who.name, who.user_id
    note = body.note if body is not None else None
    now = datetime.now(UTC)
    if risk is not None:
        alert = (
            risk.acknowledge(alert_id, user, note, uid)
            if action == "acknowledge"
            else risk.resolve(alert_id, user, note, uid)
        )
    elif action == "acknowledge":
        alert = store.acknowledge(alert_id, user, now, note, uid)
    else:
        alert = store.resolve(alert_id, user, now, note, uid)
    caller.audit(f"alert_{action}", f"alert:{alert_id}", rule=alert.rule, case_id=alert.case_id, note=note)
    return alert_json(alert)


@router.post(
    "/{alert_id}/acknowledge", summary="Acknowledge an open alert (supervisor, legal, admin; audited)"
)
def acknowledge_alert(
    caller: CallerDep, alerts: AlertStoreDep, risk: MaybeRiskDep, alert_id: int, body: ActionIn | None = None
) -> Doc:
    return _act(caller, alerts, risk, alert_id, body, "acknowledge")


@router.post("/{alert_id}/resolve", summary="Resolve an alert (supervisor, legal, admin; audited)")
def resolve_alert(
    caller: CallerDep, alerts: AlertStoreDep, risk: MaybeRiskDep, alert_id: int, body: ActionIn | None = None
) -> Doc:
    return _act(caller, alerts, risk, alert_id, body, "resolve")


# --- the page ------------------------------------------------------------------------------------

_TITLE = {"zh-CN": "风险告警", "en": "Risk alerts"}


@pages_router.get("/alerts")
def alerts_page(request: Request, caller: CallerDep, settings: SettingsDep) -> HTMLResponse:
    """List with acknowledge/resolve buttons, live through the SSE stream (``/static/alerts.js``)."""
    lang = lang_of(request)
    e = html.escape
    who = caller.who
    tz = settings.centre.timezone
    body = (
        nav(caller, lang, request.query_params.multi_items())
        + f'<main id="alerts" data-lang="{e(lang)}" data-tz="{e(tz)}" data-csrf="{e(caller.csrf)}"'
        + f' data-role="{e(who.role)}" data-handler="{"1" if who.role in HANDLERS else ""}">'
        + f"<h1>{e(_TITLE[lang])}</h1></main>"
        + '<script src="/static/labels.js" defer></script>'  # room and camera names, error names
        + '<script src="/static/alerts.js" defer></script>'
    )
    return page(lang, _TITLE[lang], body)
