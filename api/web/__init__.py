"""Server-rendered pages for supervisors, organisers and clinicians (Flask and Jinja).

Pages work on a slow link and a small screen: no CDN, one small stylesheet served by the
app, no JavaScript needed. Signing in sets a session cookie; every form carries a CSRF
token (Flask-WTF's CSRFProtect). Each module of this package adds its pages to ``bp``;
the package imports every module, so a new file needs no registration. Every page has a
JSON twin in ``api.rest``.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, session, url_for
from sqlalchemy import select

from models import User, db
from sync.errors import CouchError
from sync.scope import is_admin

from ..couch.auth import UserCtx, check_password

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/web")
# (endpoint, label, roles): the header's links, added by each page module with ``add_nav``.
NAV: list[tuple[str, str, tuple[str, ...]]] = []
HOME_BY_ROLE = (("supervisor", "web.visit_log"), ("organiser", "web.campaigns"),
                ("clinician", "web.referrals"), ("admin", "web.visit_log"), ("_admin", "web.visit_log"))


def add_nav(endpoint: str, label: str, *roles: str) -> None:
    """Show a link to ``endpoint`` in the header for users holding one of ``roles``."""
    NAV.append((endpoint, label, roles))


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    def nav_links(user: UserCtx) -> list[tuple[str, str]]:
        return [(endpoint, label) for endpoint, label, roles in NAV
                if is_admin(user.roles) or not roles or set(roles) & set(user.roles)]
    return {"nav_links": nav_links}


def signed_in() -> UserCtx | None:
    """The page user from the session cookie; a disabled or deleted account is signed out."""
    if "web_user" in g:
        return g.web_user  # type: ignore[no-any-return]
    name = session.get("user")
    user = db.session.scalar(select(User).where(User.name == name)) if isinstance(name, str) else None
    g.web_user = None if user is None or user.disabled else UserCtx(user.name, tuple(user.roles or ()))
    if g.web_user is None:
        session.pop("user", None)
    return g.web_user  # type: ignore[no-any-return]


def page(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Require a signed-in user holding one of ``roles`` (admins always pass)."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = signed_in()
            if user is None:
                return redirect(url_for("web.login", next=request.full_path))
            if roles and not is_admin(user.roles) and not set(roles) & set(user.roles):
                abort(403)
            return view(*args, **kwargs)
        return guarded
    return decorate


def home_for(user: UserCtx) -> str:
    for role, endpoint in HOME_BY_ROLE:
        if role in user.roles and endpoint in _endpoints():
            return url_for(endpoint)
    return url_for("web.signed_in_home")


def _endpoints() -> set[str]:
    from flask import current_app
    return set(current_app.view_functions)


@bp.get("/")
def index() -> Response:
    """Send a signed-in user to their main page, anyone else to sign in."""
    user = signed_in()
    return redirect(home_for(user) if user else url_for("web.login"))  # type: ignore[return-value]


@bp.get("/home")
@page()
def signed_in_home() -> str:
    """A plain landing page for roles with no page of their own yet."""
    return render_template("home.html", user=signed_in())


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with a name and password (the same accounts as replication)."""
    error = None
    if request.method == "POST":
        name, password = request.form.get("name", ""), request.form.get("password", "")
        try:
            user = check_password(name, password, via="session")
        except CouchError as exc:  # too many attempts
            user, error = None, exc.reason
        if user is not None:
            session.clear()
            session["user"] = user.name
            target = request.args.get("next", "")
            # Only same-site paths: an open redirect would hand a phishing page the session.
            if not target.startswith("/") or target.startswith("//"):
                target = home_for(user)
            return redirect(target)
        error = error or "Wrong name or password."
    return render_template("login.html", error=error), 200 if error is None else 401


@bp.post("/logout")
def logout() -> Response:
    """Sign out."""
    session.clear()
    return redirect(url_for("web.login"))  # type: ignore[return-value]


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
