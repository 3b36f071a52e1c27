"""Assertions shared by the API tests."""
from __future__ import annotations

from typing import Any


def assert_couch_error(resp: Any, status: int, error: str, reason: str | None = None) -> None:
    """The response is CouchDB's error shape: exactly ``error`` and ``reason``, both strings."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) == {"error", "reason"}, body
    assert isinstance(body["error"], str) and isinstance(body["reason"], str)
    assert body["error"] == error, body
    if reason is not None:
        assert body["reason"] == reason, body
