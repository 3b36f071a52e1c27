"""Campaign pages for organisers: the list, create and edit, assignment to areas and CHWs, progress.

An organiser sees and edits only the campaigns they run (an admin, all). A form that
fails its checks comes back with each bad field's message next to its input, and
nothing is written. The progress page draws its charts on the server
(``sync.records.charts``) and shows them as SVG images of this app, so no script runs;
its line lists are the same CSV and XLSX as the REST API's.
"""
from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, stream_with_context, url_for
from werkzeug.datastructures import MultiDict

from sync.errors import BadRequest, Conflict, NotFound
from sync.records import charts, exports
from sync.records.campaigns import (CampaignDoc, Invalid, create_campaign, get_campaign, known_areas,
                                    list_campaigns, update_campaign, users_with_role)
from sync.records.filters import BAND_NAMES, parse_filters
from sync.records.progress import villages_of
from sync.records.progresscache import cached_progress
from sync.records.schemafields import OBSERVATIONS, SEXES
from sync.records.visibility import Visibility, visibility_of

from ..audit import audit_shown
from . import add_nav, bp, page, signed_in

OPS = (("gte", "≥"), ("gt", ">"), ("lte", "≤"), ("lt", "<"), ("eq", "="))
THRESHOLD_ROWS = 3  # blank rows offered below the campaign's thresholds
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"

add_nav("web.campaigns", "Campaigns", "organiser")


def _db() -> str:
    return str(current_app.config["WASL_RECORDS_DB"])


def _viewer() -> Visibility:
    user = signed_in()
    assert user is not None  # @page saw to it
    return visibility_of(user.name, user.roles)


def _found(campaign_id: str) -> CampaignDoc:
    """The campaign, if the signed-in user may see it; else the page's 404."""
    try:
        return get_campaign(_db(), campaign_id, _viewer())
    except NotFound:
        abort(404)


def _number(text: str) -> Any:
    """A form's number as JSON would carry it; anything else stays text, for the schema to name."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _targets(text: str, errors: dict[str, list[str]]) -> dict[str, Any] | None:
    """``area: count`` lines as a mapping; a line of another shape is an error on ``targets``."""
    out: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        area, sep, count = line.replace("=", ":").partition(":")
        if not sep or not area.strip():
            errors.setdefault("targets", []).append(f"Line {number}: write an area path, a colon and a count.")
            continue
        out[area.strip()] = _number(count)
    return out or None


def _thresholds(form: MultiDict[str, str]) -> list[dict[str, Any]] | None:
    rows = []
    for i in range(int(form.get("rows", "0") or 0) if (form.get("rows") or "").isdigit() else 0):
        field = form.get(f"field_{i}", "").strip()
        if field:
            rows.append({"field": field, "op": form.get(f"op_{i}", ""), "value": _number(form.get(f"value_{i}", "")),
                         "refer": form.get(f"refer_{i}") == "on"})
    return rows or None


def form_values(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The campaign fields a form gives, and errors found before the schema sees them."""
    errors: dict[str, list[str]] = {}
    eligibility = {"min_age": _number(form.get("min_age", "")), "max_age": _number(form.get("max_age", "")),
                   "sex": form.getlist("sex") or None}
    values = {"name": form.get("name", "").strip() or None, "condition": form.get("condition", "").strip(),
              "areas": form.getlist("areas"), "start_date": form.get("start_date") or None,
              "end_date": form.get("end_date") or None,
              "eligibility": {k: v for k, v in eligibility.items() if v is not None} or None,
              "fields": _thresholds(form), "targets": _targets(form.get("targets", ""), errors)}
    return values, errors


def _form(campaign: CampaignDoc | None, values: dict[str, Any], errors: dict[str, list[str]], status: int = 200
          ) -> tuple[str, int]:
    return render_template("campaign_form.html", campaign=campaign, values=values, errors=errors,
                           areas=known_areas(), observations=OBSERVATIONS, ops=OPS, sexes=SEXES,
                           extra_rows=THRESHOLD_ROWS, organisers=users_with_role("organiser"),
                           admin=_viewer().all), status


@bp.get("/campaigns")
@page("organiser")
def campaigns() -> str:
    """The campaigns the organiser runs (every campaign for an admin)."""
    return render_template("campaigns.html", campaigns=list_campaigns(_db(), _viewer()))


@bp.route("/campaigns/new", methods=["GET", "POST"])
@page("organiser")
def campaign_new() -> Any:
    """Create a campaign; a refused form comes back with its errors and writes nothing."""
    if request.method == "GET":
        return _form(None, {}, {})
    values, errors = form_values(request.form)
    user, viewer = signed_in(), _viewer()
    assert user is not None
    organiser = (request.form.get("organiser") or user.name) if viewer.all else user.name
    if not errors:
        try:
            created = create_campaign(_db(), values, user.name, organiser=organiser)
        except Invalid as exc:
            errors = exc.fields
        else:
            flash("Campaign created. Assign it to areas and CHWs below.")
            return redirect(url_for("web.campaign", campaign_id=created.id))
    return _form(None, {**values, "organiser": organiser}, errors, 400)


@bp.route("/campaigns/<campaign_id>/edit", methods=["GET", "POST"])
@page("organiser")
def campaign_edit(campaign_id: str) -> Any:
    """Edit a campaign's definition (a new revision of its document)."""
    current = _found(campaign_id)
    if request.method == "GET":
        return _form(current, current.body, {})
    values, errors = form_values(request.form)
    user = signed_in()
    assert user is not None
    if _viewer().all and request.form.get("organiser"):
        values["organiser"] = request.form["organiser"]
    if not errors:
        try:
            update_campaign(_db(), campaign_id, values, user.name, viewer=_viewer(), rev=request.form.get("rev"))
        except Invalid as exc:
            errors = exc.fields
        except Conflict as exc:
            errors = {"document": [exc.reason]}
        else:
            flash("Campaign saved.")
            return redirect(url_for("web.campaign", campaign_id=campaign_id))
    return _form(current, {**current.body, **values}, errors, 400)


def _campaign_page(campaign: CampaignDoc, errors: dict[str, list[str]], status: int = 200) -> tuple[str, int]:
    chws = users_with_role("chw")
    return render_template("campaign.html", campaign=campaign, areas=known_areas(), chws=chws,
                           homes=villages_of(chws), errors=errors), status


@bp.get("/campaigns/<campaign_id>")
@page("organiser")
def campaign(campaign_id: str) -> Any:
    """A campaign, with its assignment to areas and CHWs."""
    return _campaign_page(_found(campaign_id), {})


@bp.post("/campaigns/<campaign_id>/assign")
@page("organiser")
def campaign_assign(campaign_id: str) -> Any:
    """Assign the campaign to areas and CHWs: its document then replicates to their tablets."""
    current = _found(campaign_id)
    user = signed_in()
    assert user is not None
    values = {"areas": request.form.getlist("areas"), "chws": request.form.getlist("chws")}
    try:
        update_campaign(_db(), campaign_id, values, user.name, viewer=_viewer(), rev=request.form.get("rev"))
    except (Invalid, Conflict) as exc:
        errors = exc.fields if isinstance(exc, Invalid) else {"document": [exc.reason]}
        return _campaign_page(CampaignDoc(current.id, current.rev, {**current.body, **values}), errors, 400)
    flash(f"Assigned to {len(values['areas'])} area(s) and {len(values['chws'])} CHW(s).")
    return redirect(url_for("web.campaign", campaign_id=campaign_id))


def _filters_or_none() -> tuple[Any, str | None]:
    try:
        return parse_filters(request.args), None
    except BadRequest as exc:
        return parse_filters({}), exc.reason


@bp.get("/campaigns/<campaign_id>/progress")
@page("organiser")
def campaign_progress(campaign_id: str) -> Any:
    """Screened against target and eligible population, positivity and referrals, with charts."""
    found = _found(campaign_id)
    filters, problem = _filters_or_none()
    data = cached_progress(_db(), found, filters)
    query = {k: v for k, v in filters.to_json().items() if v}
    reach = [a for a in found.body.get("areas") or [] if isinstance(a, str)]
    options = [p for p, _, _ in known_areas() if any(p == a or p.startswith(a + "/") for a in reach)]
    return render_template("progress.html", campaign=found, data=data, filters=filters, query=query,
                           problem=problem, sexes=SEXES, bands=BAND_NAMES, area_options=options,
                           chart_width=charts.WIDTH,
                           charts={name: charts.height(name, data) for name in charts.NAMES}
                           ), 200 if problem is None else 400


@bp.get("/campaigns/<campaign_id>/charts/<name>.svg")
@page("organiser")
def campaign_chart(campaign_id: str, name: str) -> Response:
    """One progress chart as an SVG image, under the same filters as the page."""
    draw = charts.CHARTS.get(name)
    found = _found(campaign_id)
    if draw is None:
        abort(404)
    filters, _ = _filters_or_none()
    resp = Response(draw(cached_progress(_db(), found, filters)), mimetype="image/svg+xml")
    # Opened on its own, the SVG is a document: it may style itself, nothing more.
    resp.headers["Content-Security-Policy"] = SVG_CSP
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/campaigns/<campaign_id>/export.<kind>")
@page("organiser")
def campaign_export(campaign_id: str, kind: str) -> Response:
    """The line list of the filtered screening visits, as CSV or XLSX."""
    found = _found(campaign_id)
    try:
        return export_response(found, kind)
    except BadRequest:
        abort(400)


def export_response(found: CampaignDoc, kind: str) -> Response:
    """The CSV or XLSX line list of ``found`` under the request's filters (shared with the REST API)."""
    filters = parse_filters(request.args)  # a bad filter is a 400 naming it
    listed = list(exports.rows(_db(), found, filters)) if kind in ("csv", "xlsx") else []
    audit_shown([r[0] for r in listed] + [r[4] for r in listed], via="export")  # visit ids, patient ids
    name = f"{found.id}-line-list.{kind}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if kind == "csv":
        body = stream_with_context(exports.csv_chunks(_db(), found, filters))
        return Response(body, mimetype="text/csv", headers=disposition)
    if kind == "xlsx":
        return Response(exports.xlsx_bytes(_db(), found, filters), mimetype=XLSX, headers=disposition)
    abort(404)
