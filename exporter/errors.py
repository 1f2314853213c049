"""Typed errors of the exporter, all under the project's one error tree (domain.errors)."""

from __future__ import annotations

from domain.errors import ConflictError, IntegrityError, ValidationFailed, VauditError
from domain.types import TimeRange, iso


class UnexplainedFootage(ValidationFailed):
    """Seconds of the export range are neither footage nor a gap with a recorded cause.

    The court disc must account for every second (docs/design/domain.md rules 1 and 3), so building a
    disc is refused unless the operator explicitly allows it; the intervals are in the message
    so the operator can find the hole without a second query.
    """

    code = "export_unexplained"

    def __init__(self, intervals: list[TimeRange]) -> None:
        spans = ", ".join(f"[{iso(r.start)}, {iso(r.end)})" for r in intervals)
        super().__init__(
            f"{len(intervals)} unexplained interval(s) in the export range: {spans}",
            intervals=[{"start": iso(r.start), "end": iso(r.end)} for r in intervals],
        )
        self.intervals = intervals


class ExportRangeError(ValidationFailed):
    """The export range cannot be derived or is empty."""

    code = "export_range_invalid"


class DiscCapacityError(ValidationFailed):
    """A file (or the fixed per-disc content) does not fit on the chosen medium."""

    code = "disc_capacity"


class ExportCancelled(ConflictError):
    """The job was cancelled; partial output has been removed."""

    code = "export_cancelled"


class SourceIntegrityError(IntegrityError):
    """A stored segment does not match its capture-time hash; the export refuses to seal it."""

    code = "source_integrity"


class MediaError(VauditError):
    """A source could not be demuxed/decoded or an output could not be written."""

    code = "export_media_error"
    http_status = 500


class ToolMissing(VauditError):
    """A system tool the disc needs (Chromium for the PDF statement) is not installed."""

    code = "export_tool_missing"
    http_status = 500
