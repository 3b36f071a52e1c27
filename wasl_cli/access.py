"""`wasl area`, `wasl assign`, `wasl unassign`, `wasl user list|disable`: areas, assignments, accounts.

Every refusal (a bad path, an unknown kind, a missing parent, an unknown user, an
assignment that does not fit the user's role) is one plain line and changes nothing.
"""
from __future__ import annotations

import getpass
from typing import Any

import click


def cli_actor() -> str:
    """Who ran the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "cli"


def _run(fn: Any) -> Any:
    from . import _in_app
    return _in_app(fn)


@click.group("area")
def area() -> None:
    """Areas: regions, districts, villages and facilities."""


@area.command("add")
@click.argument("path")
@click.option("--kind", required=True, help="region, district, village or facility.")
@click.option("--name", required=True, help="The display name.")
def area_add(path: str, kind: str, name: str) -> None:
    """Add an area under its existing parent, e.g. north/district-3/village-12."""
    from sync.access import add_area
    info = _run(lambda: add_area(path, kind, name, actor=cli_actor()))
    click.echo(f"area {info.path} added ({info.kind}: {info.name})")


@area.command("list")
def area_list() -> None:
    """Show the areas as an indented tree."""
    from sync.access import list_areas
    areas = _run(list_areas)
    if not areas:
        click.echo("no areas yet: add one with `wasl area add PATH --kind region --name NAME`")
    for info in areas:
        indent = "  " * info.path.count("/")
        click.echo(f"{indent}{info.path}  {info.name} ({info.kind})")


@click.command("assign")
@click.argument("user_name", metavar="USER")
@click.argument("area_path", metavar="AREA")
@click.option("--as", "kind", required=True, help="works_in (a CHW's village), supervises (any area),"
              " clinic (a clinician's facility).")
def assign_cmd(user_name: str, area_path: str, kind: str) -> None:
    """Assign a user to an area."""
    from sync.access import assign
    _run(lambda: assign(user_name, area_path, kind, actor=cli_actor()))
    click.echo(f"{user_name} {kind} {area_path}")


@click.command("unassign")
@click.argument("user_name", metavar="USER")
@click.argument("area_path", metavar="AREA")
@click.option("--as", "kind", default=None, help="Only this kind of assignment (default: all kinds).")
def unassign_cmd(user_name: str, area_path: str, kind: str | None) -> None:
    """Remove a user's assignment to an area."""
    from sync.access import unassign
    removed = _run(lambda: unassign(user_name, area_path, kind, actor=cli_actor()))
    click.echo(f"{user_name} unassigned from {area_path} ({removed} assignment{'s' if removed != 1 else ''})")


@click.command("list")
def user_list() -> None:
    """List accounts: name, roles, disabled, assignments."""
    from sync.access import list_users
    for info in _run(list_users):
        roles = ",".join(info.roles) or "-"
        state = "disabled" if info.disabled else "enabled"
        places = ", ".join(f"{kind} {path}" for path, kind in info.assignments) or "-"
        click.echo(f"{info.name:<20} {roles:<24} {state:<9} {places}")


@click.command("disable")
@click.argument("name")
def user_disable(name: str) -> None:
    """Disable an account: its password, sessions and devices are refused from now on."""
    from sync.access import disable_user
    devices = _run(lambda: disable_user(name, actor=cli_actor()))
    click.echo(f"user {name} disabled; {devices} device{'s' if devices != 1 else ''} refused from now on"
               " (retire or revoke them to have their copies wiped)")


def register(main: click.Group) -> None:
    """Add this module's commands to ``main`` (and ``list``/``disable`` to its ``user`` group)."""
    main.add_command(area)
    main.add_command(assign_cmd)
    main.add_command(unassign_cmd)
    user = main.commands["user"]
    assert isinstance(user, click.Group)
    user.add_command(user_list)
    user.add_command(user_disable)
