"""Stopping a server started in its own process group (gunicorn's master and its workers), for tests and benchmarks."""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def stop_group(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send ``sig`` to ``proc``'s whole process group and reap ``proc``; SIGKILL the group after ``timeout`` s.

    ``proc`` must have been started with ``start_new_session=True``: its pid is its group's id.
    """
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout)
