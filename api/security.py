"""Security headers on every response, and the sign-in failure counter behind throttling.

Headers: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
``X-Frame-Options: DENY`` on every response; a strict ``Content-Security-Policy`` on
HTML; ``Cache-Control: no-store`` under ``/api/`` and on HTML, so patient data never
sits in a shared cache. CouchDB endpoints keep their own caching headers.

Throttling: ``FailureCounter`` remembers failed password checks per account name and
per client address for a sliding window; ``api.couch.auth`` refuses further checks with
429 ``too_many_requests`` and ``Retry-After`` while a key has reached the limit. The
failures are rows of ``signin_failure`` in the app's database, so every worker process
and every server on that database counts together.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections.abc import Callable, Hashable

from flask import Flask, Response, current_app, request
from sqlalchemy import delete, insert, select
from werkzeug.middleware.proxy_fix import ProxyFix

from models import db
from models.limits import SignInFailure
from sync.errors import CouchError

from .errors import couch_error_response

CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
EXTENSION = "wasl.signin_failures"


class TooManyRequests(CouchError):
    """Too many failed sign-ins for an account or from an address; retry after ``retry_after`` s."""

    status, error = 429, "too_many_requests"
    reason = "Too many failed sign-in attempts"

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Too many failed sign-in attempts; try again in {self.retry_after} seconds.")


class FailureCounter:
    """Failures per key in a sliding window, in the database (``signin_failure``): every process counts together.

    A key with ``limit`` failures inside the window is locked. ``clock`` gives epoch
    seconds (the rows are shared between processes, so not a monotonic clock).
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.time) -> None:
        self.limit, self.window, self.clock = limit, window, clock

    @staticmethod
    def _key(key: Hashable) -> str:
        # Keyed with the app's secret: a plain hash of a name could be looked up in a list of names.
        secret = str(current_app.config["SECRET_KEY"]).encode()
        return hmac.new(secret, repr(key).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def _recent(self, key: str, now: float) -> list[float]:
        """The newest ``limit`` failure times of ``key`` inside the window, newest first."""
        return list(db.session.scalars(select(SignInFailure.at).where(
            SignInFailure.key == key, SignInFailure.at > now - self.window)
            .order_by(SignInFailure.at.desc()).limit(self.limit)))

    def wait(self, *keys: Hashable) -> float:
        """Seconds until every key is below the limit again (0: not locked)."""
        now = self.clock()
        waits = [0.0]
        for key in keys:
            times = self._recent(self._key(key), now)
            if len(times) >= self.limit:
                waits.append(times[-1] + self.window - now)
        return max(waits)

    def fail(self, *keys: Hashable) -> bool:
        """Count a failure against each key; True when this failure locked one of them."""
        now = self.clock()
        hashed = [self._key(k) for k in keys]
        db.session.commit()  # end the read: on SQLite a reader cannot start to write once another has
        try:
            db.session.execute(delete(SignInFailure).where(SignInFailure.at <= now - self.window))
            db.session.execute(insert(SignInFailure), [{"key": k, "at": now} for k in hashed])
            counts = [len(self._recent(k, now)) for k in hashed]
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        return any(n == self.limit for n in counts)

    def forget(self, key: Hashable) -> None:
        """Clear a key's failures (a right password clears its account's count)."""
        hashed = self._key(key)
        if db.session.scalar(select(SignInFailure.id).where(SignInFailure.key == hashed).limit(1)) is None:
            return  # the usual case: no write at all
        db.session.commit()
        try:
            db.session.execute(delete(SignInFailure).where(SignInFailure.key == hashed))
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise


def failures() -> FailureCounter:
    """The current app's sign-in failure counter."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


# On every reply, including those refused before the app runs (api/inflate.py).
EVERY_REPLY = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"))


def _headers(resp: Response) -> Response:
    headers = resp.headers
    for name, value in EVERY_REPLY:
        headers.setdefault(name, value)
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
