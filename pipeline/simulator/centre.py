"""Simulate a whole centre: one live camera per camera in the configuration.

Used by ``vaudit simulate --config FILE`` and ``make demo``: the configuration the recorder
reads is the one the simulator serves, so each camera's port and path come from its URL and
its codecs from ``CameraConfig.video_codec`` / ``audio_codec``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from domain.credentials import CameraLogin, redact_url
from domain.errors import ConfigError
from pipeline.settings import CameraConfig, RoomConfig, Settings
from pipeline.simulator.camera import ONVIF_PATH, SYSTEM_PYTHON, SimulatedCamera

logger = logging.getLogger(__name__)

DEFAULT_RTSP_PORT = 554


def _is_loopback(host: str) -> bool:
    # The servers bind 127.0.0.1 only, so ::1 or 127.0.0.2 would be unreachable too.
    return host in ("127.0.0.1", "localhost")


def camera_for(
    room: RoomConfig,
    cam: CameraConfig,
    events_dir: Path | None = None,
    width: int = 1280,
    height: int = 720,
    python: str = SYSTEM_PYTHON,
    login: CameraLogin | None = None,
) -> SimulatedCamera:
    """The (not yet started) simulated camera for one configured camera; with ``login`` (what
    :meth:`Settings.camera_login` gives the recorder) it demands that login, as a camera does."""
    parts = urlsplit(cam.url)
    host = parts.hostname or ""
    if not _is_loopback(host):
        raise ConfigError(
            f"camera {cam.id!r} has host {host!r}: the simulator only serves on 127.0.0.1; "
            "use rtsp://127.0.0.1:PORT/PATH for simulated cameras",
            camera=cam.id,
            url=redact_url(cam.url),
        )
    port = parts.port or DEFAULT_RTSP_PORT
    if port < 1024:
        raise ConfigError(
            f"camera {cam.id!r} uses port {port}; the simulator needs an unprivileged port (>= 1024)",
            camera=cam.id,
            url=redact_url(cam.url),
        )
    onvif_port = None
    if cam.onvif_url is not None:
        onvif = urlsplit(cam.onvif_url)
        if (
            not _is_loopback(onvif.hostname or "")
            or (onvif.port or 80) < 1024
            or onvif.scheme != "http"
            or onvif.path != ONVIF_PATH
        ):
            raise ConfigError(
                f"camera {cam.id!r}: the simulator serves ONVIF only at http://127.0.0.1:PORT{ONVIF_PATH} "
                "with an unprivileged port",
                camera=cam.id,
                onvif_url=cam.onvif_url,
            )
        onvif_port = onvif.port
    return SimulatedCamera(
        cam.id,
        port,
        path=parts.path or f"/{cam.id}",
        video_codec=cam.video_codec,
        audio_codec=cam.audio_codec,
        width=width,
        height=height,
        events_log=events_dir / f"{cam.id}.events.jsonl" if events_dir is not None else None,
        python=python,
        label=f"{room.name} {cam.id}",
        onvif_port=onvif_port,
        onvif_profile=cam.onvif_profile,
        onvif_credentials=None if login is None else (login.user, login.password),
        rtsp_credentials=None if login is None else (login.user, login.password),
    )


def start_centre(
    settings: Settings,
    events_dir: Path | None = None,
    width: int = 1280,
    height: int = 720,
    timeout: float = 15.0,
) -> list[SimulatedCamera]:
    """Start one camera per configured camera; all or nothing (a failure stops those started).

    Cameras that share a port are refused: one simulator process serves one port.
    """
    cameras = [
        camera_for(room, cam, events_dir, width, height, login=settings.camera_login(cam))
        for room, cam in settings.cameras()
    ]
    seen: dict[int, str] = {}
    for camera in cameras:
        if camera.port in seen:
            raise ConfigError(
                f"cameras {seen[camera.port]!r} and {camera.camera_id!r} share port {camera.port}; "
                "give each simulated camera its own port",
                port=camera.port,
            )
        seen[camera.port] = camera.camera_id
    started: list[SimulatedCamera] = []
    try:
        for camera in cameras:
            camera.start(timeout)
            started.append(camera)
    except BaseException:
        stop_centre(started)
        raise
    logger.info("simulated centre %s: %d cameras", settings.centre.id, len(started))
    return started


def stop_centre(cams: list[SimulatedCamera]) -> None:
    """Stop every camera, even when some fail to stop cleanly."""
    errors: list[str] = []
    for camera in cams:
        try:
            camera.stop()
        except Exception as exc:  # keep stopping the others; report at the end
            logger.exception("stopping %s failed", camera.name)
            errors.append(f"{camera.name}: {exc}")
    if errors:
        logger.error("some simulated cameras did not stop cleanly: %s", "; ".join(errors))
