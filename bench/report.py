"""The figures a benchmark hands to the combined table (bench/all.py): one row per figure.

Each benchmark's ``--json FILE`` writes ``{"bench": name, "rows": [row, ...]}``, a row being
``{"figure", "value", "target", "met"}``: ``value`` and ``target`` already formatted for a
person (units included), ``met`` true, false, or null where the figure has no target.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def row(figure: str, value: str, target: str | None = None, met: bool | None = None) -> dict[str, Any]:
    """One figure of the combined table."""
    return {"figure": figure, "value": value, "target": target, "met": met}


def write(path: str | Path | None, bench: str, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` (nothing when no path was asked for)."""
    if path:
        Path(path).write_text(json.dumps({"bench": bench, "rows": rows}, indent=1) + "\n")
