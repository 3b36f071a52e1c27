"""``wasl device`` on the tablet's side, against a live server: enrol, sync, status,
retire, revoke, PIN and key changes, each failure one plain line."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result
from flask import Flask

from sync.device import DeviceStore
from sync.devices import create_code
from tests.conftest import ADMIN
from tests.village import chw_in_village, patient, visit

PIN = "482915"


def run(*args: str, pin: str = PIN, **env: str) -> Result:
    from wasl_cli import main
    return CliRunner().invoke(main, ["device", *args], env={"WASL_PIN": pin, **env})


@pytest.fixture
def enrolled(app: Flask, live_server: str, tmp_path: Path) -> dict[str, Any]:
    """A CHW account, the database, and a tablet enrolled through the CLI."""
    with app.app_context():
        chw_in_village("amina")
        code = create_code("amina")
    requests.put(f"{live_server}/couch/records", auth=ADMIN, timeout=10)
    store = tmp_path / "tablet.db"
    result = run("enrol", "--server", live_server, "--code", code, "--store", str(store), "--name", "tab-1",
                 "--db", "records")
    assert result.exit_code == 0, result.output
    assert "enrolled as amina" in result.output
    device_id = result.output.split("(device ")[1].split(")")[0]
    return {"store": store, "server": live_server, "device_id": device_id}


def server_doc(server: str, doc_id: str) -> requests.Response:
    return requests.get(f"{server}/couch/records/{doc_id}", auth=ADMIN, timeout=10)


def test_sync_pushes_and_pulls_and_status_counts_what_waits(enrolled: dict[str, Any]) -> None:
    store, server = enrolled["store"], enrolled["server"]
    with DeviceStore.open(str(store), PIN) as local:
        local.put(visit("visit-1", bp=[150, 95]))
    assert "waiting to push: 1" in run("status", "--store", str(store)).output
    requests.put(f"{server}/couch/records/patient-9", json=patient("patient-9"), auth=ADMIN, timeout=10)
    result = run("sync", "--store", str(store))
    assert result.exit_code == 0, result.output
    assert "push: 1 documents written" in result.output and "pull: 1 documents written" in result.output
    assert server_doc(server, "visit-1").json()["bp"] == [150, 95]
    with DeviceStore.open(str(store), PIN) as local:
        assert local.get("patient-9")["type"] == "patient"
    assert "waiting to push: 0" in run("status", "--store", str(store)).output


def test_plain_errors_for_pin_network_and_missing_store(enrolled: dict[str, Any], tmp_path: Path) -> None:
    wrong = run("sync", "--store", str(enrolled["store"]), pin="000000")
    assert wrong.exit_code == 1 and wrong.output.strip() == "Error: wrong PIN"
    missing = run("status", "--store", str(tmp_path / "none.db"))
    assert missing.exit_code == 1 and "enrol this device first" in missing.output
    offline = run("enrol", "--server", "http://127.0.0.1:9", "--code", "AAAA-BBBB-CCCC",
                  "--store", str(tmp_path / "other.db"))
    assert offline.exit_code == 1 and "cannot reach http://127.0.0.1:9" in offline.output
    assert not (tmp_path / "other.db").exists()  # nothing half-created
    used = run("enrol", "--server", enrolled["server"], "--code", "AAAA-BBBB-CCCC", "--store", str(tmp_path / "x.db"))
    assert used.exit_code == 1 and "Unknown, used or expired enrolment code" in used.output
    assert "Traceback" not in wrong.output + missing.output + offline.output + used.output


def test_a_retired_device_pushes_then_wipes(enrolled: dict[str, Any]) -> None:
    store, server = enrolled["store"], enrolled["server"]
    with DeviceStore.open(str(store), PIN) as local:
        local.put(visit("visit-2"))
    requests.post(f"{server}/api/v1/devices/{enrolled['device_id']}/retire", auth=ADMIN, timeout=10)
    result = run("sync", "--store", str(store))
    assert result.exit_code == 0 and "retired" in result.output, result.output
    assert server_doc(server, "visit-2").status_code == 200  # the unsynced visit reached the server first
    assert not store.exists()


def test_a_revoked_device_is_refused_and_wipes(enrolled: dict[str, Any]) -> None:
    store, server = enrolled["store"], enrolled["server"]
    with DeviceStore.open(str(store), PIN) as local:
        local.put(visit("visit-3"))
    requests.post(f"{server}/api/v1/devices/{enrolled['device_id']}/revoke", auth=ADMIN, timeout=10)
    result = run("sync", "--store", str(store))
    assert result.exit_code == 1 and "revoked; its copy has been wiped" in result.output
    assert not store.exists() and server_doc(server, "visit-3").status_code == 404


def test_change_pin_and_rotate_key_keep_the_data(enrolled: dict[str, Any]) -> None:
    store = enrolled["store"]
    with DeviceStore.open(str(store), PIN) as local:
        local.put(visit("visit-4", glucose=13.7))
    changed = run("change-pin", "--store", str(store), WASL_NEW_PIN="731904")
    assert changed.exit_code == 0 and "PIN changed" in changed.output
    assert run("status", "--store", str(store)).output.strip() == "Error: wrong PIN"
    rotated = run("rotate-key", "--store", str(store), pin="731904")
    assert rotated.exit_code == 0 and "rotated" in rotated.output
    with DeviceStore.open(str(store), "731904") as local:
        assert local.get("visit-4")["glucose"] == 13.7
    no_key = run("export-recovery", "--store", str(store), "--out", str(store.parent / "r.json"), pin="731904")
    assert no_key.exit_code == 1 and "no recovery key" in no_key.output


def test_a_retired_device_keeps_its_copy_while_documents_are_refused(enrolled: dict[str, Any]) -> None:
    store, server = enrolled["store"], enrolled["server"]
    with DeviceStore.open(str(store), PIN) as local:
        local.put(visit("visit-5", area="north/d1/v2"))  # outside the CHW's village: the server refuses it
        local.put(visit("visit-6"))
    requests.post(f"{server}/api/v1/devices/{enrolled['device_id']}/retire", auth=ADMIN, timeout=10)
    result = run("sync", "--store", str(store))
    assert "refused by the server: visit-5 (forbidden:" in result.output
    assert result.exit_code == 1 and "not wiping" in result.output
    assert server_doc(server, "visit-6").status_code == 200 and server_doc(server, "visit-5").status_code == 404
    with DeviceStore.open(str(store), PIN) as local:
        assert local.get("visit-5")["area"] == "north/d1/v2"  # the refused visit is still on the tablet
