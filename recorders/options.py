"""The recorder's options: what ``pipeline.settings.RecorderConfig`` gives a worker, plus
recorder-only knobs, and their JSON form for a recorder process (``--options-json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class RecorderOptions:
    """The recorder's settings. Same names as ``pipeline.settings.RecorderConfig`` (which the
    pipeline converts with :meth:`from_config`), plus recorder-only knobs with safe defaults."""

    segment_seconds: float = 10.0
    max_segment_seconds: float = 60.0  # cut without a keyframe after this long (segmenter.py)
    # No audio packet for this long while video arrives: an ``audio_lost`` gap begins (worker.py)
    audio_gap_seconds: float = 1.0
    stall_seconds: float = 5.0
    spool: Path = Path("data/spool")
    reconnect_initial_seconds: float = 0.1
    reconnect_max_seconds: float = 0.25
    max_forward_jump_seconds: float = 10.0
    max_slew_ppm: float = 500.0
    compute_sm3: bool = False
    rtcp_wait_seconds: float = 2.0  # at run start, wait this long for the first RTCP SR
    open_timeout_seconds: float = 5.0  # connect + DESCRIBE/SETUP/PLAY + probe
    clock_tolerance_seconds: float = 1.5  # RTCP time may precede receipt by at most this
    status_interval_seconds: float = 1.0
    # How much media (in seconds of the camera's own bitrate, within 2-64 KiB) may wait in the
    # muxer's write buffer: what a crash can lose. 0 = a write per packet, which costs ~20 % more CPU
    # (bench/record.py); a quarter second keeps the recovery point far inside the 1 s promise.
    write_buffer_seconds: float = 0.25
    # After a read that waited for the network, wait this long before the next (rtsp_source.py):
    # one wake-up per pause instead of one or two per frame, ~25 % less CPU (bench/record.py);
    # the price is this much more delay before a packet reaches the spool. 0: read as packets come.
    read_pause_seconds: float = 0.2
    # Test/operations hook: the wall clock is the system clock plus the number in this file
    # (recorders.clock.OffsetFileClock), so a clock step can be rehearsed without the host's clock.
    clock_offset_file: Path | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> RecorderOptions:
        """Build from any object with (some of) these attribute names, e.g. RecorderConfig."""
        if isinstance(cfg, RecorderOptions):
            return cfg
        values = {f.name: getattr(cfg, f.name) for f in fields(cls) if hasattr(cfg, f.name)}
        return cls(**values)

    def to_json_text(self) -> str:
        """The options for a recorder process (``--options-json``); the spool travels apart."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "spool"}
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in data.items()})

    @classmethod
    def from_json_text(cls, text: str, spool: Path) -> RecorderOptions:
        """Inverse of :meth:`to_json_text`; ValueError names unknown options."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        unknown = sorted(set(data) - ({f.name for f in fields(cls)} - {"spool"}))
        if unknown:
            raise ValueError(f"unknown options: {', '.join(unknown)}")
        if data.get("clock_offset_file") is not None:
            data["clock_offset_file"] = Path(data["clock_offset_file"])
        return cls(spool=spool, **data)
