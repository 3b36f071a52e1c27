"""Drive the stock PouchDB 9 peer (tests/peer/peer.mjs) from pytest."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

PEER_DIR = Path(__file__).resolve().parent / "peer"
PEER_SCRIPT = PEER_DIR / "peer.mjs"


def peer_missing() -> str | None:
    """Say why the PouchDB peer cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not on PATH (install Node 20)"
    if not (PEER_DIR / "node_modules" / "pouchdb-core").is_dir():
        return "tests/peer/node_modules is missing (run: npm ci --prefix tests/peer)"
    return None


def require_peer() -> None:
    """Skip the calling test when the peer is missing; fail instead under CI=true (STYLE.md 5.6)."""
    reason = peer_missing()
    if reason is None:
        return
    # In CI a silent skip would hide that the interoperability suite never ran.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PouchDB peer required in CI: {reason}", pytrace=False)
    pytest.skip(f"PouchDB peer unavailable: {reason}")


def run_peer(script: dict[str, Any], timeout: float = 120, check: bool = True) -> dict[str, Any]:
    """Run ``script`` in node's PouchDB peer and return its JSON result.

    :raise AssertionError: node crashed, timed out or printed no JSON; or, with ``check``, a step failed.
    """
    require_peer()
    try:
        proc = subprocess.run(["node", str(PEER_SCRIPT)], input=json.dumps(script), capture_output=True,
                              text=True, encoding="utf-8", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"PouchDB peer timed out after {timeout} s\n"
                             f"stderr:\n{_text(exc.stderr)}") from None
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"PouchDB peer exited {proc.returncode} without a JSON result\n"
                             f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}") from None
    if check and not result.get("ok"):
        raise AssertionError("PouchDB peer step failed: " + json.dumps(
            {"error": result.get("error"), "http_errors": result.get("http_errors"),
             "steps": [_brief(step) for step in result.get("steps", [])]}, indent=1, ensure_ascii=False))
    return result


def _text(data: str | bytes | None) -> str:
    """Decode what TimeoutExpired captured (bytes even in text mode)."""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")[-4000:]
    return (data or "")[-4000:]


def _brief(step: dict[str, Any]) -> dict[str, Any]:
    """Trim a step record for an assertion message: big results would bury the error."""
    return {k: v for k, v in step.items() if k != "result" or len(json.dumps(v)) < 800}


def docs_by_id(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Map id -> doc from an ``allDocs({include_docs: true})`` result (the peer's or the server's)."""
    return {row["id"]: row["doc"] for row in snapshot["rows"]}


def step_result(result: dict[str, Any], name: str) -> Any:
    """Return the result a step stored under ``"as": name``."""
    assert name in result["results"], f"no step result named {name!r}: {sorted(result['results'])}"
    return result["results"][name]
