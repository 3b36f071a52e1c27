"""How gunicorn serves Wasl: one place for its options, used by ``wasl serve`` and the benchmarks.

- ``gthread`` workers: a held long-poll feed occupies one thread, not a whole process.
- ``--worker-tmp-dir`` in shared memory when the machine has it: each worker touches a file
  there on every turn of its event loop (gunicorn's liveness signal); on a disk file system
  that write can wait behind the journal, and every request waits with it.
- ``--keep-alive 75``: gunicorn's default of 2 s is shorter than one 2G round trip plus a
  lost packet, so a tablet's next batch found its connection closed and paid a new TCP
  handshake (1.6 s on the lossy link of docs/lossy.md), or failed and retried.
- ``--no-control-socket``: nothing here uses gunicorn's control interface, and every gunicorn
  on a machine would otherwise share one socket path under ``~/.gunicorn``.
- gunicorn passes the raw request URI (``RAW_URI``), which the CouchDB routes need to tell
  ``%2F`` in a document id from ``/`` (api.couch.params.raw_segments).
"""
from __future__ import annotations

import os

SHM = "/dev/shm"
KEEP_ALIVE_S = 75


def gunicorn_command(gunicorn: str, host: str, port: int, *, workers: int, threads: int,
                     timeout: int = 120) -> list[str]:
    """The gunicorn command line serving ``wsgi:app`` on ``host``:``port``."""
    cmd = [gunicorn, "-k", "gthread", "-w", str(workers), "--threads", str(threads), "-b", f"{host}:{port}",
           "--timeout", str(timeout), "--graceful-timeout", "5", "--keep-alive", str(KEEP_ALIVE_S),
           "--no-control-socket"]
    if os.path.isdir(SHM) and os.access(SHM, os.W_OK):
        cmd += ["--worker-tmp-dir", SHM]
    return cmd + ["wsgi:app"]
