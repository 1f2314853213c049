"""Playback and export threads lower their own priority, and only their own."""

from __future__ import annotations

import os
import threading

import pytest

from pipeline.api import playback
from pipeline.thread_priority import CONVENIENCE_NICE, lower_this_thread

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priority here")


def _nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def test_a_thread_lowers_itself_and_no_other() -> None:
    mine = _nice_of(threading.get_native_id())
    seen: dict[str, int | None] = {}

    def work() -> None:
        seen["returned"] = lower_this_thread()
        seen["now"] = _nice_of(threading.get_native_id())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["returned"] == seen["now"] == min(19, mine + CONVENIENCE_NICE)
    assert _nice_of(threading.get_native_id()) == mine


def test_playback_threads_run_lowered() -> None:
    mine = _nice_of(threading.get_native_id())
    for pool in (playback._HEAD, playback._BODY):
        assert pool.submit(lambda: _nice_of(threading.get_native_id())).result() == min(19, mine + CONVENIENCE_NICE)
    assert _nice_of(threading.get_native_id()) == mine
