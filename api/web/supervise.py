"""A supervisor's decisions: conflicts, the quarantine, duplicate patients and merges.

Each page reads through the same functions as its JSON twin (api.rest.supervise), limited
to the supervisor's areas; each action is a CSRF-protected form that calls the action of
``sync.records`` (which writes the audit entry), then shows its outcome, or its refusal in
plain words. Something out of reach is the same 404 as something absent.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from sync import jsoncodec
from sync.errors import BadRequest, CouchError, NotFound

from ..rest import supervise as data
from ..rest.visits import records_db
from . import bp, page, signed_in
from .visits import seen_by_user

ROLES = ("supervisor",)
PAGE = 50


def _actor() -> str:
    user = signed_in()
    assert user is not None  # the page decorator has checked
    return user.name


def _listing(endpoint: str, fetch: Callable[..., tuple[list[Any], int]], default_state: str | None,
             number_arg: str = "page") -> dict[str, Any]:
    """One page of a list, its pager links and any refusal (a bad state or page number)."""
    state = request.args.get("state", default_state)
    number = request.args.get(number_arg, "1")
    items: list[Any] = []
    total, error = 0, None
    try:
        if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= 10**6:
            raise BadRequest(f"{number_arg} must be a whole number from 1")
        items, total = fetch(records_db(), seen_by_user(), None if state == "all" else state, PAGE,
                             (int(number) - 1) * PAGE)
    except CouchError as exc:
        error = exc.reason
    current = int(number) if error is None else 1
    pages = max(1, -(-total // PAGE))
    args = {k: v for k, v in request.args.items() if k != number_arg}
    links = {name: url_for(endpoint, **args, **{number_arg: n})
             for name, n in (("prev", current - 1), ("next", current + 1)) if 1 <= n <= pages}
    return {"items": items, "total": total, "error": error, "state": state, "page": current, "pages": pages,
            "links": links}


def _act(action: Callable[[], Any], done: str, back: str) -> Response:
    """Run an action; say what happened, or why it was refused, on the page it came from."""
    try:
        action()
    except NotFound:
        abort(404)
    except CouchError as exc:
        flash(exc.reason, "error")
    else:
        flash(done, "ok")
    return redirect(back)


def _or_404(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except NotFound:
        abort(404)


# ------------------------------------------------------------------------------------------------ conflicts
@bp.get("/conflicts")
@page(*ROLES)
def conflicts() -> Any:
    """Conflicts of shared records in the supervisor's areas, oldest first."""
    listing = _listing("web.conflicts", data.conflicts_in_reach, "open")
    return render_template("conflicts.html", **listing), 400 if listing["error"] else 200


@bp.get("/conflicts/<int:item_id>")
@page(*ROLES)
def conflict(item_id: int) -> Any:
    """Every value of a conflicted field side by side, with who wrote it and when."""
    return render_template("conflict.html", c=_or_404(lambda: data.conflict_in_reach(
        records_db(), seen_by_user(), item_id)))


@bp.post("/conflicts/<int:item_id>/choose")
@page(*ROLES)
def choose_conflict_page(item_id: int) -> Response:
    """Keep one value of a conflict."""
    rev = request.form.get("rev")
    return _act(lambda: data.choose(records_db(), seen_by_user(), item_id, rev, _actor()),
                "The chosen value is kept; tablets receive it with their next sync.",
                url_for("web.conflict", item_id=item_id))


# ------------------------------------------------------------------------------------------------ quarantine
@bp.get("/quarantine")
@page(*ROLES)
def quarantine() -> Any:
    """Refused revisions from the supervisor's areas, oldest first."""
    listing = _listing("web.quarantine", data.held_in_reach, "held")
    return render_template("quarantine.html", **listing), 400 if listing["error"] else 200


def _item_page(item_id: int, error: str | None = None, text: str | None = None, note: str = "") -> Any:
    _, item = _or_404(lambda: data.held_item(records_db(), seen_by_user(), item_id))
    text = text if text is not None else json.dumps(item["document"], indent=2, ensure_ascii=False)
    return render_template("quarantine_item.html", item=item, text=text, note=note, error=error), \
        400 if error else 200


@bp.get("/quarantine/<int:item_id>")
@page(*ROLES)
def quarantine_item(item_id: int) -> Any:
    """A refused revision: why, field by field, and the document to correct."""
    return _item_page(item_id)


@bp.post("/quarantine/<int:item_id>/release")
@page(*ROLES)
def release_page(item_id: int) -> Any:
    """Store the corrected document; a correction that is still wrong is shown again with why."""
    text = request.form.get("document", "")
    try:
        corrected = jsoncodec.loads(text)
        data.release(records_db(), seen_by_user(), item_id, corrected, _actor())
    except ValueError:
        return _item_page(item_id, "The document is not valid JSON.", text)
    except NotFound:
        abort(404)
    except CouchError as exc:
        return _item_page(item_id, exc.reason, text)
    flash("Released: the corrected document is stored and goes to the tablets.", "ok")
    return redirect(url_for("web.quarantine_item", item_id=item_id))


@bp.post("/quarantine/<int:item_id>/discard")
@page(*ROLES)
def discard_page(item_id: int) -> Any:
    """Close a refused revision without storing it."""
    note = request.form.get("note", "")
    try:
        data.discard(records_db(), seen_by_user(), item_id, note, _actor())
    except NotFound:
        abort(404)
    except CouchError as exc:
        return _item_page(item_id, exc.reason, request.form.get("document"), note)
    flash("Discarded.", "ok")
    return redirect(url_for("web.quarantine_item", item_id=item_id))


# ------------------------------------------------------------------------------------------------ duplicates
@bp.get("/duplicates")
@page(*ROLES)
def duplicates() -> Any:
    """Possible duplicate patients, best score first, and the merges that can be undone."""
    listing = _listing("web.duplicates", data.candidates_in_reach, "open")
    merges = _listing("web.duplicates", data.merges_in_reach, "merged", "merges_page")
    return render_template("duplicates.html", merges=merges, **listing), \
        400 if listing["error"] or merges["error"] else 200


@bp.get("/duplicates/<a>/<b>")
@page(*ROLES)
def duplicate(a: str, b: str) -> Any:
    """Two patients side by side with the reasons for their score."""
    pair = _or_404(lambda: data.pair_in_reach(records_db(), seen_by_user(), a, b))
    docs = [pair["a"]["document"] or {}, pair["b"]["document"] or {}]
    names = sorted({k for d in docs for k in d if not k.startswith("_")})
    return render_template("duplicate.html", pair=pair, fields=[(n, docs[0].get(n), docs[1].get(n)) for n in names])


@bp.post("/duplicates/<a>/<b>/merge")
@page(*ROLES)
def merge_page(a: str, b: str) -> Response:
    """Merge the pair into the chosen survivor."""
    survivor = request.form.get("survivor")
    return _act(lambda: data.merge(records_db(), seen_by_user(), a, b, survivor, _actor()),
                "Merged. The other record now points to the one kept; undo it below if it was wrong.",
                url_for("web.duplicates"))


@bp.post("/duplicates/<a>/<b>/dismiss")
@page(*ROLES)
def dismiss_page(a: str, b: str) -> Response:
    """Mark the pair as two different people."""
    return _act(lambda: data.dismiss(records_db(), seen_by_user(), a, b, _actor()),
                "Marked as different people.", url_for("web.duplicates"))


@bp.post("/merges/<int:item_id>/undo")
@page(*ROLES)
def undo_page(item_id: int) -> Response:
    """Undo a merge."""
    return _act(lambda: data.undo(records_db(), seen_by_user(), item_id, _actor()),
                "Merge undone: both patients are separate again.", url_for("web.duplicates"))
