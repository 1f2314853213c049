"""A TCP proxy between a recorder and a camera, for network faults the camera cannot fake.

    with TcpProxy("127.0.0.1", camera.port) as proxy:
        url = proxy.url_for(camera.path)        # rtsp://127.0.0.1:{proxy.port}/path
        proxy.stall()    # stop forwarding in both directions; every TCP connection stays open
        proxy.resume()   # forward again (what was held in the socket buffers flows on)
        proxy.drop()     # reset every open connection (a network drop: the camera keeps running)

While stalled, new connections are accepted and connected upstream but carry no data either, as on
a real network that stops delivering: the recorder's reconnect attempts hang like its reads.
Only RTSP over TCP (interleaved) is proxied, which is what the recorder uses.

``TcpProxy(..., lose_first_keyframe=True)`` also throws away the first H.264 IDR slice of each
connection's video (interleaved channel 0; the SPS and PPS before it pass), as FFmpeg's RTSP
client loses a keyframe that arrives before the PLAY reply: the recorder's session then starts
mid-GOP.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, lose_first_keyframe: bool = False) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._lose_keyframe = lose_first_keyframe
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self.connections = 0  # accepted so far (a reconnect adds one)

    def url_for(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self) -> TcpProxy:
        self._spawn(self._accept_loop)
        return self

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def drop(self) -> None:
        """Reset every open connection (SO_LINGER 0: the peers see ECONNRESET at once)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def stop(self) -> None:
        self._closing.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _reset(client)  # camera down: the recorder sees the refusal as a reset
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client, _KeyframeLoss().feed if self._lose_keyframe else None)

    def _pump(
        self, src: socket.socket, dst: socket.socket, transform: Callable[[bytes], bytes] | None = None
    ) -> None:
        try:
            while not self._closing.is_set():
                # Not reading while stalled: the kernel buffers fill and TCP holds the sender back,
                # exactly what a silent network does to both ends; nothing is closed.
                if not self._flowing.wait(0.2):
                    continue
                ready, _, _ = select.select([src], [], [], 0.2)
                if not ready or not self._flowing.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if transform is not None:
                    data = transform(data)
                dst.sendall(data)
        except (OSError, ValueError):  # ValueError: select on a socket drop() closed meanwhile
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _KeyframeLoss:
    """Camera -> recorder bytes of one connection, without the first IDR slice on interleaved
    channel 0 (replies, other NALs and channels pass)."""

    def __init__(self) -> None:
        self._losing = True  # until a slice other than the IDR has come
        self._buf = b""

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data
        out: list[bytes] = []
        pos = 0  # frames are sliced out by offset; the unfinished tail is kept once at the end
        while pos < len(buf):
            if buf[pos : pos + 1] == b"$":
                if len(buf) - pos < 4:
                    break
                end = pos + 4 + struct.unpack(">H", buf[pos + 2 : pos + 4])[0]
                if len(buf) < end:
                    break
                frame = buf[pos:end]
                pos = end
                if frame[1] == 0 and self._losing:
                    nal = _nal_type(frame[4:])
                    if nal == 5:
                        continue
                    self._losing = nal not in (1, 2)  # a non-IDR slice: the keyframe is over
                out.append(frame)
            else:  # an RTSP message: headers, then Content-Length bytes of body
                head_end = buf.find(b"\r\n\r\n", pos)
                if head_end < 0:
                    break
                length = 0
                for line in buf[pos:head_end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or 0)
                end = head_end + 4 + length
                if len(buf) < end:
                    break
                out.append(buf[pos:end])
                pos = end
        self._buf = buf[pos:]
        return b"".join(out)


def _nal_type(rtp: bytes) -> int:
    """The H.264 NAL type an RTP packet carries (RFC 6184; for FU-A the fragment's type)."""
    if len(rtp) < 14:
        return -1
    offset = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10 and len(rtp) >= offset + 4:  # header extension
        offset += 4 + 4 * struct.unpack(">H", rtp[offset + 2 : offset + 4])[0]
    if len(rtp) <= offset + 1:
        return -1
    nal = rtp[offset] & 0x1F
    return rtp[offset + 1] & 0x1F if nal == 28 else nal


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
