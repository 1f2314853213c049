"""The whole-product tests' fixtures: the S3 server of the pipeline tests (``s3_server_private``)."""

from tests.pipeline.conftest import s3_server_private

__all__ = ["s3_server_private"]
