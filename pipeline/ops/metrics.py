"""Prometheus metrics of the running centre, computed at scrape time from live state.

A custom collector reads the latest camera statuses, gap counters and spool sizes, so the
hot path (packets) never touches a metric object.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from domain.types import Clock
from recorders.events import CameraStatus


@dataclass
class CameraRates:
    status: CameraStatus
    bitrate_bps: float = 0.0
    fps: float = 0.0
    at: float = 0.0


class CameraBook:
    """Latest status per camera with rates derived from consecutive reports."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cams: dict[str, CameraRates] = {}
        self._gaps: dict[tuple[str, str], int] = {}
        self.last_segment_wall: dict[str, float] = {}

    def update(self, status: CameraStatus) -> None:
        now = self._clock.monotonic()
        with self._lock:
            prev = self._cams.get(status.camera_id)
            entry = CameraRates(status=status, at=now)
            if prev is not None and now - prev.at > 0.2:
                dt = now - prev.at
                entry.bitrate_bps = max(0.0, (status.bytes - prev.status.bytes) * 8 / dt)
                entry.fps = max(0.0, (status.video_frames - prev.status.video_frames) / dt)
            elif prev is not None:
                entry.at, entry.bitrate_bps, entry.fps = prev.at, prev.bitrate_bps, prev.fps
            self._cams[status.camera_id] = entry

    def gap(self, camera_id: str, cause: str) -> None:
        with self._lock:
            self._gaps[(camera_id, cause)] = self._gaps.get((camera_id, cause), 0) + 1

    def segment(self, camera_id: str, end_wall: float) -> None:
        with self._lock:
            self.last_segment_wall[camera_id] = end_wall

    def snapshot(self) -> dict[str, CameraRates]:
        with self._lock:
            return dict(self._cams)

    def gap_counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._gaps)


def dir_bytes(path: Path) -> int:
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return total


class CentreCollector(Collector):
    def __init__(
        self,
        book: CameraBook,
        camera_ids: Callable[[], list[str]],
        spool: Path,
        clock: Clock,
        uploader_stats: Callable[[], dict[str, float]],
        gauges: dict[str, tuple[str, Callable[[], float]]] | None = None,
    ) -> None:
        """``gauges``: more values read at scrape time, name -> (help, read), from stages this
        module must not import (the playback cache's size, for one)."""
        self._book = book
        self._camera_ids = camera_ids
        self._spool = spool
        self._clock = clock
        self._uploader_stats = uploader_stats
        self._gauges = dict(gauges or {})

    def collect(self) -> Iterator[Metric]:
        cams = self._book.snapshot()
        now = self._clock.wall()
        bitrate = GaugeMetricFamily(
            "vaudit_camera_bitrate_bps", "Received bits per second", labels=["camera"]
        )
        fps = GaugeMetricFamily("vaudit_camera_fps", "Received video frames per second", labels=["camera"])
        age = GaugeMetricFamily(
            "vaudit_camera_last_segment_age_seconds",
            "Seconds since the last closed segment ended",
            labels=["camera"],
        )
        up = GaugeMetricFamily(
            "vaudit_camera_connected", "1 while the camera stream is open", labels=["camera"]
        )
        reconnects = CounterMetricFamily(
            "vaudit_camera_reconnects", "Reconnections to the camera", labels=["camera"]
        )
        packets = CounterMetricFamily("vaudit_camera_packets", "Packets recorded", labels=["camera"])
        keyframes = CounterMetricFamily(
            "vaudit_camera_keyframe_requests",
            "Keyframes asked of the camera (a session started without one), by result",
            labels=["camera", "result"],
        )
        spool = GaugeMetricFamily(
            "vaudit_camera_spool_bytes", "Bytes waiting in the local spool", labels=["camera"]
        )
        for cam in self._camera_ids():
            rates = cams.get(cam)
            bitrate.add_metric([cam], rates.bitrate_bps if rates else 0.0)
            fps.add_metric([cam], rates.fps if rates else 0.0)
            up.add_metric([cam], 1.0 if rates and rates.status.connected else 0.0)
            reconnects.add_metric([cam], float(rates.status.reconnects) if rates else 0.0)
            packets.add_metric([cam], float(rates.status.packets) if rates else 0.0)
            asked = rates.status.keyframe_requests if rates else 0
            failed = rates.status.keyframe_requests_failed if rates else 0
            keyframes.add_metric([cam, "granted"], float(asked - failed))
            keyframes.add_metric([cam, "failed"], float(failed))
            last = self._book.last_segment_wall.get(cam)
            if last is None and rates is not None:
                last = rates.status.last_segment_end_wall
            age.add_metric([cam], now - last if last else float("nan"))
            spool.add_metric([cam], float(dir_bytes(self._spool / cam)))
        gaps = CounterMetricFamily(
            "vaudit_camera_gaps", "Gaps recorded, by cause", labels=["camera", "cause"]
        )
        for (cam, cause), count in sorted(self._book.gap_counts().items()):
            gaps.add_metric([cam, cause], float(count))
        yield from (bitrate, fps, age, up, reconnects, packets, keyframes, spool, gaps)
        for name, (text, read) in sorted(self._gauges.items()):
            yield GaugeMetricFamily(name, text, value=float(read()))
        stats = self._uploader_stats()
        for name, value in sorted(stats.items()):
            yield GaugeMetricFamily(
                f"vaudit_upload_{name}", f"Uploader: {name.replace('_', ' ')}", value=value
            )


def build_registry(collector: CentreCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
