"""What the API uses of the recording node it runs in, as a Protocol.

The node's runtime (:class:`pipeline.node.centre.CentreRuntime`) composes the API, so the API may
not import it (the layers in pyproject.toml). It names here exactly what it reads of it instead;
``create_app`` takes a :class:`Runtime`, and mypy checks at each ``create_app(...,
runtime=CentreRuntime(...))`` (``pipeline/cli/run.py``, ``pipeline/node/demo.py``) that the
runtime still has all of it. Members are read-only properties so that a plain attribute of a
narrower type satisfies them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from pipeline.ingest.uploader import UploaderStats
from pipeline.ops.health_alerts import Alert
from pipeline.risk.engine import RiskEngine
from pipeline.storage import Storage
from pipeline.viewing.live_frames import LiveFrames
from recorders.events import CameraStatus


class Workers(Protocol):
    """The recorder workers' supervisor (``/healthz``)."""

    def health(self) -> dict[str, dict[str, object]]: ...


class Uploads(Protocol):
    """The spool uploader (``/healthz``)."""

    def stats(self) -> UploaderStats: ...


class SystemAlerts(Protocol):
    """Storage down, camera lost, ... (:mod:`pipeline.ops.health_alerts`): ``/healthz`` shows the
    open ones, the alert list the recent ones."""

    def open_alerts(self) -> list[Alert]: ...

    def recent(self) -> list[Alert]: ...


class Runtime(Protocol):
    """A recording node, as the API sees it."""

    @property
    def engine(self) -> Engine: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def spool(self) -> Path:
        """Where the recorders write: live video and pictures are read from it."""

    @property
    def live_frames(self) -> LiveFrames:
        """The node's newest-keyframe cache (alerts take their snapshots from it too)."""

    @property
    def registry(self) -> CollectorRegistry: ...

    @property
    def risk(self) -> RiskEngine: ...

    @property
    def supervisor(self) -> Workers: ...

    @property
    def uploader(self) -> Uploads: ...

    @property
    def alerts(self) -> SystemAlerts: ...

    def camera_statuses(self) -> dict[str, CameraStatus]: ...
