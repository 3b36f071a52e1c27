"""Campaigns in the REST API: the twins of the organiser's pages (list, create, edit, progress, line lists).

An organiser sees and edits only the campaigns they run (``404`` for any other); an
admin, all. A refused write is ``400`` with ``fields`` naming each bad field, and writes
nothing.
"""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, request

from sync.records.campaigns import CampaignDoc, Invalid, create_campaign, get_campaign, list_campaigns, update_campaign
from sync.records.filters import parse_filters
from sync.records.progresscache import cached_progress
from sync.records.visibility import Visibility, visibility_of

from ..couch.params import send
from ..web.campaigns import export_response
from . import bp, caller, page_args, paged
from . import campaignschemas  # noqa: F401 - the schemas the docstrings name (CampaignSchema, ...)

Json = dict[str, Any]


def _db() -> str:
    return str(current_app.config["WASL_RECORDS_DB"])


def _viewer() -> tuple[str, Visibility]:
    user = caller("organiser")
    return user.name, visibility_of(user.name, user.roles)


def _invalid(exc: Invalid) -> Response:
    return send({"error": "bad_request", "reason": exc.reason, "fields": exc.fields}, 400)


def _body() -> Json:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Invalid({"document": ["The body must be a JSON object."]})
    return body


@bp.get("/campaigns")
def campaigns_list() -> Response:
    """The campaigns the caller runs (every campaign for an admin), latest start first.
    ---
    get:
      summary: List campaigns
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500}}
      - {in: query, name: offset, schema: {type: integer, minimum: 0}}
      responses:
        200: {description: A page of campaigns, content: {application/json: {schema: CampaignListSchema}}}
        400: {description: Bad input, with each bad field, content: {application/json: {schema: CampaignErrorSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: CampaignErrorSchema}}}
        403: {description: The caller is no organiser, content: {application/json: {schema: CampaignErrorSchema}}}
    """
    _, viewer = _viewer()
    limit, offset = page_args()
    found = list_campaigns(_db(), viewer)
    return paged([c.to_json() for c in found[offset:offset + limit]], len(found), limit, offset)


@bp.post("/campaigns")
def campaigns_create() -> Response:
    """Create a campaign run by the caller (an admin may name another organiser).
    ---
    post:
      summary: Create a campaign
      security: [{basic: []}, {bearer: []}]
      requestBody: {required: true, content: {application/json: {schema: CampaignInputSchema}}}
      responses:
        201: {description: The campaign, content: {application/json: {schema: CampaignSchema}}}
        400: {description: Bad input, with each bad field, content: {application/json: {schema: CampaignErrorSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: CampaignErrorSchema}}}
        403: {description: The caller is no organiser, content: {application/json: {schema: CampaignErrorSchema}}}
    """
    name, viewer = _viewer()
    try:
        values = _body()
        values.pop("rev", None)
        organiser = values.pop("organiser", None) if viewer.all else name
        created = create_campaign(_db(), values, name, organiser=organiser or name)
    except Invalid as exc:
        return _invalid(exc)
    return send(created.to_json(), 201)


def _campaign(campaign_id: str) -> CampaignDoc:
    _, viewer = _viewer()
    return get_campaign(_db(), campaign_id, viewer)


@bp.get("/campaigns/<campaign_id>")
def campaigns_get(campaign_id: str) -> Response:
    """One campaign.
    ---
    get:
      summary: Read a campaign
      security: [{basic: []}, {bearer: []}]
      parameters: [{in: path, name: campaign_id, required: true, schema: {type: string}}]
      responses:
        200: {description: The campaign, content: {application/json: {schema: CampaignSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: CampaignErrorSchema}}}
        403: {description: The caller is no organiser, content: {application/json: {schema: CampaignErrorSchema}}}
        404: {description: No such campaign the caller runs, content: {application/json: {schema: CampaignErrorSchema}}}
    """
    return send(_campaign(campaign_id).to_json())


@bp.put("/campaigns/<campaign_id>")
def campaigns_put(campaign_id: str) -> Response:
    """Change the given fields of a campaign (null removes one); assigning is setting areas and chws.
    ---
    put:
      summary: Edit or assign a campaign
      security: [{basic: []}, {bearer: []}]
      parameters: [{in: path, name: campaign_id, required: true, schema: {type: string}}]
      requestBody: {required: true, content: {application/json: {schema: CampaignInputSchema}}}
      responses:
        200: {description: The campaign after the edit, content: {application/json: {schema: CampaignSchema}}}
        400: {description: Bad input, with each bad field, content: {application/json: {schema: CampaignErrorSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: CampaignErrorSchema}}}
        403: {description: The caller is no organiser, content: {application/json: {schema: CampaignErrorSchema}}}
        404: {description: No such campaign the caller runs, content: {application/json: {schema: CampaignErrorSchema}}}
        409: {description: The campaign changed meanwhile, content: {application/json: {schema: CampaignErrorSchema}}}
    """
    name, viewer = _viewer()
    try:
        values = _body()
        rev = values.pop("rev", None)
        updated = update_campaign(_db(), campaign_id, values, name, viewer=viewer,
                                  rev=rev if isinstance(rev, str) else None)
    except Invalid as exc:
        return _invalid(exc)
    return send(updated.to_json())


FILTER_PARAMETERS = """
      - {in: query, name: area, schema: {type: string}, description: 'An area path: that area and below'}
      - {in: query, name: chw, schema: {type: string}}
      - {in: query, name: sex, schema: {type: string, enum: [female, male, other, unknown]}}
      - {in: query, name: band, schema: {type: string, enum: [0-4, 5-14, 15-29, 30-44, 45-59, 60+, unknown]}}
      - {in: query, name: from, schema: {type: string, format: date}, description: First day of visits (UTC)}
      - {in: query, name: to, schema: {type: string, format: date}, description: Last day of visits (UTC)}"""


@bp.get("/campaigns/<campaign_id>/progress")
def campaigns_progress(campaign_id: str) -> Response:
    """Screened against target and the eligible population, positivity and referrals, per area, CHW, sex and band.
    ---
    get:
      summary: A campaign's progress
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: path, name: campaign_id, required: true, schema: {type: string}}%s
      responses:
        200: {description: The figures, content: {application/json: {schema: CampaignProgressSchema}}}
        400: {description: Bad input, with each bad field, content: {application/json: {schema: CampaignErrorSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: CampaignErrorSchema}}}
        403: {description: The caller is no organiser, content: {application/json: {schema: CampaignErrorSchema}}}
        404: {description: No such campaign the caller runs, content: {application/json: {schema: CampaignErrorSchema}}}
    """
    found = _campaign(campaign_id)
    return send(cached_progress(_db(), found, parse_filters(request.args)))


@bp.get("/campaigns/<campaign_id>/export.csv")
def campaigns_export_csv(campaign_id: str) -> Response:
    """The line list of the filtered screening visits as CSV (one row per visit).
    ---
    get:
      summary: A campaign's line list (CSV)
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: path, name: campaign_id, required: true, schema: {type: string}}%s
      responses:
        200: {description: The line list, content: {text/csv: {schema: {type: string}}}}
        400: {description: Bad input, with each bad field, content: {application/json: {schema: CampaignErrorSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: CampaignErrorSchema}}}
        403: {description: The caller is no organiser, content: {application/json: {schema: CampaignErrorSchema}}}
        404: {description: No such campaign the caller runs, content: {application/json: {schema: CampaignErrorSchema}}}
    """
    return export_response(_campaign(campaign_id), "csv")


@bp.get("/campaigns/<campaign_id>/export.xlsx")
def campaigns_export_xlsx(campaign_id: str) -> Response:
    """The line list of the filtered screening visits as an XLSX workbook.
    ---
    get:
      summary: A campaign's line list (XLSX)
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: path, name: campaign_id, required: true, schema: {type: string}}%s
      responses:
        200:
          description: The line list
          content:
            application/vnd.openxmlformats-officedocument.spreadsheetml.sheet: {schema: {type: string, format: binary}}
        400: {description: Bad input, with each bad field, content: {application/json: {schema: CampaignErrorSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: CampaignErrorSchema}}}
        403: {description: The caller is no organiser, content: {application/json: {schema: CampaignErrorSchema}}}
        404: {description: No such campaign the caller runs, content: {application/json: {schema: CampaignErrorSchema}}}
    """
    return export_response(_campaign(campaign_id), "xlsx")


for _view in (campaigns_progress, campaigns_export_csv, campaigns_export_xlsx):
    _view.__doc__ = (_view.__doc__ or "") % FILTER_PARAMETERS
