"""Security headers on every response, and the sign-in failure counter behind throttling.

Headers: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
``X-Frame-Options: DENY`` on every response; a strict ``Content-Security-Policy`` on
HTML; ``Cache-Control: no-store`` under ``/api/`` and on HTML, so patient data never
sits in a shared cache. CouchDB endpoints keep their own caching headers.

Throttling: ``FailureCounter`` remembers failed password checks per account name and
per client address for a sliding window; ``api.couch.auth`` refuses further checks with
429 ``too_many_requests`` and ``Retry-After`` while a key has reached the limit. The
counter lives in the memory of one process (one per app), so with N worker processes
the effective limit is N times the configured one.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

from flask import Flask, Response, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from sync.errors import CouchError

from .errors import couch_error_response

CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
EXTENSION = "wasl.signin_failures"
MAX_KEYS = 100_000  # names and addresses remembered at once; beyond it unlocked ones are forgotten


class TooManyRequests(CouchError):
    """Too many failed sign-ins for an account or from an address; retry after ``retry_after`` s."""

    status, error = 429, "too_many_requests"
    reason = "Too many failed sign-in attempts"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Too many failed sign-in attempts; try again in {self.retry_after} seconds.")


class FailureCounter:
    """Failures per key in a sliding window; a key with ``limit`` failures in it is locked."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: Hashable, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def wait(self, *keys: Hashable) -> float:
        """Seconds until every key is below the limit again (0: not locked)."""
        with self._lock:
            now = self.clock()
            waits = [0.0]
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    waits.append(times[len(times) - self.limit] + self.window - now)
            return max(waits)

    def fail(self, *keys: Hashable) -> bool:
        """Count a failure against each key; True when this failure locked one of them."""
        with self._lock:
            now = self.clock()
            if len(self._failures) > MAX_KEYS:
                self._prune(now)
            locked = False
            for key in keys:
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                locked = locked or len(times) == self.limit
            return locked

    def forget(self, key: Hashable) -> None:
        """Clear a key's failures (a right password clears its account's count)."""
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            if len(self._recent(key, now)) < self.limit:
                del self._failures[key]


def failures() -> FailureCounter:
    """The current app's sign-in failure counter."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def _headers(resp: Response) -> Response:
    headers = resp.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    html = resp.mimetype == "text/html"
    if html:
        headers.setdefault("Content-Security-Policy", CSP)
    if html or request.path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"
    return resp


def _too_many(exc: TooManyRequests) -> Response:
    resp = couch_error_response(exc.status, exc.error, exc.reason)
    resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


def init_app(app: Flask) -> None:
    """Install the security headers, the 429 handler and the sign-in failure counter on ``app``."""
    app.config.setdefault("WASL_SIGNIN_MAX_FAILURES", 5)
    app.config.setdefault("WASL_SIGNIN_WINDOW_SECONDS", 15 * 60)
    app.config.setdefault("WASL_PROXY_HOPS", int(os.environ.get("WASL_PROXY_HOPS", "0")))
    app.extensions[EXTENSION] = FailureCounter(int(app.config["WASL_SIGNIN_MAX_FAILURES"]),
                                               float(app.config["WASL_SIGNIN_WINDOW_SECONDS"]))
    hops = int(app.config["WASL_PROXY_HOPS"])
    if hops:
        # Behind a reverse proxy every client would share the proxy's address, and one
        # bad password would lock everyone out: trust that many X-Forwarded-For hops.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.after_request(_headers)
    app.register_error_handler(TooManyRequests, _too_many)
