"""What a recorder worker reports. The recorder writes files to its spool and tells a sink;
it knows nothing of databases or object storage (the pipeline implements the sink)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from domain.types import GapRecord, SegmentRecord


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A snapshot of one worker's health, for metrics and /api/v1/cameras."""

    camera_id: str
    state: str  # "connecting" | "recording" | "backoff" | "storage_wait" (spool not writable) | "stopped"
    connected: bool
    reconnects: int
    packets: int
    bytes: int
    video_frames: int
    last_packet_wall: float | None  # unix seconds
    last_segment_end_wall: float | None
    run_id: str | None
    last_error: str | None
    # keyframe requests to the camera (ONVIF SetSynchronizationPoint, recorders/sync_point.py)
    keyframe_requests: int = 0
    keyframe_requests_failed: int = 0
    # unix seconds since when the camera's audio has been missing while its video goes on
    audio_lost_since: float | None = None


class RecorderSink(Protocol):
    def segment_closed(self, record: SegmentRecord, media_path: Path, sidecar_path: Path) -> None:
        """A segment file and its sidecar are fsynced in the spool."""
        ...

    def gap_recorded(self, gap: GapRecord, sidecar_path: Path) -> None:
        """A closed gap's sidecar is fsynced in the spool."""
        ...

    def status(self, status: CameraStatus) -> None:
        """Periodic health (about once a second) and on every state change."""
        ...
