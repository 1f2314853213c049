"""Camera simulator: real RTSP servers (GStreamer on Debian's python3) for tests, demos and benchmarks.

``camera`` starts live cameras and file-mode servers, ``centre`` starts every camera of a centre
configuration, ``hostile`` provides misbehaving RTSP servers for robustness tests.
"""

from pipeline.simulator.camera import (
    FileCameraServer,
    SimulatedCamera,
    SimulatorError,
    SimulatorUnavailable,
    free_port,
    make_clip,
)

__all__ = [
    "FileCameraServer",
    "SimulatedCamera",
    "SimulatorError",
    "SimulatorUnavailable",
    "free_port",
    "make_clip",
]
