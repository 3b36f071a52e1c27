"""Serving an app on a loopback port in a thread, for tests and benchmarks alike."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from sync.store import stop_waiters, stopping


@contextmanager
def serve_in_thread(app: Any, *, quiet: bool = False) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL (``quiet``: no line per request)."""
    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # Track request threads so server_close() can join them: a feed still waiting must
    # end, and give its database connection back, before the database goes away.
    server.daemon_threads = False
    server.block_on_close = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        stop_waiters()
        # serve_forever closes the server itself on its way out, joining the request
        # threads; only once that is done may waiting feeds be allowed to wait again.
        thread.join(30)
        server.server_close()
        stopping.clear()
