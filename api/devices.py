"""``/api/v1/devices``: enrolment, a device's own status, held documents, and admin retire/revoke.

JSON in, JSON out, errors in the same ``{"error", "reason"}`` shape as the CouchDB API.
The drop protocol (docs/access.md): ``GET /me`` tells a device its scope's fingerprint, and
``POST /me/held`` answers which of the documents it holds it must drop.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from models.server import get_setting
from sync import devices
from sync.errors import BadRequest, Forbidden, Unauthorized
from sync.scope import is_admin
from sync.scopes import fingerprint, scope_for

from .couch import access
from .couch.auth import REVOKED_REASON, UserCtx, current_user
from .couch.params import json_object, send

bp = Blueprint("devices", __name__, url_prefix="/api/v1/devices")


def _caller() -> UserCtx:
    user = current_user()
    if user is None:
        raise Unauthorized()
    return user


def _admin() -> UserCtx:
    user = _caller()
    if not is_admin(user.roles):
        raise Forbidden("Only admins manage devices")
    return user


def _device() -> tuple[devices.DeviceInfo, UserCtx]:
    """The calling device (bearer token) and its user; a revoked device is told to wipe."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorized("A device token is required")
    found = devices.device_for_token(header[7:].strip())
    if found is None or found[1].disabled:
        raise Unauthorized("Unknown device token")
    info, user = found
    if info.status == "revoked":
        raise Unauthorized(REVOKED_REASON)
    return info, UserCtx(user.name, tuple(user.roles or ()), info.device_id)


@bp.post("/enrol")
def enrol() -> Response:
    """Trade a one-time code for a device id and its bearer token (shown once)."""
    body = json_object()
    info, token = devices.enrol(body.get("code"), body.get("name"))  # type: ignore[arg-type]
    return send({**info.to_json(), "token": token, "server_uuid": get_setting("uuid")}, 201)


@bp.get("/me")
def me() -> Response:
    """The calling device's status and what it must do (none, push_then_wipe, wipe)."""
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorized("A device token is required")
    found = devices.device_for_token(header[7:].strip())
    if found is None:
        raise Unauthorized("Unknown device token")
    info, user = found
    answer = info.to_json()  # a revoked device still learns it must wipe
    if info.status != "revoked":
        # Changes whenever the user's scope does: the device then reports what it holds.
        answer["scope"] = fingerprint(scope_for(user.name, user.roles or (), current_app.config["WASL_RECORDS_DB"]))
    return send(answer)


@bp.post("/me/held")
def held() -> Response:
    """A device reports the ids it holds and its unpushed edits; answer the ids it must drop."""
    info, user = _device()
    body = json_object()
    db_name = body.get("db")
    if not isinstance(db_name, str):
        raise BadRequest("`db` must name the database the device replicates")
    doc_ids, pending = devices.check_held(body.get("doc_ids"), body.get("pending"))
    g.user = user
    if not access.unscoped() and db_name != access.records_db():
        raise Forbidden(access.NOT_YOURS)
    drop = devices.report_held(info.device_id, db_name, doc_ids, pending, access.reader(db_name))
    return send({"drop": drop})


def _with_held(pairs: list[tuple[devices.DeviceInfo, list[devices.HeldInfo]]]) -> list[dict[str, object]]:
    return [{**d.to_json(), "held": [h.to_json() for h in held]} for d, held in pairs]


@bp.get("")
def list_devices() -> Response:
    """All devices with what each last said it holds, for admins."""
    _admin()
    found = devices.list_devices()
    reports = devices.held_reports()
    return send({"devices": _with_held([(d, reports.get(d.device_id, [])) for d in found])})


@bp.get("/team")
def team() -> Response:
    """The devices of a supervisor's CHWs, with what each last said it holds."""
    return send({"devices": _with_held(devices.team_devices(_caller().name))})


@bp.post("/codes")
def create_code() -> Response:
    """A one-time enrolment code for a user (admins)."""
    _admin()
    body = json_object()
    user = body.get("user")
    if not isinstance(user, str):
        raise BadRequest("`user` must name a user")
    return send({"code": devices.create_code(user), "user": user}, 201)


@bp.post("/<device_id>/<action>")
def change_status(device_id: str, action: str) -> Response:
    """Retire (push, then wipe) or revoke (refuse at once, wipe) a device (admins)."""
    _admin()
    statuses = {"retire": "retired", "revoke": "revoked"}
    if action not in statuses:
        raise BadRequest("Action must be retire or revoke")
    return send(devices.set_status(device_id, statuses[action]).to_json())
