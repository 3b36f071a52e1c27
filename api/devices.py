"""``/api/v1/devices``: enrolment, a device's own status, and admin retire/revoke.

JSON in, JSON out, errors in the same ``{"error", "reason"}`` shape as the CouchDB API.
"""
from __future__ import annotations

from flask import Blueprint, Response, request

from models.server import get_setting
from sync import devices
from sync.errors import BadRequest, Forbidden, Unauthorized

from .couch.auth import UserCtx, current_user
from .couch.params import json_object, send

bp = Blueprint("devices", __name__, url_prefix="/api/v1/devices")


def _caller() -> UserCtx:
    user = current_user()
    if user is None:
        raise Unauthorized()
    return user


def _admin() -> UserCtx:
    user = _caller()
    if "_admin" not in user.roles:
        raise Forbidden("Only admins manage devices")
    return user


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
    return send(found[0].to_json())  # a revoked device still learns it must wipe


@bp.get("")
def list_devices() -> Response:
    """All devices, for admins."""
    _admin()
    return send({"devices": [d.to_json() for d in devices.list_devices()]})


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
