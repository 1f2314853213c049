"""Read pacing in RtspSource.packets(): a pause follows a read that waited for the network, never a
read that found its packet waiting, and the consumer's own time does not count as waiting.

The container is a stand-in whose demux() waits (on an Event, not time.sleep) before the packets
marked as late, as a socket read waits for the camera's next burst."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from recorders import rtsp_source
from recorders.rtsp_source import RtspSource
from recorders.stall_watchdog import StallWatchdog


class _Packet:
    size = 100
    stream_index = 1  # not the video stream: handed on at once (a keyframe waits for its successor)


class _Container:
    def __init__(self, waits: list[float]) -> None:
        self.waits = waits

    def demux(self, _streams: list[Any]) -> Iterator[_Packet]:
        idle = threading.Event()
        for wait in self.waits:
            if wait:
                idle.wait(wait)
            yield _Packet()


def _source(waits: list[float], pause: float) -> RtspSource:
    source = RtspSource("rtsp://127.0.0.1:9/x", open_timeout=1.0, stall_seconds=3.0, read_pause_seconds=pause)
    source._container = _Container(waits)
    return source


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []
    monkeypatch.setattr(rtsp_source.time, "sleep", taken.append)
    return taken


def _drain(source: RtspSource, work: float = 0.0) -> int:
    count = 0
    busy = threading.Event()
    with pytest.raises(Exception, match="ended the stream"):
        for _ in source.packets():
            count += 1
            if work:
                busy.wait(work)
    return count


def test_a_pause_follows_each_read_that_waited(pauses: list[float]) -> None:
    # two bursts: the first packet of each had to be waited for, the rest were already there
    source = _source([0.03, 0, 0, 0.03, 0, 0], pause=0.2)
    assert _drain(source) == 6
    assert pauses == [0.2, 0.2]


def test_no_pause_when_packets_are_waiting(pauses: list[float]) -> None:
    assert _drain(_source([0, 0, 0, 0], pause=0.2)) == 4
    assert pauses == []


def test_the_consumers_own_time_is_not_waiting(pauses: list[float]) -> None:
    # the worker spends 20 ms on each packet (a segment closing, an fsync): not a network wait
    assert _drain(_source([0, 0, 0], pause=0.2), work=0.02) == 3
    assert pauses == []


def test_zero_pause_reads_as_packets_come(pauses: list[float]) -> None:
    assert _drain(_source([0.03, 0, 0.03], pause=0.0)) == 3
    assert pauses == []


def test_each_packet_keeps_the_stall_watchdog_fed(pauses: list[float]) -> None:
    source = _source([0, 0.03], pause=0.2)
    source._watchdog = StallWatchdog(source.url, None, limit=10.0)
    before = source._watchdog.last
    packets = source.packets()
    next(packets)
    first = source._watchdog.last
    next(packets)
    assert before <= first < source._watchdog.last <= time.monotonic()
