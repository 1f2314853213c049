"""Finding the RTSP session's socket among the process's descriptors (plain sockets, no camera)."""

from __future__ import annotations

import socket

from recorders.stall_watchdog import session_socket, socket_fds


def test_only_the_tcp_connection_to_the_camera_is_taken() -> None:
    """Sockets other threads open meanwhile (a Unix socket pair, a second TCP connection) are
    ignored; a Unix socket's peer is a path string and once crashed every worker starting at once."""
    with socket.create_server(("127.0.0.1", 0)) as camera, socket.create_server(("127.0.0.1", 0)) as other:
        port = camera.getsockname()[1]
        before = socket_fds()
        left, right = socket.socketpair(socket.AF_UNIX)
        to_camera = socket.create_connection(("127.0.0.1", port))
        elsewhere = socket.create_connection(other.getsockname())
        try:
            assert session_socket(f"rtsp://127.0.0.1:{port}/live", before) == to_camera.fileno()
            assert session_socket("rtsp://127.0.0.1:1/live", before) is None  # no such peer
        finally:
            for s in (left, right, to_camera, elsewhere):
                s.close()


def test_a_reused_descriptor_number_is_still_found() -> None:
    """Another thread closes a socket and the session's new socket gets the same number: it is
    new all the same (another inode), so it is found."""
    with socket.create_server(("127.0.0.1", 0)) as camera:
        port = camera.getsockname()[1]
        old = socket.socket()
        number = old.fileno()
        before = socket_fds()
        old.close()  # another camera's session ends...
        to_camera = socket.create_connection(("127.0.0.1", port))  # ...and this one opens
        try:
            assert to_camera.fileno() == number  # the lowest free number: the one just closed
            assert session_socket(f"rtsp://127.0.0.1:{port}/live", before) == to_camera.fileno()
        finally:
            to_camera.close()
