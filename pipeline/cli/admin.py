"""``vaudit users ...`` and ``vaudit audit ...``: accounts and the audit trail, from the shell.

Registered on the main command by :func:`register`. Passwords are read from standard input
(one line; asked twice without echo on a terminal), never from the command line, where they
would show in ``ps`` and the shell history.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from pipeline.cli.common import (
    EXIT_CANNOT_RUN,
    EXIT_PROBLEM,
    ConfigOpt,
    console,
    fail,
    failing,
    open_index,
    settings_or_exit,
)

users_app = typer.Typer(no_args_is_help=True, help="User accounts and roles.")
audit_app = typer.Typer(no_args_is_help=True, help="The keyed, anchored audit trail.")

ROLE_HELP = "officer, supervisor, legal, admin or court_viewer"


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password / 密码: ")
        if getpass.getpass("again / 再次输入: ") != first:
            fail("the passwords differ / 两次输入的密码不一致")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
    config: ConfigOpt,
    officer: Annotated[
        str | None, typer.Option("--officer", help="Badge number of the officer this account belongs to")
    ] = None,
) -> None:
    """Create an account; the password is read from standard input."""
    from indexer.users import UserStore
    from pipeline.storage.anchors import audit_log

    password = _read_password()
    settings = settings_or_exit(config)
    with open_index(settings) as engine, failing():
        who = UserStore(engine, min_password=settings.auth.min_password_length).create_user(
            name, role, password, officer_badge=officer
        )
        audit_log(settings, engine).append(
            getpass.getuser(),
            "user_create",
            f"user:{who.name}",
            "cli",
            {"role": who.role, "via": "vaudit users"},
        )
    console.print(f"user {who.name} ({who.role}) created / 已创建用户")


@users_app.command("list")
def list_users(config: ConfigOpt) -> None:
    """Every account with its role."""
    from indexer.users import UserStore

    with open_index(settings_or_exit(config)) as engine:
        for who, active, _created in UserStore(engine).list_users():
            state = "" if active else " (disabled)"
            print(f"{who.name}\t{who.role}\t{who.officer_id or ''}{state}")


@audit_app.command("verify")
def verify_audit(config: ConfigOpt) -> None:
    """Check the audit trail: every row against its keyed hash, and the trail against the signed
    anchors of its head kept in the evidence storage; name the first row that does not fit, or
    the rows cut off the end (exit 1)."""
    from pipeline.storage import open_storage
    from pipeline.storage.anchors import verify_audit as check

    settings = settings_or_exit(config)
    with open_index(settings) as engine, failing(EXIT_CANNOT_RUN):
        verdict = check(settings, engine, open_storage(settings.storage))
    report = verdict.chain
    for problem in verdict.anchor_problems:
        print(f"BROKEN: {problem}")
    if not report.ok:
        print(f"BROKEN: {report.reason}")
    if not verdict.ok:
        raise typer.Exit(EXIT_PROBLEM)
    keyed = (
        f"keyed with audit key {report.key_id} from row {report.keyed_from}"
        if report.key_id
        else "not keyed yet"
    )
    newest = report.newest_anchor
    anchored = (
        f"{report.anchors} anchor(s) agree, the newest written {newest.written} at row {newest.seq}; "
        f"{report.unanchored} row(s) after it are not anchored yet"
        if newest is not None
        else "no anchor yet: rows cut off the end would not be found"
    )
    console.print(
        f"[green]OK[/green]: {report.rows} audit rows, chain intact ({keyed}); {anchored}; "
        f"last hash {report.last_hash}"
    )
