"""What the app holds, as typed FastAPI dependencies.

``create_app`` and the ``install()`` functions keep each piece on ``app.state`` (tests set some
there directly, e.g. ``app.state.live_video``). Routes never read ``app.state``: they declare
what they need with the aliases below (``settings: SettingsDep``) and get it typed. ``XDep`` is
there or the route answers with the error tree's error for its absence (the node was started
without what it needs: not an AttributeError and a 500); ``MaybeXDep`` is ``X | None`` for the
routes that do without it (an API-only node has no runtime, no risk engine, no live video).

The accessors are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a
thread hop per piece per request for what is an attribute read.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from starlette.requests import HTTPConnection

from domain.errors import IndexStoreError, NotFoundError, Unauthenticated, VauditError
from domain.types import BlobReader
from indexer.alert_store import AlertStore
from indexer.audit import AuditLog
from indexer.case_store import CaseStore
from indexer.footage import FootageIndex
from indexer.login_throttle import LoginThrottle
from indexer.search import CaseSearch
from indexer.segment_store import SegmentStore
from indexer.users import UserStore
from pipeline.api.runtime import Runtime
from pipeline.export.service import ExportJobs
from pipeline.intake.bodycam import BodycamImporter
from pipeline.risk.engine import RiskEngine
from pipeline.settings import ApiConfig, Settings
from pipeline.storage import Storage
from pipeline.viewing.live_frames import LiveFrames
from pipeline.viewing.live_video import LiveVideo

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")


# --- what the install() functions put on app.state ------------------------------------------


@dataclass(frozen=True, slots=True)
class Security:
    """Users, the audit trail and the login throttle (``app.state.security``, by auth.install)."""

    users: UserStore
    audit: AuditLog
    throttle: LoginThrottle
    alerts: AlertStore
    trusted_proxies: tuple[Network, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseApi:
    """What the case routes need (``app.state.case_api``, by cases.install)."""

    store: CaseStore
    footage: FootageIndex
    search: CaseSearch
    config: ApiConfig


class LiveWatchers:
    """Who watched which camera when (``app.state.live_watchers``, by live.install), so that a
    viewer polling pictures leaves one audit row per ``every`` seconds, not one per picture."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_in_a_while(self, user: str, camera_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._seen.get((user, camera_id))
            if last is not None and now - last < self._every:
                return False
            self._seen[(user, camera_id)] = now
            return True


# --- accessors ------------------------------------------------------------------------------


def _held(conn: HTTPConnection, name: str) -> Any:
    """The piece ``name`` of the app's state; None where this node was built without it."""
    return getattr(conn.app.state, name, None)


def _needed(piece: T | None, error: type[VauditError], message: str) -> T:
    """``piece``, or ``error(message)`` where this node was built without it."""
    if piece is None:
        raise error(message)
    return piece


async def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings  # always: create_app sets it first
    return settings


async def get_store(conn: HTTPConnection) -> SegmentStore:
    store: SegmentStore = conn.app.state.store  # always: create_app sets it first
    return store


async def get_runtime(conn: HTTPConnection) -> Runtime | None:
    runtime: Runtime | None = _held(conn, "runtime")
    return runtime


async def get_registry(conn: HTTPConnection) -> CollectorRegistry | None:
    registry: CollectorRegistry | None = _held(conn, "registry")
    return registry


async def get_risk(conn: HTTPConnection) -> RiskEngine | None:
    risk: RiskEngine | None = _held(conn, "risk")
    return risk


async def require_risk(conn: HTTPConnection) -> RiskEngine:
    return _needed(await get_risk(conn), NotFoundError, "this node runs no risk engine: no live alerts here")


async def get_engine(conn: HTTPConnection) -> Engine:
    engine: Engine | None = _held(conn, "engine")
    return _needed(engine, IndexStoreError, "this node has no database")


async def get_storage(conn: HTTPConnection) -> Storage | None:
    storage: Storage | None = _held(conn, "storage")
    return storage


async def get_security(conn: HTTPConnection) -> Security:
    sec: Security | None = _held(conn, "security")
    return _needed(sec, Unauthenticated, "authentication is not configured on this node")


async def get_alert_store(conn: HTTPConnection) -> AlertStore | None:
    store: AlertStore | None = _held(conn, "alert_store")
    return store


async def require_alert_store(conn: HTTPConnection) -> AlertStore:
    return _needed(
        await get_alert_store(conn),
        IndexStoreError,
        "alerts are not configured on this node (alerts.install not called)",
    )


async def get_case_api(conn: HTTPConnection) -> CaseApi | None:
    api: CaseApi | None = _held(conn, "case_api")
    return api


async def require_case_api(conn: HTTPConnection) -> CaseApi:
    return _needed(
        await get_case_api(conn),
        IndexStoreError,
        "the case index is not configured on this node (cases.install not called)",
    )


async def get_bodycam(conn: HTTPConnection) -> BodycamImporter:
    importer: BodycamImporter | None = _held(conn, "bodycam")
    return _needed(
        importer,
        IndexStoreError,
        "body-camera import is not configured on this node (cases.install not called)",
    )


async def get_exports(conn: HTTPConnection) -> ExportJobs:
    jobs: ExportJobs | None = _held(conn, "exports")
    return _needed(jobs, IndexStoreError, "exports are not configured on this node")


async def get_live_frames(conn: HTTPConnection) -> LiveFrames:
    frames: LiveFrames | None = _held(conn, "live_frames")
    # an API-only node has no spool to take pictures from: nothing here is that picture (not a
    # server fault, so not a 5xx)
    return _needed(
        frames,
        NotFoundError,
        "no live picture on this node: live view is served by the recording node (vaudit run)",
    )


async def get_live_video(conn: HTTPConnection) -> LiveVideo | None:
    hub: LiveVideo | None = _held(conn, "live_video")
    return hub


async def get_live_watchers(conn: HTTPConnection) -> LiveWatchers:
    watchers: LiveWatchers = conn.app.state.live_watchers  # always: create_app calls live.install
    return watchers


async def get_playback_reader(conn: HTTPConnection) -> BlobReader:
    reader: BlobReader | None = _held(conn, "playback_reader")
    return _needed(reader, IndexStoreError, "playback is not configured on this node (no storage)")


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[SegmentStore, Depends(get_store)]
MaybeRuntimeDep = Annotated[Runtime | None, Depends(get_runtime)]
MaybeRegistryDep = Annotated[CollectorRegistry | None, Depends(get_registry)]
RiskDep = Annotated[RiskEngine, Depends(require_risk)]
MaybeRiskDep = Annotated[RiskEngine | None, Depends(get_risk)]
EngineDep = Annotated[Engine, Depends(get_engine)]
MaybeStorageDep = Annotated[Storage | None, Depends(get_storage)]
SecurityDep = Annotated[Security, Depends(get_security)]
AlertStoreDep = Annotated[AlertStore, Depends(require_alert_store)]
MaybeAlertStoreDep = Annotated[AlertStore | None, Depends(get_alert_store)]
CaseApiDep = Annotated[CaseApi, Depends(require_case_api)]
MaybeCaseApiDep = Annotated[CaseApi | None, Depends(get_case_api)]
BodycamDep = Annotated[BodycamImporter, Depends(get_bodycam)]
ExportJobsDep = Annotated[ExportJobs, Depends(get_exports)]
LiveFramesDep = Annotated[LiveFrames, Depends(get_live_frames)]
MaybeLiveVideoDep = Annotated[LiveVideo | None, Depends(get_live_video)]
LiveWatchersDep = Annotated[LiveWatchers, Depends(get_live_watchers)]
PlaybackReaderDep = Annotated[BlobReader, Depends(get_playback_reader)]
