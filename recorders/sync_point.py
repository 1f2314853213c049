"""Asking a camera for a keyframe now: ONVIF ``SetSynchronizationPoint``.

Why: a new RTSP session can only be recorded from a keyframe. A camera whose encoder is shared by
all its clients (most are) hands a new session the GOP it is in the middle of, and FFmpeg's RTSP
client throws away whatever the camera sends before its PLAY reply, which can be the keyframe a
camera sends to start a session. Either way footage would resume only at the camera's next
keyframe: up to one GOP (1-4 s on typical settings) after the camera is back, beyond the 1 s
recovery point. ONVIF Profile S cameras (and Profile T) offer ``SetSynchronizationPoint`` on their
media service for exactly this: "the device adds an I-frame as soon as possible". So when the
first video packet of a session is not a keyframe, the worker asks for one, and the gap ends
within a frame or two plus one HTTP round trip instead of a GOP.

The request is a SOAP 1.2 POST with a WS-Security UsernameToken (password digest), the way
ONVIF devices authenticate. It runs on a thread of its own so the worker keeps reading (the
packets it reads meanwhile are the ones before the keyframe, not recordable anyway). A failure is
logged and counted, never fatal: without the keyframe the worker simply waits for the next one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

from domain.credentials import CameraLogin, login_of, redact_url
from domain.errors import StreamError

log = logging.getLogger(__name__)

MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)
NONCE_ENCODING = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
ACTION = f"{MEDIA_NS}/SetSynchronizationPoint"
DEFAULT_TIMEOUT_SECONDS = 2.0
# A reply larger than this is not an ONVIF answer to this request; it is not read further.
MAX_REPLY_BYTES = 65536


class SyncPointError(StreamError):
    """The camera did not grant a synchronization point (unreachable, refused, or a SOAP fault)."""

    code = "sync_point_failed"


@dataclass(frozen=True, slots=True)
class SyncPointSpec:
    """Where a camera takes keyframe requests: its ONVIF media service and the media profile
    (the stream) the recorder reads, e.g. ``Profile_1`` for a main stream."""

    url: str
    profile: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"ONVIF media service {redact_url(self.url)!r} is not an http(s):// URL with a host"
            )
        if not self.profile or any(c in self.profile for c in "<>&\"'"):
            raise ValueError(f"ONVIF profile token {self.profile!r} is empty or not plain text")


def sync_points_json(specs: Mapping[str, SyncPointSpec]) -> str:
    """Camera id -> spec, as ``python -m recorders --sync-points-json`` takes them."""
    return json.dumps({cid: {"url": s.url, "profile": s.profile} for cid, s in specs.items()}, sort_keys=True)


def sync_points_from_json(text: str) -> dict[str, SyncPointSpec]:
    """The inverse of :func:`sync_points_json`; ValueError (naming the camera) if malformed."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object of camera id -> {url, profile}")
    out: dict[str, SyncPointSpec] = {}
    for camera_id, spec in data.items():
        if not isinstance(spec, dict) or set(spec) != {"url", "profile"}:
            raise ValueError(f"camera {camera_id!r}: want exactly url and profile")
        out[str(camera_id)] = SyncPointSpec(str(spec["url"]), str(spec["profile"]))
    return out


def credentials_of(rtsp_url: str, login: CameraLogin | None = None) -> tuple[str, str] | None:
    """The camera's login for ONVIF: ``login`` (configured apart from the URL), else the one in
    its URL (``rtsp://user:pass@host/...``): a camera's ONVIF account is normally the one its RTSP
    stream uses."""
    found = login if login is not None else login_of(rtsp_url)
    return None if found is None else (found.user, found.password)


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security UsernameToken digest: Base64(SHA-1(nonce + created + password))."""
    raw = hashlib.sha1(nonce + created.encode() + password.encode(), usedforsecurity=False).digest()
    return base64.b64encode(raw).decode("ascii")


def envelope(profile: str, credentials: tuple[str, str] | None, nonce: bytes, created: str) -> bytes:
    """The SOAP request (pure: the nonce and creation time are given)."""
    header = ""
    if credentials is not None:
        user, password = credentials
        header = (
            f'<s:Header><wsse:Security s:mustUnderstand="1" xmlns:wsse="{WSSE_NS}" xmlns:wsu="{WSU_NS}">'
            f"<wsse:UsernameToken><wsse:Username>{escape(user)}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_DIGEST}">{password_digest(nonce, created, password)}</wsse:Password>'
            f'<wsse:Nonce EncodingType="{NONCE_ENCODING}">{base64.b64encode(nonce).decode("ascii")}</wsse:Nonce>'
            f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>"
        )
    body = (
        f'<s:Body><SetSynchronizationPoint xmlns="{MEDIA_NS}">'
        f"<ProfileToken>{escape(profile)}</ProfileToken></SetSynchronizationPoint></s:Body>"
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP_NS}">{header}{body}</s:Envelope>'.encode()


def _fault_text(reply: bytes) -> str:
    text = reply.decode("utf-8", "replace")
    for tag in ("Text", "Reason", "Value"):
        start = text.find(f":{tag}")
        if start >= 0:
            body = text[text.find(">", start) + 1 :]
            return body[: body.find("<")].strip()[:200]
    return text[:200]


class SyncPointClient:
    """Sends ``SetSynchronizationPoint`` to one camera; :meth:`request` blocks, :meth:`ask`
    runs it in the background (at most one at a time)."""

    def __init__(
        self,
        spec: SyncPointSpec,
        camera_id: str,
        credentials: tuple[str, str] | None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.spec = spec
        self.camera_id = camera_id
        self._credentials = credentials
        self._timeout = timeout
        self._busy = threading.Lock()
        self.granted = 0
        self.failed = 0

    def request(self) -> None:
        """One synchronization point, or :class:`SyncPointError` saying why not."""
        # Imported here: only a session without a keyframe needs it, and the recorder's start-up
        # (a restart's gap) should not pay for http.client's ~15 ms of imports.
        import http.client

        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        body = envelope(self.spec.profile, self._credentials, os.urandom(16), created)
        parts = urlsplit(self.spec.url)
        conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_type(parts.hostname or "", parts.port, timeout=self._timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            conn.request(
                "POST",
                path,
                body,
                {"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}"'},
            )
            reply = conn.getresponse()
            data = reply.read(MAX_REPLY_BYTES)
            status = reply.status
        except (OSError, http.client.HTTPException) as exc:
            raise SyncPointError(
                f"camera's ONVIF service unreachable: {type(exc).__name__}: {exc}",
                url=redact_url(self.spec.url),
            ) from exc
        finally:
            conn.close()
        if status != 200 or b"SetSynchronizationPointResponse" not in data:
            raise SyncPointError(
                f"camera refused the synchronization point (HTTP {status}: {_fault_text(data)})",
                url=redact_url(self.spec.url),
                status=status,
            )

    def ask(self) -> bool:
        """Request in the background; False if one is already in flight."""
        if not self._busy.acquire(blocking=False):
            return False
        threading.Thread(target=self._run, name=f"sync-{self.camera_id}", daemon=True).start()
        return True

    def _run(self) -> None:
        try:
            self.request()
        except SyncPointError as exc:
            self.failed += 1
            log.warning(
                "keyframe request failed; footage resumes at the camera's next keyframe",
                extra={"camera_id": self.camera_id, "error": exc.message},
            )
        else:
            self.granted += 1
            log.info("keyframe requested", extra={"camera_id": self.camera_id})
        finally:
            self._busy.release()
