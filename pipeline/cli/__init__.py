"""The ``vaudit`` command. Each command builds the one Settings object and passes it down; what
the commands share (the configuration option, opening the index, failing, exit codes) is in
:mod:`pipeline.cli.common`, one module per group of commands beside it."""

from __future__ import annotations

import os
import sys

import typer

from domain.errors import VauditError
from pipeline.cli import admin, export, index, retention, run
from pipeline.cli.common import EXIT_CANNOT_RUN, console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="video-audit: record case-handling centres, index cases, export verifiable court discs.",
)
run.register(app)  # vaudit run | recorder | simulate | demo
index.register(app)  # vaudit reindex
export.register(app)  # vaudit export | verify | key-fingerprint
admin.register(app)  # vaudit users ... | audit ...
retention.register(app)  # vaudit retention run | hold | release

# Everything the service writes without a mode of its own (exports, the SQLite index, key and
# journal directories) is closed to other accounts; the spool and storage set theirs explicitly.
UMASK = 0o027


def main() -> None:
    os.umask(UMASK)
    try:
        app()
    except VauditError as exc:  # anything not handled by a command
        console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(EXIT_CANNOT_RUN)


if __name__ == "__main__":
    main()
