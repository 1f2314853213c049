"""The project's one error tree. Third-party errors are mapped to these at the boundary
(the module that calls the library), so callers never catch library exceptions.

Each error carries a stable ``code`` (used by the API's fixed JSON error shape) and an
HTTP status that the API handler uses when the error reaches it.
"""

from __future__ import annotations

from typing import Any


class VauditError(Exception):
    """Root of every error this project raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigError(VauditError):
    """The centre configuration or settings are invalid."""

    code = "config_invalid"
    http_status = 500


class NotFoundError(VauditError):
    code = "not_found"
    http_status = 404


class ValidationFailed(VauditError):
    """Input was well-formed JSON but its content is refused (field-level messages in details)."""

    code = "validation_failed"
    http_status = 422


class Unauthenticated(VauditError):
    """No credential, or one that is unknown, expired or revoked."""

    code = "unauthorized"
    http_status = 401


class Forbidden(VauditError):
    """The caller is known but may not do this (role, or a case that is not theirs)."""

    code = "forbidden"
    http_status = 403


class CsrfFailed(Forbidden):
    """A cookie session's write without the right X-CSRF-Token (a form from another site)."""

    code = "csrf_failed"


class TooManyAttempts(VauditError):
    """Refused for now after repeated failures (login throttling); ``retry_after_seconds`` in details."""

    code = "too_many_requests"
    http_status = 429


class ConflictError(VauditError):
    code = "conflict"
    http_status = 409


class ServiceStopped(VauditError):
    """A service asked for work while it stops (the node is shutting down): ask again later."""

    code = "service_stopped"
    http_status = 503


class PayloadTooLarge(VauditError):
    code = "payload_too_large"
    http_status = 413


class StreamError(VauditError):
    """A camera stream could not be opened or read (network, protocol, or garbage data)."""

    code = "stream_error"
    http_status = 502


class StreamClosed(StreamError):
    """The camera ended the stream or the connection dropped."""

    code = "stream_closed"


class StreamStalled(StreamError):
    """The connection stayed open but no packets arrived in time."""

    code = "stream_stalled"


class SpoolError(VauditError):
    """The local spool could not be written (disk full, permissions)."""

    code = "spool_error"
    http_status = 507


class StorageError(VauditError):
    """The configured storage (local directory or S3) refused or failed an operation."""

    code = "storage_error"
    http_status = 503


class StorageUnavailable(StorageError):
    code = "storage_unavailable"


class IntegrityError(VauditError):
    """Stored bytes do not match their recorded size or hash."""

    code = "integrity_error"
    http_status = 500


class IndexStoreError(VauditError):
    """The index database failed (connection, migration, constraint)."""

    code = "index_error"
    http_status = 503
