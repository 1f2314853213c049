"""Misbehaving RTSP servers for robustness tests (pure stdlib: socket + threading).

Each server listens on a free 127.0.0.1 port as soon as it is constructed, serves every
connection in a thread, and is stopped by ``stop()`` or by leaving its ``with`` block:

* :class:`GarbageRtspServer` answers anything with random bytes and non-RTSP text.
* :class:`GarbageRtpServer` completes a believable RTSP handshake (OPTIONS, DESCRIBE with a
  valid H.264 SDP, SETUP over TCP, PLAY) and then sends interleaved "RTP" that is garbage:
  truncated frames, packets shorter than an RTP header, valid headers with random payloads.

* :class:`MalformedReplyServer` speaks RTSP badly in one chosen way (``MALFORMED_KINDS``): a
  body length of a terabyte, header lines without end, a status line that is not one, an SDP
  that describes nothing, a SETUP reply without a usable transport.
* :class:`ScriptedH264Camera` is a believable camera (real H.264 frames handed in by the caller,
  RTP over TCP interleaved, paced at the frame rate, looping) that misbehaves in one chosen way
  (``FAULTS``), from the start or after ``fault_after`` seconds of each session: truncated RTP,
  absurd timestamps, wrong SPS/PPS, a codec change mid-stream, a 20,000×20,000 SPS.

Backward timestamp jumps come from the real camera instead (``SimulatedCamera.jump_timestamps``).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Sequence
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


# --- malformed RTSP replies -------------------------------------------------------------------

MALFORMED_KINDS = ("huge_length", "endless_headers", "bad_status", "bad_sdp", "bad_transport")


class MalformedReplyServer(GarbageRtpServer):
    """The RTSP handshake goes wrong in one way (``kind``, one of :data:`MALFORMED_KINDS`):

    * ``huge_length``: DESCRIBE answers ``Content-Length: 1099511627776`` and a few bytes, then
      nothing (a client that trusts the length waits or allocates a terabyte);
    * ``endless_headers``: every reply is a status line followed by header lines without end;
    * ``bad_status``: replies start with a status line that is not RTSP (``RTSP/1.0 abc`` / HTTP);
    * ``bad_sdp``: DESCRIBE returns 200 with an SDP that describes no usable media;
    * ``bad_transport``: SETUP answers 200 without a usable Transport (channels 300-301).
    """

    def __init__(self, kind: str) -> None:
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {MALFORMED_KINDS}")
        self.kind = kind
        super().__init__()

    def _answer(self, conn: socket.socket, request: str) -> bool:
        method = request.split(" ", 1)[0]
        cseq = next(
            (ln.split(":", 1)[1].strip() for ln in request.split("\r\n") if ln.lower().startswith("cseq:")),
            "0",
        )
        if self.kind == "bad_status":
            conn.sendall(b"RTSP/1.0 abc Bogus\r\nCSeq: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return False
        if self.kind == "endless_headers":
            conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n".encode())
            while not self._stopping.wait(0.005):
                conn.sendall(b"X-Junk: " + b"a" * 1000 + b"\r\n")
            return False
        if method == "DESCRIBE" and self.kind == "huge_length":
            conn.sendall(
                f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                f"Content-Length: {1 << 40}\r\n\r\nv=0\r\n".encode()
            )
            self._stopping.wait(30)  # hold the connection open: the rest never comes
            return False
        if method == "DESCRIBE" and self.kind == "bad_sdp":
            body = "v=0\r\nm=video abc RTP/AVP xyz\r\na=rtpmap:xyz H264\r\nc=IN IP9 ???\r\n"
            conn.sendall(
                f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            return False
        if method == "SETUP" and self.kind == "bad_transport":
            conn.sendall(
                f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 1\r\n"
                "Transport: RTP/AVP/TCP;unicast;interleaved=300-301\r\n\r\n".encode()
            )
            return False
        return super()._answer(conn, request)


# --- a believable camera that misbehaves --------------------------------------------------------

FAULTS = ("none", "truncated_rtp", "absurd_timestamps", "wrong_sps", "codec_change", "huge_resolution")
_MTU = 1400
_CLOCK = 90_000


class _Bits:
    """Big-endian bit writer for building an H.264 SPS by hand (Exp-Golomb codes)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]  # rbsp_stop_one_bit, then zero-align
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        zeros = 0
        for byte in raw:  # emulation prevention: no 00 00 0x (x <= 3) inside a NAL unit
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def baseline_sps(width: int, height: int) -> bytes:
    """A Baseline-profile SPS NAL unit (with its header byte) claiming ``width``×``height``."""
    b = _Bits()
    b.u(8, 66)  # profile_idc: Baseline
    b.u(8, 0xC0)  # constraint_set0/1
    b.u(8, 51)  # level_idc 5.1
    b.ue(0)  # seq_parameter_set_id
    b.ue(0)  # log2_max_frame_num_minus4
    b.ue(0)  # pic_order_cnt_type
    b.ue(0)  # log2_max_pic_order_cnt_lsb_minus4
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    b.ue((width + 15) // 16 - 1)  # pic_width_in_mbs_minus1
    b.ue((height + 15) // 16 - 1)  # pic_height_in_map_units_minus1
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    b.u(1, 0)  # frame_cropping_flag
    b.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + b.rbsp()


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream, without their start codes."""
    out: list[bytes] = []
    for chunk in data.split(b"\x00\x00\x01"):
        chunk = chunk.rstrip(b"\x00")  # the leading zero of a 4-byte start code
        if chunk:
            out.append(chunk)
    return out


class ScriptedH264Camera(GarbageRtpServer):
    """A camera streaming the caller's H.264 ``frames`` (each a list of NAL units without start
    codes, the first a keyframe with SPS and PPS) over RTP/TCP at ``fps``, looping, with one
    ``fault`` (one of :data:`FAULTS`) starting ``fault_after`` seconds into each session:

    * ``truncated_rtp``: one interleaved frame promises 1400 bytes and brings 100, the camera
      goes on sending for a second (the client's framing is now off), then hangs up;
    * ``absurd_timestamps``: RTP timestamps leap 2^31 ticks (~6.6 h) ahead, then step back
      by an hour at every keyframe;
    * ``wrong_sps``: from the start, the SDP's sprop-parameter-sets are invalid (an SPS whose id is
      out of range, then random bits; a random PPS) and the in-band SPS/PPS are withheld (nothing
      tells the client the picture format);
    * ``codec_change``: the payload turns into another codec's (payload type 97, not in the SDP),
      and every later session's SDP offers Motion JPEG only;
    * ``huge_resolution``: from the start, SDP and in-band SPS claim ``huge_size`` (20,000×20,000).
    """

    def __init__(
        self,
        frames: Sequence[Sequence[bytes]],
        fault: str = "none",
        fault_after: float = 3.0,
        fps: float = 25.0,
        huge_size: tuple[int, int] = (20_000, 20_000),
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        if not frames or not any((nal[0] & 0x1F) == 7 for nal in frames[0]):
            raise ValueError("the first frame must be a keyframe carrying its SPS")
        self.fault = fault
        self.fault_after = fault_after
        self.fps = fps
        self.huge_size = huge_size
        self.sessions = 0
        self._frames = [list(f) for f in frames]
        self._changed = False  # codec_change: later sessions offer another codec
        super().__init__()

    def _parameter_sets(self) -> tuple[bytes, bytes]:
        sps = next(n for n in self._frames[0] if (n[0] & 0x1F) == 7)
        pps = next(n for n in self._frames[0] if (n[0] & 0x1F) == 8)
        if self.fault == "huge_resolution":
            sps = baseline_sps(*self.huge_size)
        elif self.fault == "wrong_sps":
            # Wrong by construction and the same every time: baseline profile, level 3.0, then
            # seq_parameter_set_id 32 (ue(v) 00000100001; at most 31 exist), then fixed pseudo-random
            # bits. Random bytes seeded by the port parsed as a usable SPS for ~2 % of ports
            # (seen: a test run recorded the "wrong SPS" camera).
            rng = random.Random(0)
            bits = "00000100001" + "".join(str(rng.getrandbits(1)) for _ in range(8 * 9 - 11))
            sps = b"\x67\x42\x00\x1e" + int(bits, 2).to_bytes(9, "big")
            pps = b"\x68" + bytes(rng.getrandbits(8) for _ in range(4))
        return sps, pps

    def _sdp(self) -> str:
        head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=scripted\r\nt=0 0\r\na=control:*\r\na=range:npt=now-\r\n"
        if self._changed:
            return head + "m=video 0 RTP/AVP 26\r\nc=IN IP4 0.0.0.0\r\na=control:stream=0\r\n"
        sps, pps = self._parameter_sets()
        sets = f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
        return (
            head + "m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 H264/90000\r\n"
            f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sets}\r\na=control:stream=0\r\n"
        )

    def _answer(self, conn: socket.socket, request: str) -> bool:
        if request.startswith("DESCRIBE"):
            cseq = next(
                (
                    ln.split(":", 1)[1].strip()
                    for ln in request.split("\r\n")
                    if ln.lower().startswith("cseq:")
                ),
                "0",
            )
            uri = request.split(" ", 2)[1]
            body = self._sdp()
            conn.sendall(
                (
                    f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {uri.rstrip('/')}/\r\n"
                    f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
                ).encode("latin-1")
            )
            return False
        return super()._answer(conn, request)

    def _send_garbage(self, conn: socket.socket) -> None:
        """Named for the base class's hook: here, the scripted stream."""
        with self._lock:
            self.sessions += 1
        if self._changed:
            return  # nothing to send in a codec we do not speak: the client must give up
        rng = random.Random(self.port)
        seq, ts0, ssrc = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32)
        started = time.monotonic()
        frame_no = 0
        ts_offset = 0
        faulted_at: float | None = None
        while not self._stopping.is_set():
            due = started + frame_no / self.fps
            wait = due - time.monotonic()
            if wait > 0 and self._stopping.wait(wait):
                return
            self._drain(conn)
            elapsed = time.monotonic() - started
            active = self.fault in ("wrong_sps", "huge_resolution") or elapsed >= self.fault_after
            frame = self._frames[frame_no % len(self._frames)]
            keyframe = any((n[0] & 0x1F) == 5 for n in frame)
            pt = 96
            if active and faulted_at is None:
                faulted_at = elapsed
                if self.fault == "absurd_timestamps":
                    ts_offset += 1 << 31
                elif self.fault == "truncated_rtp":
                    conn.sendall(b"$\x00" + struct.pack("!H", _MTU) + os.urandom(100))
                elif self.fault == "codec_change":
                    self._changed = True
            if (
                active
                and self.fault == "absurd_timestamps"
                and keyframe
                and frame_no % len(self._frames) == 0
            ):
                ts_offset -= 3600 * _CLOCK
            if active and self.fault == "truncated_rtp" and elapsed - (faulted_at or elapsed) > 1.0:
                return  # hang up mid-stream
            nals = self._frame_nals(frame)
            if active and self.fault == "codec_change":
                pt = 97
                nals = [b"\x40\x01" + os.urandom(200), b"\x26\x01" + os.urandom(1200)]  # HEVC-like units
            ts = (ts0 + ts_offset + round(frame_no * _CLOCK / self.fps)) & 0xFFFFFFFF
            payloads = self._packetize(nals)
            for i, payload in enumerate(payloads):
                seq = (seq + 1) & 0xFFFF
                marker = 0x80 if i == len(payloads) - 1 else 0  # the frame's last packet
                rtp = struct.pack("!BBHII", 0x80, marker | pt, seq, ts, ssrc) + payload
                conn.sendall(b"$\x00" + struct.pack("!H", len(rtp)) + rtp)
            frame_no += 1

    def _frame_nals(self, frame: list[bytes]) -> list[bytes]:
        if self.fault == "huge_resolution":
            sps, _ = self._parameter_sets()
            return [sps if (n[0] & 0x1F) == 7 else n for n in frame]
        if self.fault == "wrong_sps":
            return [n for n in frame if (n[0] & 0x1F) not in (7, 8)]
        return frame

    @staticmethod
    def _packetize(nals: list[bytes]) -> list[bytes]:
        """RTP payloads of one frame (RFC 6184): a NAL unit alone, or split into FU-A fragments."""
        payloads: list[bytes] = []
        for nal in nals:
            if len(nal) <= _MTU:
                payloads.append(nal)
                continue
            indicator = (nal[0] & 0xE0) | 28
            body = nal[1:]
            for off in range(0, len(body), _MTU):
                start = 0x80 if off == 0 else 0
                end = 0x40 if off + _MTU >= len(body) else 0
                payloads.append(bytes((indicator, start | end | (nal[0] & 0x1F))) + body[off : off + _MTU])
        return payloads

    def _drain(self, conn: socket.socket) -> None:
        """Read (and drop) what the client sends while streaming: RTCP receiver reports and
        keep-alives. A TEARDOWN ends the session."""
        while select.select([conn], [], [], 0)[0]:
            data = conn.recv(65536)
            if not data:
                raise ConnectionResetError("client closed")
            if b"TEARDOWN" in data:
                raise ConnectionResetError("client tore the session down")
