"""Object storage back ends: a local directory or an S3 bucket (MinIO, any S3-compatible store).

Both satisfy :class:`domain.types.BlobReader`. File-system, ``minio`` and ``urllib3`` errors are mapped
here: StorageUnavailable (endpoint down, timeout, 5xx), StorageError (refused), IntegrityError (stored
bytes differ from their size/hash), NotFoundError, ValidationFailed (key refused), SpoolError (the
local source file could not be read). Keys are checked by :func:`validate_key`; nothing is ever
written outside the storage root or bucket.
"""

from __future__ import annotations

from domain.errors import ConfigError
from pipeline.settings import StorageConfig
from pipeline.storage.base import (
    CHUNK,
    MAX_KEY_LENGTH,
    S3_PART_SIZE,
    STORED_DIR_MODE,
    STORED_FILE_MODE,
    Digest,
    SourceMismatch,
    Storage,
    StoredObject,
    digest_file,
    fsync_dir,
    validate_key,
    validate_prefix,
)
from pipeline.storage.local import LocalStorage
from pipeline.storage.s3 import S3Storage

__all__ = [
    "CHUNK",
    "MAX_KEY_LENGTH",
    "S3_PART_SIZE",
    "STORED_DIR_MODE",
    "STORED_FILE_MODE",
    "Digest",
    "LocalStorage",
    "S3Storage",
    "SourceMismatch",
    "Storage",
    "StoredObject",
    "digest_file",
    "fsync_dir",
    "open_storage",
    "validate_key",
    "validate_prefix",
]


def open_storage(cfg: StorageConfig) -> Storage:
    """The storage back end the settings describe."""
    if cfg.kind == "local":
        return LocalStorage(cfg.path)
    if not (cfg.endpoint and cfg.bucket and cfg.access_key and cfg.secret_key):
        raise ConfigError("storage kind 's3' needs endpoint, bucket, access_key and secret_key")
    access, secret = cfg.access_key.get_secret_value(), cfg.secret_key.get_secret_value()
    return S3Storage(
        cfg.endpoint,
        cfg.bucket,
        access,
        secret,
        cfg.region,
        connect_timeout=cfg.connect_timeout_seconds,
        read_timeout=cfg.read_timeout_seconds,
    )
