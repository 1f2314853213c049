"""``vaudit export``, ``vaudit verify`` and ``vaudit key-fingerprint``: court discs from the shell,
and checking them against their signed manifest and the centre's key."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from domain.errors import VauditError
from pipeline.cli.common import (
    EXIT_CANNOT_RUN,
    EXIT_PROBLEM,
    ConfigOpt,
    console,
    fail,
    failing,
    open_index,
    settings_or_exit,
    when,
)

MEDIA = ("dvd5", "dvd9", "bd25", "bd50")


def export(
    config: ConfigOpt,
    case: Annotated[str, typer.Option("--case", help="Case number (or case id)")],
    subject: Annotated[str, typer.Option("--subject", help="Subject id, ID number or name")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the disc images")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Start (ISO 8601); default: first footage")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="End (ISO 8601); default: end of last interrogation")
    ] = None,
    media: Annotated[str | None, typer.Option(help="dvd5, dvd9, bd25, bd50 (default from config)")] = None,
    allow_unexplained: Annotated[
        bool, typer.Option(help="Export even if some seconds have no footage or gap")
    ] = False,
    exported_by: Annotated[str, typer.Option(help="Name recorded in the chain of custody")] = "",
) -> None:
    """Write the full-process disc images (master and working copy) of one subject of a case."""
    from pipeline.export.service import ExportService, ExportSpec
    from pipeline.storage import open_storage

    settings = settings_or_exit(config)
    if media is not None and media not in MEDIA:
        fail(f"--media {media!r}: choose dvd5, dvd9, bd25 or bd50")
    spec = ExportSpec(
        case=case,
        subject=subject,
        start=when(from_, "from"),
        end=when(to, "to"),
        media=media,
        allow_unexplained=allow_unexplained,
        exported_by=exported_by or getpass.getuser(),
    )
    with open_index(settings) as engine:
        try:
            service = ExportService(settings, engine, open_storage(settings.storage))
            with Progress(console=console) as progress:
                task = progress.add_task("exporting", total=1.0)

                def report(fraction: float, message: str) -> None:
                    progress.update(task, completed=fraction, description=message[:60])

                result = service.run(spec, out_dir=out, progress=report)
        except VauditError as exc:
            console.print(f"[red]error:[/red] {exc.message}")
            for interval in exc.details.get("intervals", []) or []:
                console.print(f"  unexplained: {interval}")
            raise typer.Exit(EXIT_PROBLEM) from exc
    for path in (*result.master_images, *result.working_images):
        print(path)


def verify(
    images: Annotated[list[Path], typer.Argument(help="Disc image(s) of one export (all discs of a set)")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Also check against the centre's key, the index and the sidecars"
        ),
    ] = None,
    expect_key: Annotated[
        str | None,
        typer.Option(
            "--expect-key",
            help="The centre's key fingerprint (as on its statements); "
            "default with --config: [export] key_fingerprint or the signing key's",
        ),
    ] = None,
) -> None:
    """Check disc images against their signed manifest and the centre's key (and, with --config,
    the index's capture hashes and the recorder's sidecars)."""
    from exporter.disc_verifier import grouped, normal_fingerprint
    from exporter.verify import verify_images
    from pipeline.ops.logs import configure_logging

    missing = [p for p in images if not p.is_file()]
    if missing:
        fail(f"no such image: {', '.join(map(str, missing))}")
    expected = None if expect_key is None else normal_fingerprint(expect_key)
    if expect_key is not None and expected is None:
        fail(f"--expect-key wants the 64 hex digits of a SHA-256 fingerprint, not {expect_key!r}")
    if config is not None:
        from indexer.database import create_engine_for
        from pipeline.export.service import ExportService
        from pipeline.storage import open_storage

        settings = settings_or_exit(config)
        engine = create_engine_for(settings.database.url)
        try:
            with failing(EXIT_CANNOT_RUN):
                service = ExportService(settings, engine, open_storage(settings.storage))
                report = service.verify(images, expected)
                expected = expected or service.expected_fingerprint()
        finally:
            engine.dispose()
    else:
        configure_logging("warning", json_lines=False)
        report = verify_images(images, expected_key=expected)
    for note in report.notes:
        console.print(f"note: {note}")
    if report.fingerprint:  # one line, never wrapped: compared by eye with the statement's
        print(f"key fingerprint / 公钥指纹: {grouped(report.fingerprint)}")
    if report.ok:
        against = (
            "the centre's key"
            if expected is not None
            else "a key not compared with the centre's: give --expect-key or --config"
        )
        console.print(
            f"[green]OK[/green]: {report.files_checked} files on {len(report.discs)} disc(s) match the signed "
            f"manifest, signed by {against}",
            soft_wrap=True,
        )
        return
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    raise typer.Exit(EXIT_PROBLEM)


def key_fingerprint(config: ConfigOpt) -> None:
    """Print the centre's signing key fingerprint (the key is made if missing): what its statements
    show, what to publish, and what `verify.py --expect-key` and `vaudit verify --expect-key` take."""
    from exporter.disc_verifier import grouped
    from exporter.signing import public_key_info
    from pipeline.storage.anchors import centre_signing_key

    settings = settings_or_exit(config)
    with failing(EXIT_CANNOT_RUN):
        key = centre_signing_key(settings)
    assert key is not None
    fp = public_key_info(key).fingerprint
    configured = settings.export.key_fingerprint
    if configured is not None and configured != fp:
        console.print(f"[red]warning:[/red] [export] key_fingerprint {grouped(configured)} is not this key's")
    print(grouped(fp))
    print(fp)


def register(app: typer.Typer) -> None:
    app.command()(export)
    app.command()(verify)
    app.command("key-fingerprint")(key_fingerprint)
