"""The Wasl server: an application factory in the flaskr shape."""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from models import db


def _secret_key(instance_path: str) -> str:
    """A per-installation secret kept in the instance folder, never in the repository."""
    path = os.path.join(instance_path, "secret_key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path) as f:
            return f.read().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    with open(path) as f:  # read back: a concurrent worker may have raced us
        return f.read().strip()


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create and configure an instance of the Wasl server."""
    app = Flask(__name__, instance_relative_config=True,
                instance_path=os.environ.get("WASL_INSTANCE") or None)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get("WASL_DATABASE_URL")
        or "sqlite:///" + os.path.join(app.instance_path, "wasl.sqlite"),
        WASL_ADMIN_PASSWORD=os.environ.get("WASL_ADMIN_PASSWORD"),
        WASL_RECORDS_DB=os.environ.get("WASL_RECORDS_DB", "wasl"),
        MAX_CONTENT_LENGTH=int(os.environ.get("WASL_MAX_REQUEST_BYTES", 64 * 1024 * 1024)),
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.update(test_config)
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # A server connection can drop between requests; a file cannot.
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = os.environ.get("WASL_SECRET_KEY") or _secret_key(app.instance_path)
    from .sessions import CookieSessions
    app.session_interface = CookieSessions()
    db.init_app(app)
    from . import compression, errors, ratelimit, security
    compression.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    ratelimit.init_app(app)
    from .audit import bp as audit_bp
    from .couch import bp as couch_bp
    from .devices import bp as devices_bp
    app.register_blueprint(audit_bp)
    from .rest import bp as rest_bp
    from .web import bp as web_bp
    app.register_blueprint(rest_bp)
    app.register_blueprint(web_bp)
    # Forms of the pages carry a CSRF token; the CouchDB and device APIs authenticate
    # every request (Basic, Bearer) and PouchDB cannot send one. The REST API checks it
    # itself for cookie-signed writes (api.rest).
    app.register_blueprint(couch_bp)
    app.register_blueprint(devices_bp)
    csrf = CSRFProtect(app)
    for blueprint in (couch_bp, devices_bp, audit_bp, rest_bp):
        csrf.exempt(blueprint)
    from .inflate import InflateRequests
    app.wsgi_app = InflateRequests(app.wsgi_app, int(app.config["MAX_CONTENT_LENGTH"]))  # type: ignore[method-assign]
    return app
