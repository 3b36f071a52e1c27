"""What the supervisor's decision endpoints share: row ids, the ``state`` filter and OpenAPI blocks.

The endpoints are ``api.rest.supervise`` (conflicts and the quarantine) and
``api.rest.duplicates`` (duplicate patients and merges).
"""
from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema, fields

from sync.errors import NotFound

MAX_ID = 2**31 - 1


def row_id(value: int) -> int:
    """A row id from a path, or 404 when no row can have it."""
    if not 0 < value <= MAX_ID:
        raise NotFound("missing")
    return value


def state_arg(default: str | None) -> str | None:
    """The ``state`` query argument (``all``: None, no filter)."""
    value = request.args.get("state", default)
    return None if value == "all" else value


class SupervisedListSchema(Schema):
    items = fields.List(fields.Dict(), required=True)
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


# Every view answers these errors alike: the body is {"error", "reason"}.
_ERR = "{content: {application/json: {schema: ErrorReplySchema}}, description: "


def _doc(summary: str, method: str, ok: str, params: str = "", body: str = "") -> str:
    """An OpenAPI block for a view's docstring (the views share their parameters and errors)."""
    lines = [f"{method}:", f"  summary: {summary}", "  security: [{basic: []}, {bearer: []}]"]
    if params:
        lines.append(f"  parameters: [{params}]")
    if body:
        lines.append(f"  requestBody: {{required: true, content: {{application/json: {{schema: {body}}}}}}}")
    lines += ["  responses:", f"    {ok}", f"    400: {_ERR}Bad input}}", f"    401: {_ERR}Not signed in}}",
              f"    403: {_ERR}Not a supervisor}}", f"    404: {_ERR}Not found or out of reach}}"]
    if method == "post":
        lines += [f"    409: {_ERR}Already decided}}", f"    415: {_ERR}Not JSON}}"]
    return "\n".join(lines)


def documented(summary: str, method: str, ok: str, params: str = "", body: str = "") -> Any:
    """Append the view's OpenAPI block to its docstring."""
    def decorate(view: Any) -> Any:
        """Set the docstring apispec reads."""
        view.__doc__ = f"{view.__doc__}\n---\n{_doc(summary, method, ok, params, body)}"
        return view
    return decorate


LIST = "200: {description: One page, content: {application/json: {schema: SupervisedListSchema}}}"
ONE = "200: {description: The record, content: {application/json: {schema: {type: object}}}}"
CREATED = ONE.replace("200", "201", 1)
PAGING = ("{in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500}}, "
          "{in: query, name: offset, schema: {type: integer, minimum: 0, maximum: 1000000000}}")
ID = "{in: path, name: item_id, required: true, schema: {type: integer}}"
PAIR = ("{in: path, name: a, required: true, schema: {type: string}}, "
        "{in: path, name: b, required: true, schema: {type: string}}")


def state_param(values: str) -> str:
    """The OpenAPI parameters of a list with a ``state`` filter and paging."""
    return f"{{in: query, name: state, schema: {{type: string, enum: [{values}, all]}}}}, {PAGING}"
