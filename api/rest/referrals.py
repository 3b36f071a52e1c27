"""Referrals in the REST API: the partner clinician's list, and marking one received or completed.

A clinician sees the referrals to their facilities (an admin, all); a referral's patient
record comes only where the patient consented to sharing with partners. A status change
is a new revision of the referral document, written as the clinician, that the CHW's
tablet receives by replication.
"""
from __future__ import annotations

from flask import Response, current_app, request
from marshmallow import Schema, fields

from sync.errors import BadRequest
from sync.records.referrals import list_referrals, set_status
from sync.records.visibility import visibility_of

from ..audit import audit_shown
from ..couch.params import send
from . import PageSchema, bp, caller, page_args, paged


class ClinicPatientSchema(Schema):
    id = fields.String(required=True)
    given_name = fields.String(allow_none=True, required=True)
    family_name = fields.String(allow_none=True, required=True)
    sex = fields.String(allow_none=True, required=True)
    birth_date = fields.String(allow_none=True, required=True)
    estimated_age_years = fields.Float(allow_none=True, required=True)
    phone = fields.String(allow_none=True, required=True)
    chronic_conditions = fields.List(fields.String(), required=True)
    last_visit_at = fields.String(allow_none=True, required=True)
    latest_observations = fields.Dict(required=True)
    risk_flags = fields.List(fields.String(), required=True)


class ClinicReferralSchema(Schema):
    id = fields.String(required=True)
    rev = fields.String(required=True)
    patient_id = fields.String(allow_none=True, required=True)
    visit_id = fields.String(allow_none=True, required=True)
    from_chw = fields.String(allow_none=True, required=True)
    to_facility = fields.String(allow_none=True, required=True)
    reason = fields.String(allow_none=True, required=True)
    urgency = fields.String(allow_none=True, required=True)
    status = fields.String(allow_none=True, required=True)
    status_note = fields.String(allow_none=True, required=True)
    created_at = fields.String(allow_none=True, required=True)
    updated_at = fields.String(allow_none=True, required=True)
    updated_by = fields.String(allow_none=True, required=True)
    area = fields.String(allow_none=True, required=True)
    patient_shared = fields.Boolean(required=True, metadata={"description": "The patient consented to sharing"})
    patient = fields.Nested(ClinicPatientSchema, allow_none=True, required=True)


class ClinicReferralListSchema(PageSchema):
    items = fields.List(fields.Nested(ClinicReferralSchema), required=True)


class ClinicStatusInputSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["received", "completed"]})
    note = fields.String(allow_none=True, metadata={"description": "At most 1000 characters"})


class ClinicStatusSchema(Schema):
    id = fields.String(required=True)
    rev = fields.String(required=True)
    status = fields.String(required=True)
    status_note = fields.String(allow_none=True, required=True)
    updated_at = fields.String(required=True)
    updated_by = fields.String(required=True)


def _db() -> str:
    return str(current_app.config["WASL_RECORDS_DB"])


@bp.get("/referrals")
def referrals_list() -> Response:
    """Referrals to the caller's facilities (every referral for an admin), newest first.
    ---
    get:
      summary: List referrals
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: query, name: status, schema: {type: string, enum: [open, received, completed, cancelled]}}
      - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500}}
      - {in: query, name: offset, schema: {type: integer, minimum: 0}}
      responses:
        200: {description: A page of referrals, content: {application/json: {schema: ClinicReferralListSchema}}}
        400: {description: Bad filter, content: {application/json: {schema: ErrorReplySchema}}}
        401: {description: Not signed in, content: {application/json: {schema: ErrorReplySchema}}}
        403: {description: The caller is no clinician, content: {application/json: {schema: ErrorReplySchema}}}
    """
    user = caller("clinician")
    limit, offset = page_args()
    status = request.args.get("status") or None
    items, total = list_referrals(_db(), visibility_of(user.name, user.roles), status=status, limit=limit,
                                  offset=offset)
    audit_shown([(i["id"], i["rev"]) for i in items] + [i["patient_id"] for i in items if i["patient_shared"]])
    return paged(items, total, limit, offset)


@bp.post("/referrals/<referral_id>/status")
def referrals_status(referral_id: str) -> Response:
    """Mark a referral to the caller's facility received or completed, with an optional note.
    ---
    post:
      summary: Mark a referral received or completed
      security: [{basic: []}, {bearer: []}]
      parameters: [{in: path, name: referral_id, required: true, schema: {type: string}}]
      requestBody: {required: true, content: {application/json: {schema: ClinicStatusInputSchema}}}
      responses:
        200: {description: The referral's new revision, content: {application/json: {schema: ClinicStatusSchema}}}
        400: {description: Bad status or note, content: {application/json: {schema: ErrorReplySchema}}}
        401: {description: Not signed in, content: {application/json: {schema: ErrorReplySchema}}}
        403: {description: The caller may not change it, content: {application/json: {schema: ErrorReplySchema}}}
        404: {description: No such referral to the caller's facility,
              content: {application/json: {schema: ErrorReplySchema}}}
        409: {description: Its status does not allow that, content: {application/json: {schema: ErrorReplySchema}}}
    """
    user = caller("clinician")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object with status and note")
    seen = visibility_of(user.name, user.roles)
    return send(set_status(_db(), referral_id, body.get("status"), body.get("note"), name=user.name,
                           roles=user.roles, seen=seen))
