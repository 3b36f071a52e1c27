"""``GET /api/v1/activity``: CHW activity for a supervisor (the data of the ``/activity`` page).

Per CHW of the caller's team: devices with their last sync, documents waiting (as the
device last reported), refused writes, visits per UTC day for the last ``days`` days, and
whether an active device has not synced for ``stale_days`` days (sync.records.activity).
"""
from __future__ import annotations

from flask import Response
from marshmallow import Schema, fields

from sync.records.activity import ChwActivity, team_activity

from ..couch.params import send, whole_arg
from . import bp
from .visits import reach, records_db

DAYS = (1, 60)
STALE_DAYS = (1, 365)


class DeviceActivitySchema(Schema):
    device_id = fields.String(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True)
    last_seen_at = fields.Float(allow_none=True, metadata={"description": "epoch seconds"})
    stale = fields.Boolean(required=True)
    held = fields.Integer(allow_none=True)
    pending = fields.Integer(allow_none=True, metadata={"description": "local edits not pushed when it reported"})
    reported_at = fields.Float(allow_none=True)


class ChwActivitySchema(Schema):
    name = fields.String(required=True)
    villages = fields.List(fields.String(), required=True)
    last_sync = fields.Float(allow_none=True)
    pending = fields.Integer(allow_none=True)
    stale = fields.Boolean(required=True)
    refused_held = fields.Integer(required=True)
    refused_total = fields.Integer(required=True)
    visits_per_day = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    visits_total = fields.Integer(required=True)
    devices = fields.List(fields.Nested(DeviceActivitySchema), required=True)


class ActivityReplySchema(Schema):
    days = fields.Integer(required=True)
    stale_days = fields.Integer(required=True)
    chws = fields.List(fields.Nested(ChwActivitySchema), required=True)


def activity_of_team() -> tuple[list[ChwActivity], int, int]:
    """The caller's team activity, with the ``days`` and ``stale_days`` asked for."""
    seen = reach()
    days, stale = whole_arg("days", 14, *DAYS), whole_arg("stale_days", 3, *STALE_DAYS)
    return team_activity(records_db(), seen, days=days, stale_days=stale), days, stale


@bp.get("/activity")
def activity() -> Response:
    """The activity of each CHW of the caller's team.
    ---
    get:
      summary: CHW activity
      security: [{basic: []}, {bearer: []}]
      parameters:
      - {in: query, name: days, schema: {type: integer, minimum: 1, maximum: 60, default: 14}}
      - {in: query, name: stale_days, schema: {type: integer, minimum: 1, maximum: 365, default: 3}}
      responses:
        200: {description: The team, content: {application/json: {schema: ActivityReplySchema}}}
        400: {description: A bad parameter, content: {application/json: {schema: ErrorReplySchema}}}
        401: {description: Not signed in, content: {application/json: {schema: ErrorReplySchema}}}
        403: {description: Not a supervisor, content: {application/json: {schema: ErrorReplySchema}}}
    """
    chws, days, stale = activity_of_team()
    return send({"days": days, "stale_days": stale, "chws": [c.to_json() for c in chws]})
