"""A recording node of a fleet (``vaudit recorder``): records the cameras it holds leases for.

Nodes share the PostgreSQL index and the object store; each has its own spool. The lease loop
(``indexer/leases.py``) runs every ``fleet.renew_seconds``:

* acquired lease → the camera's chain state (``state.json``) is seeded from the index's last
  segment of that camera when that is later than what this spool knows (the previous holder's
  spool is elsewhere), and a worker starts. If the lease came from another node the worker names
  the gap from that last stored segment's end to its own first segment ``node_failover``;
* lost lease (another node took it after ours expired) → the worker stops at once;
* lease over the fair share (a node joined) → the worker stops, the camera's closed segments are
  uploaded and indexed (at most ``handover_drain_seconds``), then the lease is released, so the
  next holder's gap starts at the true end of our footage.

If the database cannot be reached the node keeps recording what it has (double recording for a
while is better than none); when it comes back a lease taken meanwhile shows up as lost.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from domain.errors import VauditError
from domain.types import GapCause, to_unix
from indexer.database import migrate_once
from indexer.leases import Acquired, ChainHint, LeaseManager, TickResult
from pipeline.ingest.uploader import QUARANTINE, is_closed_sidecar
from pipeline.node.centre import CentreRuntime
from pipeline.settings import Settings
from recorders.spool import CameraSpool, ChainState
from recorders.ts_writer import make_dirs

log = logging.getLogger(__name__)


class FleetNode:
    """One node: a :class:`CentreRuntime` without fixed cameras, driven by leases."""

    def __init__(self, settings: Settings, node_id: str | None = None) -> None:
        self.settings = settings
        self.cfg = settings.fleet
        self.node_id = node_id or self.cfg.node_id or socket.gethostname()
        migrate_once(settings.database.url)
        # Events reach the API node, not this one: its risk engine keeps to camera alerts.
        self.runtime = CentreRuntime(
            settings, migrate=False, assign_cameras=False, risk_people=False, anchor_audit=False
        )
        self.cameras = [cam.id for _room, cam in settings.cameras()]
        self.leases = LeaseManager(
            self.runtime.engine, self.node_id, self.cfg.lease_seconds, host=socket.gethostname()
        )
        self.leases.ensure(self.cameras)
        self._stop = threading.Event()
        self._draining = threading.Event()  # shutting down: renew what we hold, take nothing
        self._released: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._handing_over: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_tick: TickResult | None = None
        self.last_ok = 0.0  # monotonic time of the last successful tick
        self.takeovers = 0

    # -- control -------------------------------------------------------------------------------

    def start(self) -> None:
        self.runtime.start()
        self._tick(acquire=False)  # announce ourselves before taking anything
        self._thread = threading.Thread(target=self._loop, name="lease-loop", daemon=True)
        self._thread.start()
        log.info("fleet node started", extra={"node": self.node_id, "cameras": len(self.cameras)})

    def stop(self, timeout: float = 15.0) -> None:
        # Keep renewing while the workers close their segments and the uploader stores and
        # indexes them: the next holder's gap must start at the true end of our footage.
        self._draining.set()
        self.runtime.stop(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            held = self.last_tick.held if self.last_tick else ()
            self.leases.leave({c: h for c in held if (h := self._chain(c)) is not None})
        except VauditError as exc:
            log.warning("could not release leases on exit: %s", exc.message)

    def recording(self) -> list[str]:
        return self.runtime.supervisor.names()

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        # Settle: nodes started together see each other before anyone takes a fair share.
        if self._stop.wait(self.cfg.renew_seconds):
            return
        while True:
            self._tick(acquire=not self._draining.is_set())
            if self._stop.wait(self.cfg.renew_seconds):
                return

    def _tick(self, acquire: bool) -> None:
        while True:
            try:
                camera = self._released.get_nowait()
            except queue.Empty:
                break
            try:
                self.leases.release([camera], {c: h for c in [camera] if (h := self._chain(c)) is not None})
                log.info("lease released", extra={"node": self.node_id, "camera_id": camera})
            except VauditError as exc:
                log.warning("release of %s failed: %s", camera, exc.message)
            finally:
                with self._lock:
                    self._handing_over.discard(camera)
        try:
            result = self.leases.tick(self.cameras, acquire=acquire)
        except VauditError as exc:
            log.error("lease tick failed; recording goes on: %s", exc.message)
            return
        self.last_tick, self.last_ok = result, time.monotonic()
        for camera in result.lost:  # another node records it now; a silent camera stops slowly
            threading.Thread(target=self.runtime.stop_recording, args=(camera,), daemon=True).start()
        if self._draining.is_set():
            return
        for acquired in result.acquired:
            self._begin(acquired)
        with self._lock:
            idle = [c for c in result.held if c not in self._handing_over]
        for camera in idle:  # ours already (a restart of this node within the lease time)
            self._begin(Acquired(camera, 0, None, None))
        with self._lock:
            excess = [c for c in result.excess if c not in self._handing_over]
            self._handing_over.update(excess)
        for camera in excess:
            threading.Thread(
                target=self._hand_over, args=(camera,), name=f"handover-{camera}", daemon=True
            ).start()

    def _begin(self, acquired: Acquired) -> None:
        camera = acquired.camera_id
        if camera in self.runtime.supervisor.names():
            return
        self._seed_chain(camera, acquired.released)
        cause = None
        if acquired.failover:
            self.takeovers += 1
            cause = (
                GapCause.NODE_FAILOVER,
                f"camera taken over by node {self.node_id} from node {acquired.previous_node}",
            )
        self.runtime.record(camera, cause)
        log.info(
            "recording camera",
            extra={"node": self.node_id, "camera_id": camera, "from_node": acquired.previous_node},
        )

    def _seed_chain(self, camera: str, hint: ChainHint | None) -> None:
        """Continue the camera's chain (seq, hash, end) from whichever is latest: our spool, the
        index's last segment, or what the node that released the lease left in it."""
        spool = CameraSpool(self.runtime.spool, camera)
        try:
            local = spool.load_state()
            last = self.runtime.store.last_segment(camera)
        except VauditError as exc:
            log.warning("cannot read the chain of %s: %s", camera, exc.message)
            return
        candidates: list[tuple[float, int, str | None]] = []
        if last is not None:
            candidates.append((to_unix(last.end), last.seq, last.sha256))
        if hint is not None:
            candidates.append((hint.end_us / 1e6, hint.seq, hint.sha256))
        if not candidates:
            return
        end, seq, sha = max(candidates, key=lambda c: c[0])
        if local.last_end is None or end > local.last_end:
            make_dirs(spool.dir)
            spool.save_state(ChainState(max(seq, local.last_seq), sha, end))

    def _chain(self, camera: str) -> ChainHint | None:
        """Our spool's chain state of ``camera`` (after its worker stopped), for the next holder."""
        try:
            state = CameraSpool(self.runtime.spool, camera).load_state()
        except VauditError:
            return None
        if state.last_end is None:
            return None
        return ChainHint(state.last_seq, state.last_sha256, round(state.last_end * 1e6))

    def _hand_over(self, camera: str) -> None:
        """Stop, let the uploader store and index what was recorded, then give the lease back."""
        self.runtime.stop_recording(camera)
        self.runtime.uploader.notify()
        deadline = time.monotonic() + self.cfg.handover_drain_seconds
        while self._pending(camera) and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.1)
        self._released.put(camera)

    def _pending(self, camera: str) -> bool:
        for _dirpath, dirnames, filenames in os.walk(self.runtime.spool / camera):
            if QUARANTINE in dirnames:
                dirnames.remove(QUARANTINE)
            if any(is_closed_sidecar(name) for name in filenames):
                return True
        return False

    # -- health --------------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        tick = self.last_tick
        age = time.monotonic() - self.last_ok if self.last_ok else None
        ok = age is not None and age < self.cfg.lease_seconds
        stats = self.runtime.uploader.stats()
        return ok, {
            "node": self.node_id,
            "ok": ok,
            "last_tick_age": age,
            "live_nodes": tick.live_nodes if tick else None,
            "cap": tick.cap if tick else None,
            "leases": list(tick.held) if tick else [],
            "recording": self.recording(),
            "takeovers": self.takeovers,
            "storage_ok": stats.storage_ok,
            "pending_files": stats.pending_files,
            "alerts": [a.to_json() for a in self.runtime.alerts.open_alerts()],
        }


def serve_health(node: FleetNode, host: str, port: int) -> ThreadingHTTPServer:
    """``GET /healthz`` (200 while the node renews its leases, else 503) on a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/healthz":
                self.send_error(404)
                return
            ok, body = node.health()
            data = json.dumps(body).encode("utf-8")
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
