"""``vaudit reindex``: rebuild the index's segment and gap rows from the sidecars in storage."""

from __future__ import annotations

from collections.abc import Iterator

import typer
from rich.progress import Progress

from pipeline.cli.common import EXIT_PROBLEM, ConfigOpt, console, open_index, settings_or_exit


def reindex(config: ConfigOpt) -> None:
    """Rebuild segment and gap rows from the sidecars in storage (after losing the database)."""
    from indexer.reindex import reindex as rebuild
    from indexer.reindex import sidecars_in
    from indexer.segment_store import SegmentStore
    from pipeline.storage import open_storage

    settings = settings_or_exit(config)
    storage = open_storage(settings.storage)
    with open_index(settings) as engine:
        store = SegmentStore(engine)
        store.sync_rooms(settings.room_rows())

        def counted(
            items: Iterator[tuple[str, bytes | Exception]],
        ) -> Iterator[tuple[str, bytes | Exception]]:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("reading sidecars from storage", total=None)
                for item in items:
                    progress.advance(task)
                    yield item

        report = rebuild(store, counted(sidecars_in(storage)))
    console.print(
        f"segments: {report.segments_added} added, {report.segments_present} already indexed; "
        f"gaps: {report.gaps_added} added, {report.gaps_present} already indexed"
    )
    for problem in [*report.malformed, *report.conflicts, *report.chain_breaks]:
        console.print(f"[yellow]problem:[/yellow] {problem}")
    if not report.clean:
        raise typer.Exit(EXIT_PROBLEM)


def register(app: typer.Typer) -> None:
    app.command()(reindex)
