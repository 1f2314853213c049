"""``vaudit retention run | hold | release``: the retention job and legal holds from the shell."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from domain.errors import VauditError

console = Console(stderr=True)
retention_app = typer.Typer(no_args_is_help=True, help="WORM evidence: the retention job and legal holds.")
_Config = Annotated[Path, typer.Option("--config", "-c", help="Centre configuration file (TOML)")]


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")


def _fail(exc: VauditError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(1)


@retention_app.command("run")
def run_job(
    config: _Config,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing")
    ] = False,
) -> None:
    """Delete footage whose retention ended and that no legal hold covers; audit every deletion."""
    from indexer.database import create_engine_for, upgrade
    from pipeline.cli import _settings
    from pipeline.ops.health_alerts import AlertBook
    from pipeline.ops.logs import configure_logging
    from pipeline.retention import RetentionJob, check_capacity
    from pipeline.storage.anchors import audit_log
    from pipeline.storage.worm import RetentionPolicy, open_evidence_storage
    from recorders.clock import SystemClock

    settings = _settings(config)
    configure_logging("warning", json_lines=False)
    engine = create_engine_for(settings.database.url)
    try:
        upgrade(engine)
        storage = open_evidence_storage(settings)
        job = RetentionJob(engine, storage, RetentionPolicy.from_settings(settings), audit_log(settings, engine))
        report = job.run(dry_run=dry_run, user=settings.retention.job_user)
        alerts = AlertBook(SystemClock())
        fraction = check_capacity(storage, settings.retention, alerts)
    except VauditError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    for key in report.deleted:
        print(f"{verb} {key}")
    for key, why in report.refused:
        print(f"kept {key}: {why}")
    console.print(
        f"{verb} {len(report.deleted)} segment(s), {report.bytes_freed} bytes; {len(report.refused)} refused "
        f"by storage; {report.held} expired but under legal hold"
        + (f"; storage {fraction:.0%} full" if fraction is not None else "")
    )
    for alert in alerts.open_alerts():
        console.print(f"[yellow]alert:[/yellow] {alert.message}")


@retention_app.command("hold")
def hold(
    config: _Config,
    case: Annotated[str, typer.Option("--case", help="Case number (or case id)")],
    reason: Annotated[str, typer.Option(help="Why (court order, appeal, ...)")] = "",
    by: Annotated[str, typer.Option(help="Who places the hold (audit trail)")] = "",
) -> None:
    """Place a legal hold on a case's footage (its subjects' rooms over their stays, and clips)."""
    from indexer.database import create_engine_for, upgrade
    from indexer.models import Case
    from pipeline.cli import _settings
    from pipeline.retention import LegalHolds
    from pipeline.storage.anchors import audit_log
    from pipeline.storage.worm import EvidenceStorage, open_evidence_storage

    settings = _settings(config)
    engine = create_engine_for(settings.database.url)
    try:
        upgrade(engine)
        storage = open_evidence_storage(settings)
        if not isinstance(storage, EvidenceStorage):
            console.print("[red]error:[/red] legal holds need retention.object_lock = true")
            raise typer.Exit(2)
        with engine.connect() as conn:
            found = conn.execute(select(Case.id).where(Case.case_number == case)).scalar()
        if found is None and case.isdigit():
            found = int(case)
        if found is None:
            console.print(f"[red]error:[/red] no case {case!r}")
            raise typer.Exit(1)
        result = LegalHolds(engine, storage, audit_log(settings, engine)).place(int(found), by or getpass.getuser(), reason)
    except VauditError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    print(f"hold {result.hold_id}: {len(result.keys)} object(s), {result.applied} held in storage")


@retention_app.command("release")
def release(
    config: _Config,
    hold_id: Annotated[int, typer.Option("--hold", help="Hold id (from `vaudit retention hold`)")],
    by: Annotated[str, typer.Option(help="Who releases it (audit trail)")] = "",
) -> None:
    """Release a legal hold (objects another active hold covers stay held)."""
    from indexer.database import create_engine_for, upgrade
    from pipeline.cli import _settings
    from pipeline.retention import LegalHolds
    from pipeline.storage.anchors import audit_log
    from pipeline.storage.worm import EvidenceStorage, open_evidence_storage

    settings = _settings(config)
    engine = create_engine_for(settings.database.url)
    try:
        upgrade(engine)
        storage = open_evidence_storage(settings)
        if not isinstance(storage, EvidenceStorage):
            console.print("[red]error:[/red] legal holds need retention.object_lock = true")
            raise typer.Exit(2)
        result = LegalHolds(engine, storage, audit_log(settings, engine)).release(hold_id, by or getpass.getuser())
    except VauditError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    print(f"hold {result.hold_id} released: {result.applied} object(s) no longer held")
