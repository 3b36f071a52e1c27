"""The whole REST API against its own OpenAPI document, with schemathesis, signed in as an admin.

Every operation of /api/v1/openapi.json is called with generated requests (valid and
invalid) over a small demo data set (``wasl demo`` with a few households: visits, a
campaign, referrals, conflicts, duplicates, quarantined documents): no reply may be a
server error, and every reply must have a documented status code and content type and
match its documented schema. Few examples per operation keep the run well under a minute.
"""
from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from sqlalchemy.pool import NullPool

from api import create_app
from models import db, init_db
from sync.records.demo import load_demo
from sync.records.demodata import CAMPAIGN_ID
from tests.conftest import ADMIN

# identity: the WSGI transport hands schemathesis the body as sent, and gzip (api.compression) it cannot read.
HEADERS = {"Authorization": "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode(),
           "Accept-Encoding": "identity"}
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


# The schema is read from the app when the module is collected (schemathesis' fixture-based
# loader does not run under this pytest), so the app exists from then on, on a file of its
# own; its tables and data are made by the fixture below, before the first call.
WORKDIR = Path(tempfile.mkdtemp(prefix="wasl-schemathesis-"))
APP = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{WORKDIR}/wasl.sqlite",
                  "SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool}, "WASL_RECORDS_DB": "records",
                  "WASL_ADMIN_PASSWORD": ADMIN[1]})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def demo_data() -> Iterator[None]:
    """A small demo data set (the API is engine-blind; both engines are tested elsewhere)."""
    with APP.app_context():
        init_db()
        load_demo(APP.config["WASL_RECORDS_DB"], households=20, seed=3)
    yield
    with APP.app_context():
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(WORKDIR, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_reply_matches_the_openapi_document(case: Any) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS)


def _open_referral() -> str:
    """An open referral of the demo."""
    from sqlalchemy import select

    from models.health import Referral
    with APP.app_context():
        found = db.session.scalar(select(Referral.doc_id).where(
            Referral.status == "open").order_by(Referral.doc_id))
    assert found is not None
    return str(found)


CALLS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("GET /api/v1/campaigns", {}, {}),
    ("GET /api/v1/campaigns/{campaign_id}", {"path_parameters": {"campaign_id": CAMPAIGN_ID}}, {}),
    ("GET /api/v1/campaigns/{campaign_id}/progress", {"path_parameters": {"campaign_id": CAMPAIGN_ID}}, {}),
    ("GET /api/v1/campaigns/{campaign_id}/progress",
     {"path_parameters": {"campaign_id": CAMPAIGN_ID}, "query": {"sex": "female", "area": "sahel/amara"}}, {}),
    ("GET /api/v1/campaigns/{campaign_id}/export.csv", {"path_parameters": {"campaign_id": CAMPAIGN_ID}}, {}),
    ("GET /api/v1/campaigns/{campaign_id}/export.xlsx", {"path_parameters": {"campaign_id": CAMPAIGN_ID},
                                                         "query": {"band": "30-44"}}, {}),
    ("PUT /api/v1/campaigns/{campaign_id}", {"path_parameters": {"campaign_id": CAMPAIGN_ID},
                                             "body": {"name": "Screening, renamed"}}, {}),
    ("GET /api/v1/referrals", {"query": {"status": "open"}}, {}),
]


@pytest.mark.parametrize("label, parts, _", CALLS, ids=[f"{c[0]} {i}" for i, c in enumerate(CALLS)])
def test_replies_with_data_match_the_document_too(label: str, parts: dict[str, Any], _: Any) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    response = operation.Case(**parts).call_and_validate(headers=HEADERS, checks=CHECKS)
    assert response.status_code == 200


def test_a_status_change_matches_the_document() -> None:
    operation = schema.find_operation_by_label("POST /api/v1/referrals/{referral_id}/status")
    assert operation is not None
    case = operation.Case(path_parameters={"referral_id": _open_referral()}, media_type="application/json",
                          body={"status": "received", "note": "ok"})
    response = case.call_and_validate(headers=HEADERS, checks=CHECKS)
    assert response.status_code == 200 and response.json()["status"] == "received"
