"""``vaudit retention run | hold | release``: the retention job and legal holds from the shell."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOpt, console, fail, failing, open_index, settings_or_exit

retention_app = typer.Typer(no_args_is_help=True, help="WORM evidence: the retention job and legal holds.")


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")


@retention_app.command("run")
def run_job(
    config: ConfigOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing")
    ] = False,
) -> None:
    """Delete footage whose retention ended and that no legal hold covers; audit every deletion."""
    from pipeline.ops.health_alerts import AlertBook
    from pipeline.retention import RetentionJob, check_capacity
    from pipeline.storage.anchors import audit_log
    from pipeline.storage.worm import RetentionPolicy, open_evidence_storage
    from recorders.clock import SystemClock

    settings = settings_or_exit(config)
    with open_index(settings) as engine, failing():
        storage = open_evidence_storage(settings)
        job = RetentionJob(
            engine, storage, RetentionPolicy.from_settings(settings), audit_log(settings, engine)
        )
        report = job.run(dry_run=dry_run, user=settings.retention.job_user)
        alerts = AlertBook(SystemClock())
        fraction = check_capacity(storage, settings.retention, alerts)
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
    config: ConfigOpt,
    case: Annotated[str, typer.Option("--case", help="Case number (or case id)")],
    reason: Annotated[str, typer.Option(help="Why (court order, appeal, ...)")] = "",
    by: Annotated[str, typer.Option(help="Who places the hold (audit trail)")] = "",
) -> None:
    """Place a legal hold on a case's footage (its subjects' rooms over their stays, and clips)."""
    from indexer.case_store import CaseStore
    from pipeline.retention import LegalHolds
    from pipeline.storage.anchors import audit_log
    from pipeline.storage.worm import EvidenceStorage, open_evidence_storage

    settings = settings_or_exit(config)
    with open_index(settings) as engine, failing():
        storage = open_evidence_storage(settings)
        if not isinstance(storage, EvidenceStorage):
            fail("legal holds need retention.object_lock = true")
        case_id = CaseStore(engine).case_id(case)
        result = LegalHolds(engine, storage, audit_log(settings, engine)).place(
            case_id, by or getpass.getuser(), reason
        )
    print(f"hold {result.hold_id}: {len(result.keys)} object(s), {result.applied} held in storage")


@retention_app.command("release")
def release(
    config: ConfigOpt,
    hold_id: Annotated[int, typer.Option("--hold", help="Hold id (from `vaudit retention hold`)")],
    by: Annotated[str, typer.Option(help="Who releases it (audit trail)")] = "",
) -> None:
    """Release a legal hold (objects another active hold covers stay held)."""
    from pipeline.retention import LegalHolds
    from pipeline.storage.anchors import audit_log
    from pipeline.storage.worm import EvidenceStorage, open_evidence_storage

    settings = settings_or_exit(config)
    with open_index(settings) as engine, failing():
        storage = open_evidence_storage(settings)
        if not isinstance(storage, EvidenceStorage):
            fail("legal holds need retention.object_lock = true")
        result = LegalHolds(engine, storage, audit_log(settings, engine)).release(
            hold_id, by or getpass.getuser()
        )
    print(f"hold {result.hold_id} released: {result.applied} object(s) no longer held")
