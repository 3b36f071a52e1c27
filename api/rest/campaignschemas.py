"""The marshmallow schemas of the campaign endpoints (api.rest.campaigns), for the OpenAPI document."""
from __future__ import annotations

from marshmallow import Schema, fields

from . import ErrorReplySchema, PageSchema


class CampaignErrorSchema(ErrorReplySchema):
    fields_ = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), data_key="fields",
                          metadata={"description": "Each bad field's dotted path and messages"})


class CampaignEligibilitySchema(Schema):
    min_age = fields.Float(allow_none=True)
    max_age = fields.Float(allow_none=True)
    sex = fields.List(fields.String(), allow_none=True)


class CampaignThresholdSchema(Schema):
    field = fields.String(required=True, metadata={"description": "An observation name of a visit"})
    op = fields.String(required=True, metadata={"enum": ["gte", "gt", "lte", "lt", "eq"]})
    value = fields.Raw(required=True)
    refer = fields.Boolean(allow_none=True)


class CampaignInputSchema(Schema):
    """The fields a create or edit may give (docs/records.md, ``campaign``)."""

    name = fields.String(allow_none=True)
    condition = fields.String(metadata={"description": "Required on create"})
    areas = fields.List(fields.String(), metadata={"description": "Area paths; required on create"})
    start_date = fields.String(allow_none=True, metadata={"format": "date"})
    end_date = fields.String(allow_none=True, metadata={"format": "date"})
    eligibility = fields.Nested(CampaignEligibilitySchema, allow_none=True)
    fields_ = fields.List(fields.Nested(CampaignThresholdSchema), data_key="fields", allow_none=True)
    targets = fields.Dict(keys=fields.String(), values=fields.Integer(), allow_none=True)
    chws = fields.List(fields.String(), allow_none=True)
    organiser = fields.String(metadata={"description": "Admins only: the organiser who runs it"})
    rev = fields.String(metadata={"description": "Edit only: the revision the edit started from (409 if stale)"})


class CampaignSchema(CampaignInputSchema):
    id = fields.String(required=True)
    rev = fields.String(required=True)
    condition = fields.String(required=True)
    areas = fields.List(fields.String(), required=True)
    fields_ = fields.List(fields.Nested(CampaignThresholdSchema), data_key="fields", required=True)
    targets = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    chws = fields.List(fields.String(), required=True)
    eligibility = fields.Nested(CampaignEligibilitySchema, required=True)
    organiser = fields.String(allow_none=True, required=True)
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"enum": ["planned", "running", "ended"]})


class CampaignListSchema(PageSchema):
    items = fields.List(fields.Nested(CampaignSchema), required=True)


class CampaignTallySchema(Schema):
    eligible = fields.Integer(required=True)
    screened = fields.Integer(required=True)
    positive = fields.Integer(required=True)
    referred = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    coverage_eligible = fields.Float(allow_none=True, required=True)
    positivity = fields.Float(allow_none=True, required=True)
    completion = fields.Float(allow_none=True, required=True)
    target = fields.Integer(allow_none=True)
    coverage_target = fields.Float(allow_none=True)


class CampaignAreaRowSchema(CampaignTallySchema):
    area = fields.String(required=True)
    depth = fields.Integer(required=True)


class CampaignChwRowSchema(CampaignTallySchema):
    chw = fields.String(required=True)
    villages = fields.List(fields.String(), required=True)
    assigned = fields.Boolean(required=True, metadata={"description": "Listed in the campaign's chws"})


class CampaignGroupRowSchema(CampaignTallySchema):
    sex = fields.String(required=True)
    band = fields.String(required=True)


class CampaignFiltersSchema(Schema):
    area = fields.String(allow_none=True, required=True)
    chw = fields.String(allow_none=True, required=True)
    sex = fields.String(allow_none=True, required=True)
    band = fields.String(allow_none=True, required=True)
    from_ = fields.String(allow_none=True, required=True, data_key="from")
    to = fields.String(allow_none=True, required=True)


class CampaignProgressSchema(Schema):
    campaign_id = fields.String(required=True)
    reference_date = fields.String(required=True, metadata={"description": "The day ages are counted on"})
    filters = fields.Nested(CampaignFiltersSchema, required=True)
    totals = fields.Nested(CampaignTallySchema, required=True)
    areas = fields.List(fields.Nested(CampaignAreaRowSchema), required=True)
    chws = fields.List(fields.Nested(CampaignChwRowSchema), required=True)
    groups = fields.List(fields.Nested(CampaignGroupRowSchema), required=True)
