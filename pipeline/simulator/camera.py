"""Drive simulated cameras: ``gst_camera.py`` processes serving real RTSP on 127.0.0.1.

The GStreamer side runs on Debian's system Python (python3-gi), not in the project's
virtualenv, so each camera is a child process controlled over stdin/stdout. Every class here
guarantees that ``stop()`` leaves no child process behind, whatever state it was in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

from domain.errors import StreamError

logger = logging.getLogger(__name__)

GST_CAMERA_SCRIPT = Path(__file__).with_name("gst_camera.py")
SYSTEM_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x"
)
_EXIT_MISSING = 3  # gst_camera.py: gi, a typelib or an element is missing
_EXIT_BIND = 4  # gst_camera.py: port in use

PictureMode = Literal["normal", "black", "frozen", "covered"]
AudioCodec = Literal["alaw", "mulaw", "aac", "aac-latm", "none"]


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a simulated camera encodes and sends, beyond codec and size: the variants of
    independent cameras (``gst_camera.py`` options; the conformance suite's matrix)."""

    profile: Literal["baseline", "main", "high"] | None = None  # H.264 only
    bframes: int = 0
    b_pyramid: bool = False
    slices: int = 1
    intra_refresh: bool = False  # x264: periodic intra refresh, no IDR after the first frame
    params: Literal["both", "sdp", "inband"] = "both"  # where SPS/PPS travel
    rtp_wrap_after: float | None = None  # RTP timestamps wrap this many seconds in
    ntp_offset: float = 0.0  # the camera's clock error, seconds (RTCP sender reports)
    aac_encoder: Literal["auto", "avenc_aac", "voaacenc"] = "auto"
    log_frames: bool = False  # one events-log line per video frame sent
    encoder_defaults: bool = False  # H.264: x264enc's own preset and look-ahead (seconds of latency)

    def args(self) -> list[str]:
        out = [
            "--bframes",
            str(self.bframes),
            "--slices",
            str(self.slices),
            "--params",
            self.params,
            "--ntp-offset",
            repr(self.ntp_offset),
            "--aac-encoder",
            self.aac_encoder,
        ]
        if self.profile is not None:
            out += ["--profile", self.profile]
        if self.rtp_wrap_after is not None:
            out += ["--rtp-wrap-after", repr(self.rtp_wrap_after)]
        flags = {
            "--b-pyramid": self.b_pyramid,
            "--intra-refresh": self.intra_refresh,
            "--log-frames": self.log_frames,
            "--encoder-defaults": self.encoder_defaults,
        }
        return out + [flag for flag, on in flags.items() if on]


class SimulatorError(StreamError):
    """A simulated camera could not be started or controlled."""

    code = "simulator_error"


class SimulatorUnavailable(SimulatorError):
    """The system lacks python3-gi, the GStreamer RTSP server or a needed plugin."""

    code = "simulator_unavailable"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (racy, but fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rtsp_options_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status code of an RTSP OPTIONS request, or None when nothing (valid) answers."""
    request = f"OPTIONS rtsp://{host}:{port}{path} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: vaudit-probe\r\n\r\n"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request.encode("ascii"))
            head = sock.recv(1024).decode("latin-1")
    except OSError:
        return None
    parts = head.split(" ", 2)
    if len(parts) < 2 or parts[0] != "RTSP/1.0" or not parts[1].isdigit():
        return None
    return int(parts[1])


class _ServerProcess:
    """One gst_camera.py child: spawn, wait for READY, send commands, always reap."""

    def __init__(self, name: str, port: int, probe_path: str, python: str) -> None:
        self.name = name
        self.port = port
        self._probe_path = probe_path
        self._python = python
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._command_lock = threading.Lock()

    def _args(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip()[-2000:]

    def _spawn(self, expected_ready: int, timeout: float) -> None:
        if self.running:
            raise SimulatorError(f"{self.name} is already running", camera=self.name)
        if not Path(self._python).exists():
            raise SimulatorUnavailable(
                f"{self._python} not found; the simulator needs Debian's python3 with: "
                f"apt-get install {DEBIAN_PACKAGES}",
                camera=self.name,
            )
        # The child must see only system Python: no project path, no virtualenv.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        # A file, not a pipe: GStreamer chatter can never block the child. Closed in _reap().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._lines = queue.Queue()
        cmd = [self._python, "-I", str(GST_CAMERA_SCRIPT), *self._args()]
        logger.debug("starting %s: %s", self.name, " ".join(cmd))
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env=env,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_stdout, args=(self._proc,), daemon=True)
        self._reader.start()
        try:
            self._await_ready(expected_ready, timeout)
        except BaseException:
            self._reap()
            raise
        logger.info("%s serving on 127.0.0.1:%d (pid %d)", self.name, self.port, self._proc.pid)

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _await_ready(self, expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < expected:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise SimulatorError(
                    f"{self.name} did not become ready within {timeout:.0f} s", camera=self.name
                ) from None
            if line is None:
                self._raise_exited()
            elif line.startswith("READY "):
                ready += 1
        # READY means bound; OPTIONS answering 200 means the RTSP server's main loop runs.
        while rtsp_options_status("127.0.0.1", self.port, self._probe_path) != 200:
            if not self.running:
                self._raise_exited()
            if time.monotonic() > deadline:
                raise SimulatorError(f"{self.name} does not answer RTSP OPTIONS", camera=self.name)
            time.sleep(0.05)

    def _raise_exited(self) -> None:
        assert self._proc is not None
        code = self._proc.wait(timeout=5)
        err = self._stderr_text()
        if code == _EXIT_MISSING:
            raise SimulatorUnavailable(
                f"{self.name}: GStreamer is incomplete ({err.splitlines()[-1] if err else 'unknown'}); "
                f"install the Debian packages: apt-get install {DEBIAN_PACKAGES}",
                camera=self.name,
            )
        if code == _EXIT_BIND:
            raise SimulatorError(f"{self.name}: port {self.port} is already in use", camera=self.name)
        raise SimulatorError(f"{self.name} exited with code {code}: {err}", camera=self.name)

    def _command(self, command: str, timeout: float = 5.0) -> None:
        with self._command_lock:
            if self._proc is None or self._proc.stdin is None or not self.running:
                raise SimulatorError(f"{self.name} is not running", camera=self.name)
            try:
                self._proc.stdin.write(command + "\n")
                self._proc.stdin.flush()
            except OSError as exc:
                raise SimulatorError(f"{self.name} did not take {command!r}: {exc}") from exc
            deadline = time.monotonic() + timeout
            while True:
                try:
                    line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    raise SimulatorError(f"{self.name} did not answer {command!r}") from None
                if line is None:
                    raise SimulatorError(f"{self.name} exited while handling {command!r}")
                if line.startswith("ERR"):
                    raise SimulatorError(f"{self.name} refused {command!r}: {line}")
                if line.startswith("OK"):
                    return

    def stop(self) -> None:
        """Ask the server to quit, then terminate, then kill: never leaves a process."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=3)
        self._reap()
        logger.info("%s stopped", self.name)

    def kill(self) -> None:
        """SIGKILL, like a camera losing power: clients see the connection drop."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
        self._reap()
        logger.info("%s killed", self.name)

    def _reap(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
        if self._reader is not None:
            self._reader.join(timeout=2)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._proc = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


ONVIF_PROFILE = "Profile_1"  # the media profile token the simulated cameras answer to by default
ONVIF_PATH = "/onvif/media_service"  # where the simulator serves its ONVIF media service


class SimulatedCamera(_ServerProcess):
    """One live camera: test pattern with a burnt-in capture time, H.264/H.265 + A-law/AAC.

    Use as a context manager (it starts on enter) or call ``start()``/``stop()``.
    """

    def __init__(
        self,
        camera_id: str,
        port: int,
        path: str | None = None,
        video_codec: Literal["h264", "h265", "mjpeg"] = "h264",
        audio_codec: AudioCodec = "alaw",
        width: int = 1280,
        height: int = 720,
        fps: int = 25,
        gop: int | None = None,
        bitrate_kbps: int = 1500,
        events_log: Path | None = None,
        python: str = SYSTEM_PYTHON,
        label: str | None = None,
        onvif_port: int | None = None,
        onvif_credentials: tuple[str, str] | None = None,
        onvif_profile: str = ONVIF_PROFILE,
        encoding: Encoding | None = None,
        rtsp_credentials: tuple[str, str] | None = None,
        rtsp_auth: Literal["basic", "digest"] = "digest",
    ) -> None:
        path = path or f"/{camera_id}"
        if not path.startswith("/"):
            path = "/" + path
        super().__init__(f"camera {camera_id}", port, path, python)
        self.camera_id = camera_id
        self.path = path
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.width = width
        self.height = height
        self.fps = fps
        self.gop = gop or fps
        self.bitrate_kbps = bitrate_kbps
        self.events_log = events_log
        self.label = label if label is not None else camera_id
        # ONVIF media service (SetSynchronizationPoint only), on its own port; None: not served
        self.onvif_port = onvif_port
        self.onvif_credentials = onvif_credentials
        self.onvif_profile = onvif_profile
        self.encoding = encoding or Encoding()
        # RTSP login the camera demands (user, password); None: it serves anyone
        self.rtsp_credentials = rtsp_credentials
        self.rtsp_auth = rtsp_auth

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def onvif_url(self) -> str | None:
        """The camera's ONVIF media service address (profile ``onvif_profile``), if it serves one."""
        return None if self.onvif_port is None else f"http://127.0.0.1:{self.onvif_port}{ONVIF_PATH}"

    def _args(self) -> list[str]:
        args = [
            "--port", str(self.port), "--path", self.path,
            "--video", self.video_codec, "--audio", self.audio_codec,
            "--width", str(self.width), "--height", str(self.height),
            "--fps", str(self.fps), "--gop", str(self.gop),
            "--bitrate-kbps", str(self.bitrate_kbps), "--label", self.label,
        ]  # fmt: skip
        args += self.encoding.args()
        if self.events_log is not None:
            self.events_log.parent.mkdir(parents=True, exist_ok=True)
            args += ["--events-log", str(self.events_log)]
        if self.onvif_port is not None:
            args += ["--onvif-port", str(self.onvif_port), "--onvif-profile", self.onvif_profile]
            if self.onvif_credentials is not None:
                args += [
                    "--onvif-user",
                    self.onvif_credentials[0],
                    "--onvif-password",
                    self.onvif_credentials[1],
                ]
        if self.rtsp_credentials is not None:
            args += [
                "--rtsp-user",
                self.rtsp_credentials[0],
                "--rtsp-password",
                self.rtsp_credentials[1],
                "--rtsp-auth",
                self.rtsp_auth,
            ]
        return args

    def start(self, timeout: float = 15.0) -> Self:
        self._spawn(1, timeout)
        return self

    def restart(self, timeout: float = 15.0) -> Self:
        self.stop()
        return self.start(timeout)

    def set_picture(self, mode: PictureMode) -> None:
        if mode not in ("normal", "black", "frozen", "covered"):
            raise ValueError(f"picture mode {mode!r} is not normal, black, frozen or covered")
        self._command(mode)

    def set_audio(self, on: bool) -> None:
        """Stop (a dead microphone) or resume sending audio; video goes on either way."""
        self._command("audio on" if on else "audio off")

    def resize(self, width: int, height: int) -> None:
        """Restart the stream with a new picture size: every client is disconnected now and the
        next session gets the new size (a camera whose settings were changed)."""
        self._command(f"resize {width}x{height}")
        self.width, self.height = width, height

    def jump_timestamps(self, seconds: float) -> None:
        """Shift the RTP timestamps of video and audio by ``seconds`` (negative = backwards)."""
        self._command(f"jump {seconds:.6f}")

    def keyframe_times(self) -> list[float]:
        """Unix times of the keyframes sent, as the RTCP NTP mapping gives them (events log).

        Equal to the capture time (burnt into the picture) until ``jump_timestamps`` is used.
        Empty until a client connects: the camera encodes only while someone watches.
        """
        return [float(e["wall"]) for e in self.events() if e.get("event") == "keyframe"]

    def events(self) -> list[dict[str, Any]]:
        """Every line of the events log (keyframe, mode, jump, quit), oldest first."""
        if self.events_log is None:
            raise SimulatorError(f"{self.name} was started without an events log", camera=self.camera_id)
        if not self.events_log.exists():
            return []
        out: list[dict[str, Any]] = []
        for line in self.events_log.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line being written right now
                out.append(json.loads(line))
        return out

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self


class FileCameraServer(_ServerProcess):
    """N RTSP mounts (``{path}0`` .. ``{path}{N-1}``) of one pre-encoded clip, one process.

    The clip is served in real time without decoding; it does not loop (the stream ends with
    the clip), so make it longer than the run.
    """

    def __init__(
        self,
        clip: Path,
        count: int,
        port: int | None = None,
        path: str = "/bench",
        python: str = SYSTEM_PYTHON,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        path = path if path.startswith("/") else "/" + path
        super().__init__(f"file server {clip.name}x{count}", port or free_port(), f"{path}0", python)
        self.clip = clip
        self.count = count
        self.path = path

    @property
    def urls(self) -> list[str]:
        return [f"rtsp://127.0.0.1:{self.port}{self.path}{i}" for i in range(self.count)]

    def _args(self) -> list[str]:
        return [
            "--port", str(self.port), "--path", self.path,
            "--file", str(self.clip), "--count", str(self.count),
        ]  # fmt: skip

    def start(self, timeout: float = 15.0) -> Self:
        if not self.clip.is_file():
            raise SimulatorError(f"clip {self.clip} does not exist (see make_clip)")
        self._spawn(self.count, timeout)
        return self

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self


_BASE_SECONDS = 10  # encode this much once; longer clips repeat it (stream copy, no re-encode)


def make_clip(
    path: Path,
    seconds: float,
    width: int = 1920,
    height: int = 1080,
    fps: int = 25,
    bitrate_kbps: int = 4000,
    bframes: int = 0,
) -> Path:
    """Pre-encode a camera-like clip with the ffmpeg CLI: H.264 (keyframe every second, ``bframes``
    B-frames: libx264's own choice of pyramid) + G.711 A-law.

    QuickTime (.mov) is used because MP4 and MPEG-TS cannot carry A-law; the path's suffix is
    replaced by ``.mov``. Cached: an existing file is returned as is, so encode once per
    parameter set (put them in the name). Long clips repeat a 10 s encoding by stream copy.
    """
    path = path.with_suffix(".mov")
    if path.is_file() and path.stat().st_size > 0:
        return path
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SimulatorUnavailable("ffmpeg not found; apt-get install ffmpeg")
    path.parent.mkdir(parents=True, exist_ok=True)
    base_seconds = min(float(seconds), _BASE_SECONDS)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        base = Path(tmp) / "base.mov"
        _ffmpeg(
            ffmpeg, "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
            "-t", f"{base_seconds:.3f}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", f"{bitrate_kbps}k", "-maxrate", f"{bitrate_kbps}k", "-bufsize", f"{bitrate_kbps}k",
            "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0", "-bf", str(bframes),
            "-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1", str(base),
        )  # fmt: skip
        out = Path(tmp) / "clip.mov"
        if seconds > base_seconds:
            loop = ["-stream_loop", "-1", "-i", str(base), "-c", "copy", "-t", f"{seconds:.3f}", str(out)]
            _ffmpeg(ffmpeg, *loop)
        else:
            out = base
        os.replace(out, path)  # atomic: a cached clip is always complete
    logger.info("made clip %s (%.0f s, %dx%d, %d kbps)", path, seconds, width, height, bitrate_kbps)
    return path


def make_picture_clip(
    path: Path,
    seconds: float,
    mode: PictureMode = "normal",
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    label: str = "clip",
    python: str = SYSTEM_PYTHON,
    timeout: float = 300.0,
) -> Path:
    """The live camera's own picture and H.264 encoder, ``seconds`` long, written at file speed
    into MPEG-TS (``gst_camera.py --clip``): what a recorder would have stored, without waiting."""
    if not Path(python).exists():
        raise SimulatorUnavailable(f"{python} not found; apt-get install {DEBIAN_PACKAGES}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    cmd = [
        python, "-I", str(GST_CAMERA_SCRIPT), "--clip", str(path), "--seconds", f"{seconds:.3f}",
        "--mode", mode, "--width", str(width), "--height", str(height), "--fps", str(fps), "--label", label,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=timeout)
    if result.returncode == _EXIT_MISSING:
        raise SimulatorUnavailable(f"GStreamer is incomplete: {result.stderr.strip()[-500:]}")
    if result.returncode != 0 or not path.is_file():
        raise SimulatorError(f"clip failed ({result.returncode}): {result.stderr.strip()[-1000:]}")
    return path


def _ffmpeg(ffmpeg: str, *args: str) -> None:
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SimulatorError(f"ffmpeg failed ({result.returncode}): {result.stderr.strip()[-1000:]}")
