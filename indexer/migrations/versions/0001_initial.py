"""Initial schema: rooms, cameras, segments, gaps, cases, people, events, imports, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Written out in full (not ``metadata.create_all``) so this revision never changes when the
models move on; later revisions alter it. ``tests/indexer`` checks that a database migrated to
head matches ``indexer.models`` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

_APPEND_ONLY_MSG = "audit_log is append-only"
_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log
    BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MSG}'); END"""
    for verb in ("UPDATE", "DELETE")
]
_PG_FUNCTION = f"""CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MSG}'; END $$"""
_PG_TRIGGER = """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"""


def _create_audit_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for ddl in _SQLITE_TRIGGERS:
            op.execute(ddl)


def _drop_audit_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{verb}")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object", sa.String(length=500), nullable=False),
        sa.Column("client_addr", sa.String(length=64), nullable=True),
        sa.Column("detail", JSON_DOC, nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    op.create_table(
        "cases",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("case_number", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("charge", sa.String(length=200), nullable=False),
        sa.Column("recording_mandatory", sa.Boolean(), nullable=False),
        sa.Column("serious", sa.Boolean(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("case_number", name=op.f("uq_cases_case_number")),
    )
    op.create_table(
        "centres",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_centres")),
    )
    op.create_table(
        "officers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("badge_number", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_officers")),
        sa.UniqueConstraint("badge_number", name=op.f("uq_officers_badge_number")),
    )
    op.create_table(
        "case_officers",
        sa.Column("case_id", BIG_ID, nullable=False),
        sa.Column("officer_id", BIG_ID, nullable=False),
        sa.Column("role", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_officers_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_case_officers_officer_id_officers")
        ),
        sa.PrimaryKeyConstraint("case_id", "officer_id", name=op.f("pk_case_officers")),
    )
    op.create_table(
        "imported_files",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("officer_id", BIG_ID, nullable=True),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("original_name", sa.String(length=500), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sm3", sa.String(length=64), nullable=True),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.Column("container", sa.String(length=16), nullable=False),
        sa.Column("video_codec", sa.String(length=16), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("audio_codec", sa.String(length=16), nullable=True),
        sa.Column("audio_sample_rate", sa.Integer(), nullable=True),
        sa.Column("audio_channels", sa.Integer(), nullable=True),
        sa.Column("evidence", sa.Boolean(), nullable=False),
        sa.Column("imported_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_imported_files_officer_id_officers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imported_files")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_imported_files_storage_key")),
    )
    op.create_index("ix_imported_files_device_start", "imported_files", ["device_id", "start_us"])
    op.create_index("ix_imported_files_officer_start", "imported_files", ["officer_id", "start_us"])
    op.create_table(
        "rooms",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("centre_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["centre_id"], ["centres.id"], name=op.f("fk_rooms_centre_id_centres")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rooms")),
    )
    op.create_table(
        "subjects",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("case_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id_number", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("minor", sa.Boolean(), nullable=False),
        sa.Column("guardian_name", sa.String(length=200), nullable=True),
        sa.Column("wristband_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint("role IN ('suspect', 'witness', 'victim')", name=op.f("ck_subjects_role")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_subjects_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
    )
    op.create_index("ix_subjects_case_id", "subjects", ["case_id"])
    op.create_index("ix_subjects_id_number", "subjects", ["id_number"])
    op.create_index("ix_subjects_wristband_id", "subjects", ["wristband_id"])
    op.create_table(
        "cameras",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("max_segment_us", sa.BigInteger(), nullable=False),
        sa.Column("max_gap_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_cameras_room_id_rooms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cameras")),
    )
    op.create_index("ix_cameras_room_id", "cameras", ["room_id"])
    op.create_table(
        "imported_file_subjects",
        sa.Column("file_id", BIG_ID, nullable=False),
        sa.Column("subject_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["imported_files.id"], name=op.f("fk_imported_file_subjects_file_id_imported_files")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_imported_file_subjects_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("file_id", "subject_id", name=op.f("pk_imported_file_subjects")),
    )
    op.create_table(
        "location_observations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("subject_id", BIG_ID, nullable=True),
        sa.Column("officer_id", BIG_ID, nullable=True),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "source IN ('wristband', 'face', 'manual')", name=op.f("ck_location_observations_source")
        ),
        sa.CheckConstraint(
            "subject_id IS NOT NULL OR officer_id IS NOT NULL", name=op.f("ck_location_observations_who")
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_location_observations_officer_id_officers")
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_location_observations_room_id_rooms")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_location_observations_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_location_observations")),
        sa.UniqueConstraint("client_id", name=op.f("uq_location_observations_client_id")),
    )
    op.create_index(
        "ix_location_observations_officer_time", "location_observations", ["officer_id", "time_us"]
    )
    op.create_index(
        "ix_location_observations_subject_time", "location_observations", ["subject_id", "time_us"]
    )
    op.create_table(
        "procedure_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.String(length=64), nullable=True),
        sa.Column("case_id", BIG_ID, nullable=True),
        sa.Column("subject_id", BIG_ID, nullable=True),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_procedure_events_case_id_cases")),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_procedure_events_room_id_rooms")),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_procedure_events_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedure_events")),
        sa.UniqueConstraint("client_id", name=op.f("uq_procedure_events_client_id")),
    )
    op.create_index("ix_procedure_events_case_id", "procedure_events", ["case_id"])
    op.create_index("ix_procedure_events_room_time", "procedure_events", ["room_id", "time_us"])
    op.create_index("ix_procedure_events_subject_time", "procedure_events", ["subject_id", "time_us"])
    op.create_table(
        "gaps",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("gap_id", sa.String(length=200), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("indexed_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("end_us >= start_us", name=op.f("ck_gaps_time_order")),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], name=op.f("fk_gaps_camera_id_cameras")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gaps")),
        sa.UniqueConstraint("gap_id", name=op.f("uq_gaps_gap_id")),
    )
    op.create_index("ix_gaps_camera_start", "gaps", ["camera_id", "start_us"])
    op.create_table(
        "procedure_event_officers",
        sa.Column("event_id", BIG_ID, nullable=False),
        sa.Column("officer_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["procedure_events.id"],
            name=op.f("fk_procedure_event_officers_event_id_procedure_events"),
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_procedure_event_officers_officer_id_officers")
        ),
        sa.PrimaryKeyConstraint("event_id", "officer_id", name=op.f("pk_procedure_event_officers")),
    )
    op.create_table(
        "segments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sm3", sa.String(length=64), nullable=True),
        sa.Column("prev_sha256", sa.String(length=64), nullable=True),
        sa.Column("clock_source", sa.String(length=16), nullable=False),
        sa.Column("container", sa.String(length=16), nullable=False),
        sa.Column("video_codec", sa.String(length=16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("audio_codec", sa.String(length=16), nullable=True),
        sa.Column("audio_sample_rate", sa.Integer(), nullable=True),
        sa.Column("audio_channels", sa.Integer(), nullable=True),
        sa.Column("packets", sa.BigInteger(), nullable=False),
        sa.Column("recovered", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("indexed_us", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("source IN ('camera', 'bodycam')", name=op.f("ck_segments_source")),
        sa.CheckConstraint("end_us >= start_us", name=op.f("ck_segments_time_order")),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], name=op.f("fk_segments_camera_id_cameras")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_segments_storage_key")),
    )
    op.create_index("ix_segments_camera_end", "segments", ["camera_id", "end_us"])
    op.create_index("ix_segments_camera_start", "segments", ["camera_id", "start_us"])
    _create_audit_triggers()


def downgrade() -> None:
    _drop_audit_triggers()
    op.drop_index("ix_segments_camera_start", table_name="segments")
    op.drop_index("ix_segments_camera_end", table_name="segments")
    op.drop_table("segments")
    op.drop_table("procedure_event_officers")
    op.drop_index("ix_gaps_camera_start", table_name="gaps")
    op.drop_table("gaps")
    op.drop_index("ix_procedure_events_subject_time", table_name="procedure_events")
    op.drop_index("ix_procedure_events_room_time", table_name="procedure_events")
    op.drop_index("ix_procedure_events_case_id", table_name="procedure_events")
    op.drop_table("procedure_events")
    op.drop_index("ix_location_observations_subject_time", table_name="location_observations")
    op.drop_index("ix_location_observations_officer_time", table_name="location_observations")
    op.drop_table("location_observations")
    op.drop_table("imported_file_subjects")
    op.drop_index("ix_cameras_room_id", table_name="cameras")
    op.drop_table("cameras")
    op.drop_index("ix_subjects_wristband_id", table_name="subjects")
    op.drop_index("ix_subjects_id_number", table_name="subjects")
    op.drop_index("ix_subjects_case_id", table_name="subjects")
    op.drop_table("subjects")
    op.drop_table("rooms")
    op.drop_index("ix_imported_files_officer_start", table_name="imported_files")
    op.drop_index("ix_imported_files_device_start", table_name="imported_files")
    op.drop_table("imported_files")
    op.drop_table("case_officers")
    op.drop_table("officers")
    op.drop_table("centres")
    op.drop_table("cases")
    op.drop_table("audit_log")
