"""The FastAPI application: health, metrics and the REST API under /api/v1."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine

from indexer.segment_store import SegmentStore
from pipeline.api import (
    admin,
    alerts,
    auth,
    board,
    cameras,
    cases,
    exports,
    live,
    pages,
    playback,
    rooms,
)
from pipeline.api.body_limit import BodyLimit
from pipeline.api.deps import MaybeRegistryDep, MaybeRuntimeDep
from pipeline.api.errors import install_error_handlers
from pipeline.api.runtime import Runtime
from pipeline.export.service import ExportService
from pipeline.settings import Settings
from pipeline.storage import Storage
from pipeline.storage.anchors import audit_log

API_TITLE = "video-audit"
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def create_app(
    settings: Settings,
    store: SegmentStore,
    runtime: Runtime | None = None,
    registry: CollectorRegistry | None = None,
    engine: Engine | None = None,
    storage: Storage | None = None,
) -> FastAPI:
    """Every route but health, metrics and login needs a user (see :mod:`pipeline.api.auth`).

    ``runtime`` is the CentreRuntime when this process records (what is used of it:
    :class:`pipeline.api.runtime.Runtime`); None for an API-only node.

    With ``engine`` and ``storage`` (taken from the runtime when it is given) the case index,
    body-camera import and export routes are served too.
    """
    app = FastAPI(
        title=API_TITLE,
        version="0.1.0",
        description="Recording, index and evidence export for case-handling centres. Times are UTC ISO 8601.",
    )
    app.state.settings = settings
    app.state.store = store
    app.state.runtime = runtime
    app.state.risk = runtime.risk if runtime is not None else None  # the risk engine of a recording node
    app.state.registry = (
        registry if registry is not None else (runtime.registry if runtime is not None else None)
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.api.max_json_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(cameras.router)
    app.include_router(rooms.router)
    app.include_router(cases.router)
    app.include_router(exports.router)
    app.include_router(playback.router)
    app.include_router(board.router)  # /api/v1/live/board, before the live routes
    app.include_router(live.router)
    live.install(app, runtime)
    engine = engine if engine is not None else (runtime.engine if runtime is not None else None)
    storage = storage if storage is not None else (runtime.storage if runtime is not None else None)
    app.state.engine = engine
    app.state.storage = storage
    if engine is not None:
        auth.install(app, engine, audit_log(settings, engine))
        app.include_router(pages.router)
        app.include_router(admin.router)
        alerts.install(app, engine)
    else:  # no user database: nothing but health and metrics can be authenticated
        app.add_middleware(auth.AuthGate)
    if engine is not None and storage is not None:
        cases.install(app, engine, storage, settings, tmp_dir=settings.api.upload_tmp)
        playback.install(app, storage)
        jobs = exports.install(app, ExportService(settings, engine, storage))
        app.router.on_startup.append(jobs.start)  # again after a shutdown: the app may be served twice
        app.router.on_shutdown.append(jobs.stop)

    @app.get("/healthz", tags=["health"], summary="Liveness and recorder health")
    def healthz(rt: MaybeRuntimeDep) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok"}
        if rt is not None:
            workers = rt.supervisor.health()
            body["workers"] = workers
            body["upload"] = asdict(rt.uploader.stats())
            body["alerts"] = [a.to_json() for a in rt.alerts.open_alerts()]
            if any(not w["running"] for w in workers.values()):
                body["status"] = "degraded"
        return body

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,  # documents text/plain (the exposition format), not JSON
    )
    def metrics(reg: MaybeRegistryDep) -> Response:
        payload = generate_latest(reg) if reg is not None else b""
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    return app
