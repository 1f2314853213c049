"""Fixtures for pipeline tests: a real S3 endpoint (moto's server as a subprocess over HTTP: the
fixtures of tests/support/s3server.py), and the exporter's scenario footage built once per test
module."""

from __future__ import annotations

import pytest

from tests.exporter.scenario import Scenario, build_scenario
from tests.support.s3server import make_s3, s3_server, s3_server_private, s3_storage

__all__ = ["make_s3", "s3_server", "s3_server_private", "s3_storage"]  # fixtures, used by name


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The exporter's scenario (tests/exporter/scenario.py): real segments of five cameras and a
    gap, built once for each test module that asks for it."""
    return build_scenario(tmp_path_factory.mktemp("scenario"))
