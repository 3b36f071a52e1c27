"""``wasl duplicates``: patients that may be one person, and a supervisor's decision on each pair.

``scan`` scores every patient of the records database (a worker keeps the list current
afterwards); ``merge`` prints the merge id that ``undo`` takes.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click
from tqdm import tqdm

DB_OPTION = click.option("--db", "db_name", default=None, help="Database  [default: the records database]")
BY_OPTION = click.option("--by", "actor", required=True, help="The account taking the decision.")


def _run(fn: Any) -> Any:
    """Run ``fn`` inside the app; the store's refusals become one plain line."""
    from . import _in_app
    return _in_app(fn)


def _records_db(db_name: str | None) -> str:
    from flask import current_app
    return db_name or str(current_app.config["WASL_RECORDS_DB"])


def _known_user(name: str) -> None:
    from models import User, db
    if db.session.scalar(db.select(User.id).where(User.name == name)) is None:
        raise click.ClickException(f"No user named {name!r} (--by names the account deciding)")


def _name(body: dict[str, Any] | None) -> str:
    if body is None:
        return "(deleted)"
    return " ".join(str(body.get(k)) for k in ("given_name", "family_name") if body.get(k)) or "(no name)"


def _pages(db_name: str, page: int) -> Iterator[dict[str, dict[str, Any] | None]]:
    """Every document, a page at a time: patients' winning bodies, None for anything else."""
    from sync.records.duplicates import bodies_of_rows
    from sync.rows import docs_after
    from sync.store import get_database

    database_id, since = get_database(db_name).id, 0
    while rows := docs_after(database_id, since, page):
        since = rows[-1].seq
        # What is not a patient now is passed as gone: it drops any keys it had.
        yield {d: b if b and b.get("type") == "patient" else None for d, b in bodies_of_rows(rows).items()}


def scan_database(db_name: str, page: int = 500) -> tuple[int, int]:
    """Refresh the candidates of every patient; return (documents read, pairs scored).

    Every patient's keys are written first, so the second pass scores each pair once:
    from the page that comes first, skipping partners an earlier page already paired.
    """
    from models import db
    from sync.records.duplicates import refresh_bodies, write_keys
    from sync.store import get_database

    database = get_database(db_name)
    total = database.doc_count + database.doc_del_count
    read = scored = 0
    with tqdm(total=total, unit="doc", desc="blocking keys", disable=None) as bar:
        for bodies in _pages(db_name, page):
            write_keys(db_name, bodies)
            db.session.commit()
            bar.update(len(bodies))
    done: set[str] = set()
    with tqdm(total=total, unit="doc", desc="scoring pairs", disable=None) as bar:
        for bodies in _pages(db_name, page):
            scored += refresh_bodies(db_name, bodies, skip=done)
            done.update(bodies)
            read += len(bodies)
            bar.update(len(bodies))
    return read, scored


@click.group()
def duplicates() -> None:
    """Duplicate patients: list candidates, scan, merge, undo a merge, dismiss a pair."""


@duplicates.command("list")
@DB_OPTION
@click.option("--state", type=click.Choice(("open", "merged", "dismissed")), default="open", show_default=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
def list_pairs(db_name: str | None, state: str, limit: int) -> None:
    """List candidate pairs, best score first, with what each field contributed."""
    from sync.records.duplicates import list_candidates, winning_bodies

    def rows() -> list[str]:
        name = _records_db(db_name)
        found = list_candidates(name, state=state, limit=limit)
        bodies = winning_bodies(name, [p for c in found for p in (c.patient_a, c.patient_b)])
        return [f"{c.score:.3f}  {c.patient_a} ({_name(bodies[c.patient_a])})  {c.patient_b}"
                f" ({_name(bodies[c.patient_b])})  {json.dumps(c.reasons, sort_keys=True)}" for c in found]
    lines = _run(rows)
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo(f"no {state} duplicate candidates")


@duplicates.command("scan")
@DB_OPTION
def scan(db_name: str | None) -> None:
    """Score every patient against those sharing a blocking key (the worker keeps it current)."""
    read, scored = _run(lambda: scan_database(_records_db(db_name)))
    click.echo(f"scanned {read} documents, scored {scored} pairs")


@duplicates.command("merge")
@click.argument("survivor")
@click.argument("merged")
@DB_OPTION
@BY_OPTION
def merge(survivor: str, merged: str, db_name: str | None, actor: str) -> None:
    """Merge patient MERGED into SURVIVOR; MERGED becomes a redirect, and nothing is lost."""
    from sync.records.patientmerge import merge_patients

    def run() -> tuple[int, list[str]]:
        _known_user(actor)
        done = merge_patients(_records_db(db_name), survivor, merged, actor)
        return done.id, sorted(done.filled_fields)
    merge_id, filled = _run(run)
    click.echo(f"merged {merged} into {survivor} (merge {merge_id}; filled: {', '.join(filled) or 'nothing'});"
               f" undo with: wasl duplicates undo {merge_id} --by USER")


@duplicates.command("undo")
@click.argument("merge_id", type=int)
@BY_OPTION
def undo(merge_id: int, actor: str) -> None:
    """Undo a merge: both patients get back their own values, edits made since are kept."""
    from sync.records.patientmerge import undo_merge

    def run() -> tuple[str, str]:
        _known_user(actor)
        done = undo_merge(merge_id, actor)
        return done.survivor_id, done.merged_id
    survivor, merged = _run(run)
    click.echo(f"undid merge {merge_id}: {merged} and {survivor} are two patients again")


@duplicates.command("dismiss")
@click.argument("a")
@click.argument("b")
@DB_OPTION
@BY_OPTION
def dismiss_pair(a: str, b: str, db_name: str | None, actor: str) -> None:
    """Mark a candidate pair as two different people (it reopens only if its score rises)."""
    from sync.records.duplicates import dismiss

    def run() -> None:
        _known_user(actor)
        dismiss(_records_db(db_name), a, b, actor)
    _run(run)
    click.echo(f"dismissed {a} and {b}: not duplicates")


def register(main: click.Group) -> None:
    """Add this module's commands to ``main``."""
    main.add_command(duplicates)
