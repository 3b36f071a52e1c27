"""Tests of the crypto layer: known answers, round trips, tampering, misuse."""
from __future__ import annotations

import json
import pathlib
from typing import Any

VECTORS_PATH = pathlib.Path(__file__).with_name("vectors.json")


def vectors() -> dict[str, Any]:
    """Return the checked-in known-answer vectors."""
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return data
