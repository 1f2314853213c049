"""Runs one recorder worker per camera, each in its own thread, and restarts any that dies.

Why threads: a worker spends nearly all its time inside libavformat (network reads, muxing),
which PyAV runs without the GIL, so one process records dozens of cameras on two cores.
A process per camera would cost ~30 MB of interpreter each (the memory target is a few MB per
stream), and asyncio would need a non-blocking RTSP client we do not have. A crash of one
worker (an exception escaping ``run``) is contained to its thread and restarted with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


class Runnable(Protocol):
    """What the supervisor runs: a blocking ``run(stop)`` that returns when ``stop`` is set."""

    def run(self, stop: threading.Event) -> None: ...


@dataclass
class _Slot:
    name: str
    factory: Callable[[], Runnable]
    thread: threading.Thread | None = None
    crashes: int = 0
    last_crash: float = 0.0
    last_error: str | None = None
    restarts: int = 0
    running: bool = field(default=False)
    stop: threading.Event = field(default_factory=threading.Event)


class WorkerSupervisor:
    """Keeps one thread per named worker alive until stopped."""

    def __init__(self, restart_initial: float = 0.2, restart_max: float = 10.0) -> None:
        self._slots: dict[str, _Slot] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._restart_initial = restart_initial
        self._restart_max = restart_max
        self._watch: threading.Thread | None = None

    def add(self, name: str, factory: Callable[[], Runnable]) -> None:
        """Supervise a worker; started at once if the supervisor is running (fleet takeover)."""
        with self._lock:
            if name in self._slots:
                raise ValueError(f"worker {name!r} already supervised")
            slot = self._slots[name] = _Slot(name=name, factory=factory)
            running = self._watch is not None and not self._stop.is_set()
        if running:
            self._launch(slot)

    def remove(self, name: str, timeout: float = 10.0) -> bool:
        """Stop one worker (it closes its segment) and forget it; True if it ended in time."""
        with self._lock:
            slot = self._slots.pop(name, None)
        if slot is None:
            return True
        slot.stop.set()
        if slot.thread is not None:
            slot.thread.join(timeout)
            if slot.thread.is_alive():
                logger.error("worker did not stop in time", extra={"worker": name})
                return False
        return True

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._slots)

    def start(self) -> None:
        for slot in list(self._slots.values()):
            self._launch(slot)
        self._watch = threading.Thread(target=self._watchdog, name="supervisor", daemon=True)
        self._watch.start()

    def _launch(self, slot: _Slot) -> None:
        worker = slot.factory()

        def body() -> None:
            slot.running = True
            try:
                worker.run(slot.stop)
            except Exception as exc:  # a worker bug must not take the centre down
                slot.crashes += 1
                slot.last_crash = time.monotonic()
                slot.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("worker crashed", extra={"worker": slot.name, "crashes": slot.crashes})
            finally:
                slot.running = False

        slot.thread = threading.Thread(target=body, name=f"rec-{slot.name}", daemon=True)
        slot.thread.start()

    def _watchdog(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                slots = list(self._slots.values())
            for slot in slots:
                thread = slot.thread
                if thread is None or thread.is_alive() or slot.stop.is_set():
                    continue
                backoff = min(self._restart_max, self._restart_initial * 2 ** max(0, slot.crashes - 1))
                if time.monotonic() - slot.last_crash < backoff:
                    continue
                slot.restarts += 1
                logger.warning("restarting worker", extra={"worker": slot.name, "restarts": slot.restarts})
                self._launch(slot)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            slot.stop.set()
        deadline = time.monotonic() + timeout
        for slot in slots:
            if slot.thread is not None:
                slot.thread.join(max(0.0, deadline - time.monotonic()))
                if slot.thread.is_alive():
                    logger.error("worker did not stop in time", extra={"worker": slot.name})
        if self._watch is not None:
            self._watch.join(1.0)

    def health(self) -> dict[str, dict[str, object]]:
        return {
            s.name: {
                "running": s.running,
                "crashes": s.crashes,
                "restarts": s.restarts,
                "last_error": s.last_error,
            }
            for s in list(self._slots.values())
        }
