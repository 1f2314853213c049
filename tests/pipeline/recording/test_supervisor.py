"""The worker supervisor: a crashed recorder thread is restarted; stop ends every worker."""

from __future__ import annotations

import threading
import time

from pipeline.recording.threads import WorkerSupervisor


class _Flaky:
    """Crashes on its first two runs, then records until stopped."""

    runs = 0

    def run(self, stop: threading.Event) -> None:
        type(self).runs += 1
        if type(self).runs <= 2:
            raise RuntimeError(f"boom {type(self).runs}")
        stop.wait()


class _Steady:
    started = 0

    def run(self, stop: threading.Event) -> None:
        type(self).started += 1
        stop.wait()


def test_crashed_worker_is_restarted_and_others_untouched() -> None:
    sup = WorkerSupervisor(restart_initial=0.05, restart_max=0.2)
    sup.add("flaky", _Flaky)
    sup.add("steady", _Steady)
    sup.start()
    try:
        deadline = time.monotonic() + 5
        while _Flaky.runs < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        health = sup.health()
        assert _Flaky.runs == 3
        assert health["flaky"]["crashes"] == 2 and health["flaky"]["restarts"] == 2
        assert health["flaky"]["running"] is True and "boom 2" in str(health["flaky"]["last_error"])
        assert _Steady.started == 1 and health["steady"]["restarts"] == 0
    finally:
        sup.stop(timeout=5)
    assert all(not h["running"] for h in sup.health().values())
