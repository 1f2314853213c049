"""Schema migrations on SQLite and PostgreSQL, and the engine settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from domain.errors import ConfigError, IndexStoreError
from indexer.database import (
    alembic_config,
    create_engine_for,
    current_revision,
    downgrade,
    normalize_url,
    upgrade,
)
from indexer.models import Base, from_us, to_us
from tests.indexer.factories import T0

ALL_TABLES = set(Base.metadata.tables)
HEAD = ScriptDirectory.from_config(alembic_config(create_engine_for("sqlite://"))).get_current_head()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the packaged migrations are found from any working directory
    engine = create_engine_for(db_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == HEAD
        assert _tables(engine) == ALL_TABLES
        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert _tables(engine) == set()
        upgrade(db_url)  # by URL this time
        assert current_revision(engine) == HEAD
        assert _tables(engine) == ALL_TABLES
    finally:
        engine.dispose()


def test_migrated_schema_matches_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_required_indexes_exist(engine: Engine) -> None:
    insp = inspect(engine)

    def cols(table: str) -> set[tuple[str, ...]]:
        return {tuple(str(c) for c in ix["column_names"]) for ix in insp.get_indexes(table)}

    assert {("camera_id", "start_us", "end_us"), ("camera_id", "end_us")} <= cols("segments")
    assert ("camera_id", "start_us") in cols("segment_runs") or insp.get_pk_constraint("segment_runs")[
        "constrained_columns"
    ] == ["camera_id", "start_us"]
    assert ("camera_id", "start_us") in cols("gaps")
    assert {("subject_id", "time_us"), ("room_id", "time_us")} <= cols("procedure_events")
    assert ("subject_id", "time_us") in cols("location_observations")
    assert ("room_id", "time_us") in cols("location_observations")  # 0011: search by room finds stays
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("segments")}
    assert ("storage_key",) in uniques
    # revision 0002: search
    assert ("time_us",) in cols("procedure_events")
    assert ("type", "time_us", "case_id") in cols("procedure_events")  # 0006 replaced 0002's (type, time_us)
    assert ("name",) in cols("subjects")  # 0006: trigram GIN on PostgreSQL, empty partial index on SQLite
    assert ("officer_id",) in cols("procedure_event_officers")
    assert ("officer_id",) in cols("case_officers")
    assert ("subject_id",) in cols("imported_file_subjects")


def test_revision_0002_steps_up_and_down(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        upgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        upgrade(engine, "0002")
        assert current_revision(engine) == "0002"
        names = {ix["name"] for ix in inspect(engine).get_indexes("procedure_events")}
        assert {"ix_procedure_events_type_time", "ix_procedure_events_time_us"} <= names
        pattern = [
            ix for ix in inspect(engine).get_indexes("cases") if ix["name"] == "ix_cases_case_number_pattern"
        ]
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                ddl = conn.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_cases_case_number_pattern'")
                ).scalar_one()
            assert "text_pattern_ops" in ddl
        else:
            assert pattern and pattern[0]["dialect_options"].get("sqlite_where") is not None
        downgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        names = {ix["name"] for ix in inspect(engine).get_indexes("procedure_events")}
        assert "ix_procedure_events_type_time" not in names
        assert "ix_case_officers_officer_id" not in {
            ix["name"] for ix in inspect(engine).get_indexes("case_officers")
        }
        at_0001 = _tables(engine)  # later revisions' tables are gone, every 0001 table is there
        assert at_0001 <= ALL_TABLES and {"users", "credentials"}.isdisjoint(at_0001)
        assert {"segments", "gaps", "cases", "procedure_events", "audit_log"} <= at_0001
    finally:
        engine.dispose()


def test_revision_0011_steps_up_and_down(db_url: str) -> None:
    engine = create_engine_for(db_url)

    def names() -> set[str]:
        return {str(ix["name"]) for ix in inspect(engine).get_indexes("location_observations")}

    try:
        upgrade(engine, "0010_audit_key")
        assert "ix_location_observations_room_time" not in names()
        upgrade(engine, "0011_observation_room_time")
        assert "ix_location_observations_room_time" in names()
        downgrade(engine, "0010_audit_key")
        assert current_revision(engine) == "0010_audit_key"
        assert "ix_location_observations_room_time" not in names()
        assert "ix_location_observations_subject_time" in names()  # only 0011's index went
    finally:
        engine.dispose()


def test_audit_log_is_append_only(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (time_us, user_name, action, object, prev_hash, hash)"
                " VALUES (1, 'alice', 'view', 'segment:x', NULL, 'h1')"
            )
        )
    for statement in ("UPDATE audit_log SET action = 'edit'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT action FROM audit_log")).scalars().all() == ["view"]


def test_downgrade_of_unknown_revision_is_an_index_error(engine: Engine) -> None:
    with pytest.raises(IndexStoreError):
        downgrade(engine, "nonexistent")


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "index.db"
    engine = create_engine_for(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert int(conn.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 10_000
        assert db.exists()
    finally:
        engine.dispose()


def test_postgresql_urls_use_psycopg3() -> None:
    assert normalize_url("postgresql://u@h:5432/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"
    with pytest.raises(ConfigError):
        normalize_url("mysql://u@h/d")
    with pytest.raises(ConfigError):
        normalize_url("not a url")


def test_microsecond_conversion_is_exact() -> None:
    for us in (0, 1, 1_772_352_000_123_456, -1):
        assert to_us(from_us(us)) == us
    assert to_us(T0) == 1_772_352_000_000_000
    with pytest.raises(ValueError):
        to_us(T0.replace(tzinfo=None))
