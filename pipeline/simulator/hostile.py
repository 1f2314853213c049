"""Misbehaving RTSP servers for robustness tests (pure stdlib: socket + threading).

Each server listens on a free 127.0.0.1 port as soon as it is constructed, serves every
connection in a thread, and is stopped by ``stop()`` or by leaving its ``with`` block:

* :class:`GarbageRtspServer` answers anything with random bytes and non-RTSP text.
* :class:`GarbageRtpServer` completes a believable RTSP handshake (OPTIONS, DESCRIBE with a
  valid H.264 SDP, SETUP over TCP, PLAY) and then sends interleaved "RTP" that is garbage:
  truncated frames, packets shorter than an RTP header, valid headers with random payloads.

Backward timestamp jumps come from the real camera instead (``SimulatedCamera.jump_timestamps``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import struct
import threading
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

# A real SDP from the GStreamer camera (640x360 H.264), so only the RTP data is wrong.
_SDP = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 127.0.0.1\r\n"
    "s=hostile\r\n"
    "t=0 0\r\n"
    "a=control:*\r\n"
    "a=range:npt=now-\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAZR4sXUA==,aM48gA==;"
    "profile-level-id=42c01e\r\n"
    "a=control:stream=0\r\n"
)


class _TcpServer:
    """Accept loop and per-connection threads; ``stop()`` closes every socket and joins."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)  # lets the accept loop notice stop()
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{self}-accept", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/hostile"

    def __str__(self) -> str:
        return f"{type(self).__name__}:{self.port}"

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.5)
            with self._lock:
                self.connections += 1
                self._clients.append(conn)
                thread = threading.Thread(target=self._serve_safely, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve_safely(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except OSError:
            pass  # the client went away: exactly what these servers provoke
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _recv(self, conn: socket.socket) -> bytes | None:
        """Bytes from the client, b"" when it closed, None when nothing came in time."""
        try:
            return conn.recv(4096)
        except TimeoutError:
            return None

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(timeout=2)
        with self._lock:
            clients, threads = list(self._clients), list(self._threads)
        for conn in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        for thread in threads:
            thread.join(timeout=2)
        logger.debug("%s on port %d stopped", type(self).__name__, self.port)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class GarbageRtspServer(_TcpServer):
    """Answers whatever the client sends with non-RTSP text and random bytes, then hangs up."""

    def _serve(self, conn: socket.socket) -> None:
        self._recv(conn)
        conn.sendall(b"HELLO this is not RTSP\r\n" + os.urandom(2048) + b"\r\n\r\n")
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n" + os.urandom(1024))


class GarbageRtpServer(_TcpServer):
    """Valid RTSP handshake and SDP, then broken interleaved RTP until the client leaves."""

    def __init__(self, packets_per_second: float = 100.0, seed: int | None = None) -> None:
        self.plays = 0  # how many clients got as far as PLAY (tests assert the handshake ran)
        self._interval = 1.0 / packets_per_second
        self._seed = seed
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        while not self._stopping.is_set():
            data = self._recv(conn)
            if data == b"":
                return
            pending += data or b""
            while b"\r\n\r\n" in pending:
                head, pending = pending.split(b"\r\n\r\n", 1)
                if self._answer(conn, head.decode("latin-1")):
                    with self._lock:
                        self.plays += 1
                    self._send_garbage(conn)
                    return

    def _answer(self, conn: socket.socket, request: str) -> bool:
        """Reply to one request; True when it was PLAY (garbage starts)."""
        lines = request.split("\r\n")
        method, _, rest = lines[0].partition(" ")
        uri = rest.split(" ", 1)[0]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        cseq = headers.get("cseq", "0")
        extra, body = "", ""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "DESCRIBE":
            body = _SDP
            extra = f"Content-Base: {uri.rstrip('/')}/\r\nContent-Type: application/sdp\r\n"
        elif method == "SETUP":
            if "TCP" not in headers.get("transport", ""):
                conn.sendall(f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n".encode())
                return False
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4815162342;timeout=60\r\n"
        elif method in ("PLAY", "GET_PARAMETER", "TEARDOWN"):
            extra = "Session: 4815162342\r\n"
        else:
            conn.sendall(f"RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n".encode())
            return False
        reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}Content-Length: {len(body)}\r\n\r\n{body}"
        conn.sendall(reply.encode("latin-1"))
        return method == "PLAY"

    def _send_garbage(self, conn: socket.socket) -> None:
        rng = random.Random(self._seed)
        seq, ts = rng.getrandbits(16), rng.getrandbits(32)
        while not self._stopping.wait(self._interval):
            kind = rng.randrange(4)
            if kind == 0:  # frame header promises more bytes than follow: framing desyncs
                frame = b"$\x00" + struct.pack("!H", 1400) + os.urandom(rng.randrange(1, 200))
            elif kind == 1:  # "RTP" shorter than its 12-byte fixed header
                payload = os.urandom(rng.randrange(1, 12))
                frame = b"$\x00" + struct.pack("!H", len(payload)) + payload
            elif kind == 2:  # a plausible header (v2, PT 96) around a random payload
                seq, ts = (seq + 1) & 0xFFFF, (ts + 3600) & 0xFFFFFFFF
                header = struct.pack("!BBHII", 0x80, 96, seq, ts, 0xDEADBEEF)
                payload = header + os.urandom(rng.randrange(1, 1200))
                frame = b"$\x00" + struct.pack("!H", len(payload)) + payload
            else:  # bytes outside any interleaved frame
                frame = os.urandom(rng.randrange(1, 300))
            conn.sendall(frame)
