"""Fixtures for recorder tests: a collecting sink, simulated cameras, workers in threads.

They live in tests/support/recording.py (the fault suite uses them too); importing the fixtures
here registers them for this package, and the helpers stay importable from here.
"""

from tests.support.recording import (
    TEST_OPTIONS,
    CollectingSink,
    cameras,
    decode_segment,
    running,
    sink,
)

__all__ = ["TEST_OPTIONS", "CollectingSink", "cameras", "decode_segment", "running", "sink"]
