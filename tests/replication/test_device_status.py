"""The status call that opens every tablet sync survives a flaky link, and still gives up plainly."""
from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest
from flask import Flask

from sync import errors
from sync.remote import STATUS_ATTEMPTS, device_status
from sync.devices import create_code, enrol
from tests.village import chw_in_village

from .faultproxy import FaultProxy

REFUSE_ALL = (0, 0, 0, 0, 1)  # every faulty connection answers a raw 503


@pytest.fixture
def token(app: Flask) -> str:
    with app.app_context():
        chw_in_village()
        return enrol(create_code("amina"), "tablet-1")[1]


def test_a_status_call_answered_503_twice_is_retried_until_it_gets_through(live_server: str, token: str) -> None:
    proxy = FaultProxy(urlsplit(live_server).port or 0, fault_rate=1.0, weights=REFUSE_ALL).start()

    def heal_after_two_refusals() -> None:
        while proxy.counts["refuse_503"] < 2:
            time.sleep(0.01)
        proxy.fault_rate = 0.0

    healer = threading.Thread(target=heal_after_two_refusals, daemon=True)
    healer.start()
    try:
        told = device_status(f"http://127.0.0.1:{proxy.port}", token, pause=0.2)
    finally:
        proxy.close()
    assert told["status"] == "active" and told["action"] == "none"  # nothing to do but sync
    assert proxy.counts["refuse_503"] == 2 and proxy.counts["pass"] >= 1


def test_a_link_that_stays_down_ends_in_a_transient_error_after_every_attempt(
        live_server: str, token: str) -> None:
    proxy = FaultProxy(urlsplit(live_server).port or 0, fault_rate=1.0, weights=REFUSE_ALL).start()
    try:
        with pytest.raises(errors.TransientError, match="503"):
            device_status(f"http://127.0.0.1:{proxy.port}", token, pause=0.01)
    finally:
        proxy.close()
    assert proxy.counts["refuse_503"] == STATUS_ATTEMPTS
