"""`wasl demo` (filled in by the demo-data work)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add this module's commands to ``main``."""
