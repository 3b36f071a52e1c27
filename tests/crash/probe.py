"""Reads of the database under test from the test process: the worker's progress, resolutions, merges."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from models import Database, db
from models.conflicts import Resolution
from models.duplicates import PatientMerge
from models.health import WorkerCheckpoint

from .processes import DB_NAME

QUIET_TIMEOUT_S = 60


class Probe:
    """Reads of the database the kill controller and the end of the run need (each in its own app context)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def _read(self, fn: Callable[[], Any]) -> Any:
        with self.app.app_context():
            try:
                return fn()
            finally:
                db.session.remove()

    def positions(self) -> tuple[int, int]:
        """(worker checkpoint, update_seq) as committed now."""
        return self._read(lambda: (
            db.session.scalar(select(WorkerCheckpoint.seq).where(WorkerCheckpoint.db_name == DB_NAME)) or 0,
            db.session.scalar(select(Database.update_seq).where(Database.name == DB_NAME)) or 0))

    def resolutions(self) -> int:
        """Resolution rows written so far."""
        return int(self._read(lambda: db.session.scalar(select(func.count()).select_from(Resolution))) or 0)

    def merges(self) -> int:
        """Patient merges committed."""
        return int(self._read(lambda: db.session.scalar(select(func.count()).select_from(PatientMerge))) or 0)

    def wait_quiet(self, settle: float = 0.6) -> None:
        """Until the worker's checkpoint equals update_seq and stays so for ``settle`` seconds."""
        deadline, since = time.monotonic() + QUIET_TIMEOUT_S, None
        while True:
            done, seq = self.positions()
            now = time.monotonic()
            since = (since or now) if done == seq else None
            if since is not None and now - since >= settle:
                return
            assert now < deadline, f"the worker did not catch up: checkpoint {done}, update_seq {seq}"
            time.sleep(0.05)
