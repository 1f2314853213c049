"""Fixtures for pipeline tests: a real S3 endpoint (moto's server as a subprocess over HTTP), and the
exporter's scenario footage built once per test module."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.storage import S3Storage
from tests.exporter.scenario import Scenario, build_scenario
from tests.support.s3server import S3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto server for the session; tests isolate themselves with their own bucket."""
    server = S3Server(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_server_private(tmp_path: Path) -> Iterator[S3Server]:
    """A server of the test's own, for tests that pause or stop it."""
    server = S3Server(log_path=tmp_path / "moto.log")
    server.start()
    yield server
    server.stop()


S3Factory = Callable[..., S3Storage]


def _make_s3_storage(server: S3Server, bucket: str | None = None, **kwargs: float) -> S3Storage:
    return S3Storage(
        server.endpoint,
        bucket or f"t-{uuid.uuid4().hex[:16]}",
        server.access_key,
        server.secret_key,
        server.region,
        **kwargs,
    )


@pytest.fixture
def make_s3() -> S3Factory:
    """``make_s3(server, bucket=None, connect_timeout=..., read_timeout=...)`` -> S3Storage."""
    return _make_s3_storage


@pytest.fixture
def s3_storage(s3_server: S3Server) -> S3Storage:
    """S3 storage on the shared server, in a fresh bucket (created on first use)."""
    return _make_s3_storage(s3_server, connect_timeout=2.0, read_timeout=5.0)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The exporter's scenario (tests/exporter/scenario.py): real segments of five cameras and a
    gap, built once for each test module that asks for it."""
    return build_scenario(tmp_path_factory.mktemp("scenario"))
