"""The whole-product tests' fixtures: a private S3 server (``s3_server_private``)."""

from tests.support.s3server import s3_server_private

__all__ = ["s3_server_private"]  # the fixture, used by name
