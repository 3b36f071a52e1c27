"""``/api/v1/visits``: the visit log of a supervisor's team, one visit, its photos, and reviews.

The pages (api.web.visits) call the same functions (``visit_detail``, ``photo``), so a page
and its JSON twin always show the same rows under the same access rule: a supervisor sees
the visits in the areas they supervise, an admin every visit; a visit out of reach is a 404
exactly like a missing one.
"""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, request
from marshmallow import Schema, ValidationError, fields, validate

from sync import audit
from sync.errors import BadRequest, NotFound
from sync.records import reviews, visithistory, visitlog
from sync.records.visibility import Visibility, visibility_of
from sync.store import load_blob

from ..audit import audit_shown
from ..couch.params import json_object, send
from . import PageSchema, bp, caller, page_args, paged

PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
ROLES = ("supervisor",)


# ------------------------------------------------------------------------------------------------ schemas
class VisitLogRowSchema(Schema):
    doc_id = fields.String(required=True)
    rev = fields.String(required=True)
    visited_at = fields.String(allow_none=True, metadata={"description": "UTC, fixed width"})
    chw = fields.String(allow_none=True)
    area = fields.String(allow_none=True)
    kind = fields.String(allow_none=True)
    campaign_id = fields.String(allow_none=True)
    campaign_name = fields.String(allow_none=True)
    patient_id = fields.String(allow_none=True)
    patient_name = fields.String(allow_none=True)
    risk_flags = fields.List(fields.String(), required=True)
    photo_count = fields.Integer(required=True)
    review_state = fields.String(allow_none=True)


class VisitLogPageSchema(PageSchema):
    items = fields.List(fields.Nested(VisitLogRowSchema), required=True)


class VisitRevisionSchema(Schema):
    rev = fields.String(required=True)
    pos = fields.Integer(required=True)
    deleted = fields.Boolean(required=True)
    leaf = fields.Boolean(required=True)
    winner = fields.Boolean(required=True)
    held = fields.Boolean(required=True, metadata={"description": "the server keeps this revision's body"})
    updated_at = fields.Raw(allow_none=True)
    updated_by = fields.Raw(allow_none=True)
    written_by = fields.String(allow_none=True, metadata={"description": "who stored it on the server (audit log)"})
    written_at = fields.Float(allow_none=True, metadata={"description": "when, epoch seconds"})
    written_via = fields.String(allow_none=True, metadata={"description": "replication, api, ..."})
    device_id = fields.String(allow_none=True, metadata={"description": "the device that sent it, if any"})
    device_name = fields.String(allow_none=True)


class AuditItemSchema(Schema):
    id = fields.Integer(required=True)
    at = fields.Float(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    db = fields.String(allow_none=True)
    doc_id = fields.String(allow_none=True)
    device_id = fields.String(allow_none=True)
    detail = fields.Dict(required=True)


class ReviewInputSchema(Schema):
    state = fields.String(required=True, validate=validate.OneOf(reviews.STATES))
    comment = fields.String(allow_none=True, validate=validate.Length(max=reviews.MAX_COMMENT),
                            metadata={"description": "required unless the state is approved"})


class ReviewDocSchema(Schema):
    _id = fields.String(required=True)
    _rev = fields.String(required=True)
    type = fields.String(required=True)
    visit_id = fields.String(required=True)
    chw = fields.String(required=True)
    state = fields.String(required=True)
    comment = fields.String()
    reviewer = fields.String(required=True)
    reviewed_at = fields.String(required=True)
    area = fields.String()


class VisitDetailSchema(Schema):
    doc_id = fields.String(required=True)
    rev = fields.String(required=True)
    visited_at = fields.String(allow_none=True)
    chw = fields.String(allow_none=True)
    area = fields.String(allow_none=True)
    kind = fields.String(allow_none=True)
    campaign_id = fields.String(allow_none=True)
    campaign_name = fields.String(allow_none=True)
    patient = fields.Dict(allow_none=True, metadata={"description": "id, doc_id, name, sex, birth_date, "
                                                                    "estimated_age_years, household_id"})
    observations = fields.Dict(required=True)
    notes = fields.Raw(allow_none=True)
    risk_flags = fields.List(fields.String(), required=True)
    photos = fields.List(fields.Dict(), required=True)
    revisions = fields.List(fields.Nested(VisitRevisionSchema), required=True)
    conflicts = fields.List(fields.String(), required=True)
    audit = fields.List(fields.Nested(AuditItemSchema), required=True)
    review = fields.Nested(ReviewDocSchema, allow_none=True)


# ------------------------------------------------------------------------------------------------ shared
def records_db() -> str:
    """The name of the records database."""
    return str(current_app.config["WASL_RECORDS_DB"])


def reach(*roles: str) -> Visibility:
    """The caller's visibility, after checking they hold one of ``roles`` (default: supervisor)."""
    if "rest_user" not in g and not request.headers.get("Authorization"):
        # The pages' own session: a page's script-free forms never call the API, but a
        # signed-in browser may (its writes carry the CSRF token, checked by api.rest).
        from ..web import signed_in
        user = signed_in()
        if user is not None:
            g.rest_user = user
    user = caller(*(roles or ROLES))
    return visibility_of(user.name, user.roles)


def load(schema: Schema, body: Any) -> dict[str, Any]:
    """A request body checked by ``schema``; a bad one is a 400 naming the fields."""
    try:
        return schema.load(body)  # type: ignore[no-any-return]
    except ValidationError as exc:
        detail = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                           for k, v in sorted(exc.normalized_messages().items()))
        raise BadRequest(f"Invalid fields: {detail}") from None


def safe_id(doc_id: str) -> str:
    """A document id that can name a row; anything else is simply not there."""
    if "\x00" in doc_id or len(doc_id.encode()) > 2000:
        raise NotFound("missing")
    return doc_id


def visit_detail(db_name: str, seen: Visibility, doc_id: str) -> dict[str, Any]:
    """Everything the visit page shows; 404 when the visit is absent, deleted or out of reach."""
    row = visitlog.visit_row(db_name, seen, safe_id(doc_id))
    if row is None:
        raise NotFound("missing")
    body, history = visithistory.visit_document(db_name, doc_id)
    body = body or {}
    patient = visitlog.patient_summary(db_name, row.patient_id, row.patient_doc_id) if row.patient_id else None
    atts = body.get("_attachments") or {}
    audit_shown([(row.doc_id, row.rev), row.patient_id])
    return {**visitlog.rows_of(db_name, [row])[0], "patient": patient,
            "observations": body.get("observations") if isinstance(body.get("observations"), dict) else {},
            "notes": body.get("notes"),
            "photos": [{"name": n, "content_type": m.get("content_type"), "length": m.get("length")}
                       for n, m in sorted(atts.items())],
            "revisions": history, "conflicts": [r["rev"] for r in history if r["leaf"] and not r["winner"]
                                                and not r["deleted"]],
            "audit": [audit.entry_json(e) for e in visit_audit(db_name, doc_id)],
            "review": reviews.read_review(db_name, doc_id)}


def visit_audit(db_name: str, doc_id: str) -> list[Any]:
    """Audit entries about a visit (its review included), newest first."""
    return audit.entries(db_name=db_name, doc_id=doc_id, limit=100)


def photo(db_name: str, seen: Visibility, doc_id: str, name: str) -> Response:
    """The bytes of a visit's photo, under the visit's own access rule."""
    if visitlog.visit_row(db_name, seen, safe_id(doc_id)) is None:
        raise NotFound("missing")
    body, _ = visithistory.visit_document(db_name, doc_id, max_revisions=1)
    meta = ((body or {}).get("_attachments") or {}).get(name)
    if not isinstance(meta, dict) or "sha256" not in meta:
        raise NotFound("Document is missing attachment")
    kind = meta.get("content_type")
    audit_shown([doc_id], attachment=name)
    resp = Response(load_blob(meta["sha256"]), mimetype=kind if kind in PHOTO_TYPES else "application/octet-stream")
    if kind not in PHOTO_TYPES:
        resp.headers["Content-Disposition"] = "attachment"
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


# ------------------------------------------------------------------------------------------------ views
@bp.get("/visits")
def visit_log() -> Response:
    """The visits of the caller's team, newest first, filtered and paged.
    ---
    get:
      summary: The visit log
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: query, name: chw, schema: {type: string, minLength: 1, maxLength: 200}}
      - in: query
        name: area
        description: an area path; the visits in its subtree
        schema: {type: string, pattern: '^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*){0,3}$', maxLength: 200}
      - {in: query, name: from, schema: {type: string, format: date}, description: first UTC day}
      - {in: query, name: to, schema: {type: string, format: date}, description: last UTC day}
      - {in: query, name: kind, schema: {type: string, enum: [routine, antenatal, chronic_follow_up, screening]}}
      - {in: query, name: campaign_id, schema: {type: string, minLength: 1, maxLength: 200}}
      - {in: query, name: review, schema: {type: string, enum: [none, approved, has_issues, rejected]}}
      - in: query
        name: flag
        description: a risk flag, or any (visits with at least one)
        schema:
          type: string
          pattern: '^(any|bp_high|glucose_high|malaria_positive|muac_low|campaign:[a-z0-9_]{1,60})$'
      - {in: query, name: patient, schema: {type: string, minLength: 1, maxLength: 200}}
      - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500, default: 50}}
      - {in: query, name: offset, schema: {type: integer, minimum: 0, maximum: 1000000000, default: 0}}
      responses:
        200: {description: One page of visits, content: {application/json: {schema: VisitLogPageSchema}}}
        400: {description: A bad filter, content: {application/json: {schema: ErrorReplySchema}}}
        401: {description: Not signed in, content: {application/json: {schema: ErrorReplySchema}}}
        403: {description: Not a supervisor, content: {application/json: {schema: ErrorReplySchema}}}
    """
    seen = reach()
    unknown = sorted(set(request.args) - set(visitlog.FILTER_NAMES) - {"limit", "offset"})
    if unknown:
        raise BadRequest(f"Unknown parameter {unknown[0]!r}; use {', '.join(visitlog.FILTER_NAMES)}, limit, offset")
    filt = visitlog.parse_filters(request.args, blank_is_any=False)
    limit, offset = page_args(visitlog.PAGE_SIZE)
    items, total = visitlog.list_visits(records_db(), seen, filt, limit=limit, offset=offset)
    audit_shown([(i["doc_id"], i["rev"]) for i in items] + [i["patient_id"] for i in items])
    return paged(items, total, limit, offset)


@bp.get("/visits/<doc_id>")
def visit(doc_id: str) -> Response:
    """One visit with its observations, photos, revision history, audit entries and review.
    ---
    get:
      summary: A visit
      security: [{basic: []}, {bearer: []}]
      parameters: [{in: path, name: doc_id, required: true, schema: {type: string}}]
      responses:
        200: {description: The visit, content: {application/json: {schema: VisitDetailSchema}}}
        401: {description: Not signed in, content: {application/json: {schema: ErrorReplySchema}}}
        403: {description: Not a supervisor, content: {application/json: {schema: ErrorReplySchema}}}
        404: {description: No such visit in reach, content: {application/json: {schema: ErrorReplySchema}}}
    """
    return send(visit_detail(records_db(), reach(), doc_id))


@bp.get("/visits/<doc_id>/photos/<path:name>")
def visit_photo(doc_id: str, name: str) -> Response:
    """A photo of a visit, with its content type.
    ---
    get:
      summary: A visit's photo
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: path, name: doc_id, required: true, schema: {type: string}}
      - {in: path, name: name, required: true, schema: {type: string}}
      responses:
        200: {description: The image bytes, content: {image/jpeg: {}, image/png: {}, image/webp: {}}}
        401: {description: Not signed in, content: {application/json: {schema: ErrorReplySchema}}}
        403: {description: Not a supervisor, content: {application/json: {schema: ErrorReplySchema}}}
        404: {description: No such photo in reach, content: {application/json: {schema: ErrorReplySchema}}}
    """
    return photo(records_db(), reach(), doc_id, name)


@bp.post("/visits/<doc_id>/review")
def review_visit(doc_id: str) -> Response:
    """Review a visit: write its review document, which the CHW's tablet receives.
    ---
    post:
      summary: Review a visit
      security: [{basic: []}, {bearer: []}]
      parameters: [{in: path, name: doc_id, required: true, schema: {type: string}}]
      requestBody: {required: true, content: {application/json: {schema: ReviewInputSchema}}}
      responses:
        201: {description: The review document written, content: {application/json: {schema: ReviewDocSchema}}}
        400: {description: A bad state or comment, content: {application/json: {schema: ErrorReplySchema}}}
        401: {description: Not signed in, content: {application/json: {schema: ErrorReplySchema}}}
        403: {description: Not a supervisor, content: {application/json: {schema: ErrorReplySchema}}}
        404: {description: No such visit in reach, content: {application/json: {schema: ErrorReplySchema}}}
        415: {description: Not JSON, content: {application/json: {schema: ErrorReplySchema}}}
    """
    seen, user = reach(), caller()
    db_name = records_db()
    if visitlog.visit_row(db_name, seen, safe_id(doc_id)) is None:
        raise NotFound("missing")
    data = load(ReviewInputSchema(), json_object())
    return send(reviews.write_review(db_name, doc_id, data["state"], data.get("comment"), user.name), 201)
