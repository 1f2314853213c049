"""The one settings object: the centre configuration file (TOML) plus environment overrides.

Built once in ``main()`` by :func:`load_settings` and passed down; nothing else reads the
environment or the file. Every model forbids unknown keys so a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from domain.credentials import CameraLogin, login_of, redact_url, url_secrets
from domain.errors import ConfigError
from domain.types import RoomKind
from exporter.disc_verifier import normal_fingerprint
from recorders.sync_point import SyncPointSpec

_ID = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Strict):
    kind: Literal["local", "s3"] = "local"
    path: Path = Path("data/store")
    endpoint: str | None = None  # s3: http(s)://host:port
    bucket: str | None = None
    region: str = "us-east-1"
    access_key: SecretStr | None = None  # s3: from VAUDIT_STORAGE__ACCESS_KEY
    secret_key: SecretStr | None = None  # s3: from VAUDIT_STORAGE__SECRET_KEY
    # s3: an endpoint that accepts connections but never answers is noticed after the read timeout,
    # so this bounds how long an outage goes unreported (the spool holds the segments meanwhile).
    connect_timeout_seconds: float = Field(default=3.0, gt=0, le=120)
    read_timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _s3_complete(self) -> StorageConfig:
        if self.kind == "s3":
            missing = [n for n in ("endpoint", "bucket") if not getattr(self, n)]
            if missing:
                raise ValueError(f"storage kind 's3' needs {', '.join(missing)}")
            parts = urlsplit(self.endpoint or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"storage endpoint {self.endpoint!r} is not an http(s) URL")
            creds = [n for n in ("access_key", "secret_key") if getattr(self, n) is None]
            if creds:
                names = ", ".join(f"VAUDIT_STORAGE__{n.upper()}" for n in creds)
                raise ValueError(f"storage kind 's3' is missing credentials: set {names} in the environment")
        return self


class DatabaseConfig(_Strict):
    url: str = "sqlite:///data/index.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
            raise ValueError(f"database url scheme {scheme!r} not supported (sqlite or postgresql)")
        return value


class CameraConfig(_Strict):
    id: _ID
    # The RTSP URL. It may carry the login (rtsp://user:password@host/...), but the login is
    # better given apart: user here, the password from the environment (docs/guide/deploy.md).
    url: str
    name: str = ""
    user: str | None = None
    password: SecretStr | None = None  # better VAUDIT_RECORDER__CAMERA_PASSWORDS (JSON by camera id)
    # Only for the simulator: what this camera sends.
    video_codec: Literal["h264", "h265"] = "h264"
    audio_codec: Literal["alaw", "mulaw", "aac", "aac-latm", "none"] = "alaw"
    # The camera's ONVIF media service and the profile the recorder reads: lets the recorder ask
    # for a keyframe when a session starts mid-GOP (docs/design/recorder.md). Credentials: the URL's.
    onvif_url: str | None = None
    onvif_profile: str = "Profile_1"

    @model_validator(mode="after")
    def _onvif(self) -> CameraConfig:
        if self.onvif_url is not None:
            SyncPointSpec(self.onvif_url, self.onvif_profile)  # raises ValueError saying what is wrong
        if login_of(self.url) is not None and (self.user is not None or self.password is not None):
            # two logins for one camera: which one the camera gets would be a guess
            raise ValueError(
                f"camera {self.id!r}: give the login either in the url or as user/password, not both"
            )
        return self

    def sync_point(self) -> SyncPointSpec | None:
        return None if self.onvif_url is None else SyncPointSpec(self.onvif_url, self.onvif_profile)

    @field_validator("url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        # the message shows the URL without its login: configuration errors are printed and logged
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise ValueError(f"camera url {redact_url(value)!r} is not an rtsp:// URL with a host")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"camera url {redact_url(value)!r} has a bad port") from exc
        return value


class RoomConfig(_Strict):
    id: _ID
    name: str
    kind: RoomKind
    cameras: list[CameraConfig] = Field(default_factory=list)


class RecorderConfig(_Strict):
    segment_seconds: float = Field(default=10.0, gt=0.5, le=300)
    # A camera that sends no keyframe for this long (intra refresh without recovery points, a
    # broken encoder) has its segment cut at the next video frame anyway (docs/design/recorder.md).
    max_segment_seconds: float = Field(default=60.0, gt=1.0, le=3600)
    # A camera whose audio stops for this long while its video goes on gets an ``audio_lost`` gap
    # (with bounds) and, while its room is occupied, the recording alert (docs/design/recorder.md).
    audio_gap_seconds: float = Field(default=1.0, ge=0.5, le=60)
    stall_seconds: float = Field(default=5.0, gt=0.5, le=120)
    spool: Path = Path("data/spool")
    reconnect_initial_seconds: float = Field(default=0.1, gt=0, le=10)
    reconnect_max_seconds: float = Field(default=0.25, gt=0, le=60)
    max_forward_jump_seconds: float = Field(default=10.0, gt=0)
    max_slew_ppm: float = Field(default=500.0, ge=0, le=5000)
    compute_sm3: bool = False  # SM3 at capture costs ~10x SHA-256; discs compute it at export
    # Media a crash may lose (seconds of the camera's bitrate in the muxer's buffer); 0: a write per packet.
    write_buffer_seconds: float = Field(default=0.25, ge=0.0, le=1.0)
    # After a read that waited for the network, pause this long so the next reads find several
    # frames waiting (one wake-up per pause, not per frame: ~25 % less recorder CPU); it adds at
    # most this much delay before a packet reaches the spool (and live view). 0: no pause.
    read_pause_seconds: float = Field(default=0.2, ge=0.0, le=0.5)
    # Test/operations hook (docs/design/recorder.md "Faults"): the recorder's wall clock is the system
    # clock plus the seconds written in this file, to rehearse a clock step without the host's clock.
    clock_offset_file: Path | None = None
    # 0: every camera a thread of `vaudit run`. N: the cameras spread over N recorder processes
    # (pipeline/recording/processes.py), so recording never competes with upload, playback and exports
    # for one interpreter lock; for large centres (docs/bench/load.md). Fleet nodes record in threads.
    processes: int = Field(default=0, ge=0, le=64)
    # Camera logins kept out of the configuration file (docs/guide/deploy.md "Camera passwords"): the
    # login of every camera that has none of its own (VAUDIT_RECORDER__CAMERA_USER/_PASSWORD), and
    # passwords by camera id (VAUDIT_RECORDER__CAMERA_PASSWORDS='{"int-1-a": "..."}').
    camera_user: str | None = None
    camera_password: SecretStr | None = None
    camera_passwords: dict[str, SecretStr] = Field(default_factory=dict)


class UploadConfig(_Strict):
    retry_initial_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(default=10.0, gt=0)
    workers: int = Field(default=2, ge=1, le=32)
    # Alerts before the spool can fill (pipeline/ingest/spool_watch.py); 0 turns one off.
    lag_alert_seconds: float = Field(default=300.0, ge=0)  # oldest segment waiting this long
    spool_low_fraction: float = Field(default=0.10, ge=0, lt=1)  # spool file system this empty
    spool_check_seconds: float = Field(default=10.0, gt=0)


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_upload_bytes: int = Field(default=8 * 1024**3, gt=0)
    max_json_bytes: int = Field(default=4 * 1024**2, gt=0)
    max_future_seconds: float = Field(default=300.0, ge=0)
    upload_tmp: Path = Path("data/uploads")  # body-camera uploads wait here while hashed and probed
    # Events and location readings written more than this long after their time (or inside a range
    # already exported to disc) are late entries: supervisor, legal or admin only, marked as such.
    late_entry_hours: float = Field(default=24.0, gt=0)
    # Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are
    # believed; from anyone else these headers are ignored (the audit's client address is the peer's).
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted proxy {item!r} is not an IP address or network") from exc
        return value


class AuthConfig(_Strict):
    """Logins (docs/design/web.md "Users, roles, authentication"): the password rule and throttling
    of failed attempts."""

    min_password_length: int = Field(default=12, ge=8, le=128)
    # Per account name and per client address: this many failures pass without delay, then each
    # further one waits base * 2^(n - free - 1) seconds (at most max_delay_seconds) before the next
    # attempt is looked at; a key quiet for reset_seconds starts again from zero.
    free_attempts: int = Field(default=5, ge=0, le=100)
    base_delay_seconds: float = Field(default=1.0, gt=0, le=3600)
    max_delay_seconds: float = Field(default=900.0, gt=0, le=86400)
    reset_seconds: float = Field(default=3600.0, gt=0)
    alert_after_failures: int = Field(default=10, ge=1)  # a login_failures alert per account/address


class ExportConfig(_Strict):
    out_dir: Path = Path("data/exports")
    signing_key: Path = Path("data/keys/export-ed25519.pem")  # created on first export if missing
    # The centre's signing key fingerprint (SHA-256, as printed on its statements): `vaudit verify
    # --config` fails a disc signed by any other key. Default: the fingerprint of signing_key;
    # set it where discs are checked without the centre's key file.
    key_fingerprint: str | None = None
    media: Literal["dvd5", "dvd9", "bd25", "bd50"] | int = "dvd5"
    exported_by: str = ""
    chromium: str | None = None  # for the statement PDF; default /usr/bin/chromium
    originals_on_working: bool = False
    # Beside the originals, a Matroska remux of each G.711 camera's footage per stage that VLC and
    # ffplay play with its sound (byte for byte, docs/design/export.md); adds about the originals' size
    # to every copy that carries originals. Needs Debian's ffmpeg.
    g711_remux: bool = True

    @field_validator("key_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normal = normal_fingerprint(value)
        if normal is None:
            raise ValueError(
                f"export key_fingerprint {value!r} is not the 64 hex digits of a SHA-256 fingerprint"
            )
        return normal


class AuditConfig(_Strict):
    """The audit trail's key and anchors (docs/design/web.md "Audit trail")."""

    # The HMAC key of the chain: outside the database, 0600, created on first run. Keep a copy
    # with the signing key: without it the trail cannot be verified.
    key_file: Path = Path("data/keys/audit-hmac.key")
    # How often `vaudit run` signs the chain's head into the evidence storage (when it moved):
    # rows written since the last anchor can be cut off unnoticed, so keep this short.
    anchor_interval_seconds: float = Field(default=60.0, ge=1.0, le=86400.0)


class FleetConfig(_Strict):
    """``vaudit recorder`` nodes sharing one PostgreSQL index (docs/design/fleet.md)."""

    node_id: _ID | None = None  # default: the host name
    lease_seconds: float = Field(default=6.0, gt=1, le=120)  # a dead node's cameras move after this
    renew_seconds: float = Field(default=1.5, gt=0.1, le=60)  # heartbeat + lease renewal period
    handover_drain_seconds: float = Field(default=8.0, ge=0, le=120)  # upload wait before a release
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, ge=0, le=65535)  # 0: no health endpoint

    @model_validator(mode="after")
    def _renew_within_lease(self) -> FleetConfig:
        if self.renew_seconds * 2 > self.lease_seconds:
            raise ValueError("fleet renew_seconds must be at most half of lease_seconds")
        return self


class RetentionConfig(_Strict):
    """WORM evidence: object lock on every stored object, retention by room kind, capacity alerts."""

    object_lock: bool = False  # S3: bucket created with object lock, objects put with retention
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = "COMPLIANCE"
    default_days: int = Field(default=180, ge=1)
    interrogation_days: int = Field(default=3650, ge=1)  # 讯问 footage: kept as long as the case file
    days_by_kind: dict[RoomKind, int] = Field(default_factory=dict)  # overrides per room kind
    bodycam_days: int = Field(default=180, ge=180)  # body-camera footage: at least six months
    alert_used_fraction: float = Field(default=0.85, gt=0, le=1)  # disk/bucket fill alert threshold
    bucket_capacity_bytes: int | None = Field(default=None, gt=0)  # S3: the quota alerts compare to
    capacity_check_seconds: float = Field(default=300.0, gt=0)  # how often running services check
    job_user: str = "retention"  # audit_log user of the retention job

    def days_for(self, kind: RoomKind | str | None) -> int:
        """Retention in days of footage from a room of ``kind`` (None: an unknown camera)."""
        if kind is None:
            return max(self.default_days, self.interrogation_days)  # unknown: the longest
        room_kind = RoomKind(kind)
        if room_kind in self.days_by_kind:
            return self.days_by_kind[room_kind]
        if room_kind in (RoomKind.INTERROGATION, RoomKind.INQUIRY):
            return self.interrogation_days
        return self.default_days


_Role = Literal["suspect", "witness", "victim"]


def _suspects() -> list[_Role]:
    return ["suspect"]


class RiskRuleConfig(_Strict):
    """One risk rule: on or off, and the rooms it watches (empty: every room)."""

    enabled: bool = True
    rooms: list[_ID] = Field(default_factory=list)


class UnattendedRule(RiskRuleConfig):
    seconds: float = Field(default=120.0, gt=0)  # fires when no officer for MORE than this
    roles: list[_Role] = Field(default_factory=_suspects)


class CoSuspectsRule(RiskRuleConfig):
    seconds: float = Field(default=0.0, ge=0)  # fires once together this long (0: at once)


class TimeLimitRule(RiskRuleConfig):
    hours: float = Field(default=12.0, gt=0)  # summons/interrogation limit
    serious_hours: float = Field(default=24.0, gt=0)  # cases marked serious
    warn_before_minutes: float = Field(default=60.0, ge=0)  # "approaching" from limit minus this
    roles: list[_Role] = Field(default_factory=_suspects)


class OfficersRule(RiskRuleConfig):
    min_officers: int = Field(default=2, ge=1)
    seconds: float = Field(default=30.0, ge=0)  # grace: fires once short this long


class MinorGuardianRule(RiskRuleConfig):
    seconds: float = Field(default=0.0, ge=0)  # grace: fires once without guardian this long


class RecordingRule(RiskRuleConfig):
    min_gap_seconds: float = Field(default=0.0, ge=0)  # gaps this short or shorter are ignored


class PictureRule(RiskRuleConfig):
    """Black, frozen or covered picture while the camera's room is occupied."""


class CameraViewRule(RiskRuleConfig):
    """Camera moved or defocused (lower severity, occupied or not)."""


class HeadcountRule(RiskRuleConfig):
    enabled: bool = False  # people detection is unreliable on real cameras: opt in
    samples: int = Field(default=3, ge=1)  # consecutive samples below the expected occupancy


class StayRule(RiskRuleConfig):
    hours: float = Field(default=24.0, gt=0)  # any subject in the centre MORE than this
    silent_minutes: float = Field(default=60.0, ge=0)  # no reading this long, no exit: missing (0: off)


class RiskConfig(_Strict):
    """The risk rule engine (docs/design/alerts.md): one sub-table per rule."""

    enabled: bool = True
    tick_seconds: float = Field(default=1.0, gt=0, le=60)  # time-driven rules are checked this often
    replay_hours: float = Field(default=48.0, gt=0)  # readings replayed into the engine at start
    webhook_url: str | None = None  # POST JSON of every raised/changed alert
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_initial_seconds: float = Field(default=1.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=60.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    unattended: UnattendedRule = Field(default_factory=UnattendedRule)
    co_suspects: CoSuspectsRule = Field(default_factory=CoSuspectsRule)
    time_limit: TimeLimitRule = Field(default_factory=TimeLimitRule)
    officers: OfficersRule = Field(default_factory=OfficersRule)
    minor_guardian: MinorGuardianRule = Field(default_factory=MinorGuardianRule)
    recording: RecordingRule = Field(default_factory=RecordingRule)
    picture: PictureRule = Field(default_factory=PictureRule)
    camera_view: CameraViewRule = Field(default_factory=CameraViewRule)
    headcount: HeadcountRule = Field(default_factory=HeadcountRule)
    stay: StayRule = Field(default_factory=StayRule)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"risk webhook_url {value!r} is not an http(s) URL")
        return value


class PictureChecksConfig(_Strict):
    """Picture checks on sampled keyframes (docs/design/pictures.md, pipeline/pictures/checks.py)."""

    enabled: bool = True
    interval_seconds: float = Field(default=2.0, gt=0.1, le=60)  # one keyframe per camera this often
    snapshot_quality: int = Field(default=80, ge=10, le=100)  # JPEG quality of the evidence snapshot
    osd_fraction: float = Field(default=0.08, ge=0, lt=0.5)  # brightest/darkest share ignored (OSD)
    black_luma: float = Field(default=32.0, ge=0, le=255)
    covered_spread: float = Field(default=18.0, ge=0, le=255)
    frozen_seconds: float = Field(default=2.0, gt=0)  # first to last identical sample
    frozen_pixel_delta: int = Field(default=16, ge=1, le=255)  # on 4×4-pixel block means
    frozen_max_changed_pixels: int = Field(default=2, ge=0)  # blocks changed more than the delta
    frozen_max_delta_bytes_per_mpx: float = Field(default=600.0, gt=0)  # median non-key frame size
    warmup_samples: int = Field(default=5, ge=1)  # normal samples that make the baseline
    confirm_samples: int = Field(default=3, ge=1)  # consecutive samples before moved/defocused
    defocus_ratio: float = Field(default=0.35, gt=0, lt=1)
    min_baseline_sharpness: float = Field(default=1.0, ge=0)
    moved_distance: float = Field(default=0.3, gt=0, le=1)  # band histograms vs the baseline
    moved_correlation: float = Field(default=0.5, gt=-1, le=1)  # thumbnail layout vs the baseline
    hog_every_seconds: float = Field(default=10.0, ge=0)  # people detector period (0: off)
    hog_width: int = Field(default=640, ge=128)
    hog_min_weight: float = Field(default=0.5)


class CentreConfig(_Strict):
    id: _ID = "centre"
    name: str = "执法办案管理中心"
    timezone: str = "Asia/Shanghai"


class Settings(BaseSettings):
    """Everything the running system is told. Environment: ``VAUDIT_<SECTION>__<KEY>``."""

    model_config = SettingsConfigDict(
        env_prefix="VAUDIT_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    centre: CentreConfig = Field(default_factory=CentreConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    upload: UploadConfig = Field(default_factory=UploadConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    picture_checks: PictureChecksConfig = Field(default_factory=PictureChecksConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    rooms: list[RoomConfig] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment wins over the file.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        seen_rooms: set[str] = set()
        seen_cams: set[str] = set()
        for room in self.rooms:
            if room.id in seen_rooms:
                raise ValueError(f"duplicate room id {room.id!r}")
            seen_rooms.add(room.id)
            for cam in room.cameras:
                if cam.id in seen_cams:
                    raise ValueError(f"duplicate camera id {cam.id!r} (room {room.id!r})")
                seen_cams.add(cam.id)
        unknown = sorted(set(self.recorder.camera_passwords) - seen_cams)
        if unknown:
            raise ValueError(
                f"recorder camera_passwords names cameras that are not configured: {', '.join(unknown)}"
            )
        for _room, cam in self.cameras():
            if self.camera_login(cam) is None and (cam.id in self.recorder.camera_passwords or cam.password):
                raise ValueError(
                    f"camera {cam.id!r} has a password but no user (user, or recorder camera_user)"
                )
        return self

    def cameras(self) -> list[tuple[RoomConfig, CameraConfig]]:
        return [(room, cam) for room in self.rooms for cam in room.cameras]

    def camera_login(self, cam: CameraConfig) -> CameraLogin | None:
        """The login the recorder gives camera ``cam`` (RTSP and ONVIF): the camera's own (user and
        password, or the URL's) before the recorder's defaults; the environment's password by
        camera id before all others. None: the camera is dialled without one."""
        in_url = login_of(cam.url)
        user = cam.user or (in_url.user if in_url else None) or self.recorder.camera_user
        secret = self.recorder.camera_passwords.get(cam.id) or cam.password
        password = (
            secret.get_secret_value()
            if secret is not None
            else in_url.password
            if in_url is not None and in_url.password
            else self.recorder.camera_password.get_secret_value()
            if self.recorder.camera_password
            else ""
        )
        if user is None:
            return None
        return CameraLogin(user, password)

    def secrets(self) -> set[str]:
        """Every secret these settings hold (camera logins, S3 and database passwords): what the
        log redactor must mask (:func:`pipeline.ops.logs.protect_secrets`, called by the CLI and the
        centre runtime once the settings are read)."""
        found = url_secrets(self.database.url)
        for key in (self.storage.access_key, self.storage.secret_key, self.recorder.camera_password):
            if key is not None:
                found.add(key.get_secret_value())
        for _room, cam in self.cameras():
            found |= url_secrets(cam.url, self.camera_login(cam))
            if cam.onvif_url is not None:
                found |= url_secrets(cam.onvif_url)
        found.discard("")
        return found

    def room_rows(self) -> list[tuple[str, str, str, list[tuple[str, str, str]]]]:
        """Rooms and their cameras in the shape the index's ``sync_rooms`` takes."""
        return [
            (room.id, room.name, room.kind.value, [(c.id, c.name or c.id, c.url) for c in room.cameras])
            for room in self.rooms
        ]

    def camera(self, camera_id: str) -> tuple[RoomConfig, CameraConfig] | None:
        for room, cam in self.cameras():
            if cam.id == camera_id:
                return room, cam
        return None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Read the centre configuration file (or defaults) and the environment.

    Raises :class:`ConfigError` naming every problem (file, key path, reason).
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file {path} does not exist", path=str(path)) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}", path=str(path)) from exc
    data.update(overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        where = str(path) if path else "settings"
        raise ConfigError(f"invalid configuration in {where}:\n{_describe(exc)}", path=where) from exc
    return settings
