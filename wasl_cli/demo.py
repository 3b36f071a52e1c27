"""`wasl demo`: load the demo data set, so a newcomer sees every page with real content."""
from __future__ import annotations

from typing import Any

import click
from tqdm import tqdm


def register(main: click.Group) -> None:
    """Add this module's commands to ``main``."""
    main.add_command(demo)


@click.command()
@click.option("--households", default=1500, show_default=True, type=click.IntRange(1, 100_000),
              help="How many households to generate (about 4.5 patients each).")
@click.option("--db", "db_name", default=None, help="The records database (default: $WASL_RECORDS_DB or wasl).")
def demo(households: int, db_name: str | None) -> None:
    """Load the demo data set (areas, accounts, households, visits, a campaign) and print the demo accounts.

    Running it again changes nothing. Demo passwords are fixed: never load it beside real patients.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from api import create_app
    from models import db
    from sync.errors import CouchError
    from sync.records.demo import load_demo

    app = create_app()
    name = db_name or app.config["WASL_RECORDS_DB"]
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, unit="doc", desc=stage, disable=None)
        bar.update(done - bar.n)

    with app.app_context():
        try:
            result = load_demo(name, households=households, progress=progress)
        except CouchError as exc:
            raise click.ClickException(exc.reason) from None
        except SQLAlchemyError:
            # The driver's message may hold the database URL and its password: never print it.
            raise click.ClickException("the database refused the demo: is it reachable, and has `wasl init` "
                                       "created the tables?") from None
        finally:
            for bar in bars.values():
                bar.close()
            db.session.remove()
            db.engine.dispose()
    if result.loaded:
        click.echo(f"demo loaded into '{name}' in {result.seconds:.1f} s: "
                   + ", ".join(f"{what} {n}" for what, n in result.counts.items()))
    else:
        click.echo(f"the demo is already loaded in '{name}'; nothing changed")
    click.echo("demo accounts (sign in at /login):")
    shown: set[str] = set()
    for role, user, password in result.accounts:
        if role == "chw" and role in shown:
            continue
        shown.add(role)
        where = " (and the other chw-* accounts, same password)" if role == "chw" else ""
        click.echo(f"  {role:<11} {user:<24} {password}{where}")
