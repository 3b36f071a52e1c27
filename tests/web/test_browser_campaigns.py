"""An organiser in a real browser (Debian's Chromium through Playwright): create a campaign, assign it, read progress.

The form is first sent with an end date before the start date and comes back with the error
next to its input; then the campaign is created and assigned to CHWs. The progress page of
a campaign with screenings shows its figures and its four server-drawn SVG charts, loaded
as images under the page's CSP (default-src 'self'), with no CSP violation reported.
Screenshots are kept under the test's tmp_path and copied to test-artifacts/browser-campaigns/.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.pool import NullPool

from models import db
from sync.reads import ReadOptions, get_doc
from sync.records.campaigns import list_campaigns
from sync.records.visibility import visibility_of
from tests.conftest import make_app, serve_in_thread

from .browser import keep_artifacts, launch, require_chromium
from .camp_data import DB, load

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Flask, str, str]]:
    """The small campaign data set on SQLite, served on loopback; and its campaign's id."""
    app = make_app(f"sqlite:///{tmp_path}/wasl.sqlite", SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool})
    campaign_id = load(app)
    yield from ((app, url, campaign_id) for url in serve_in_thread(app))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_an_organiser_creates_a_campaign_and_reads_its_progress(served: tuple[Flask, str, str],
                                                                tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright
    app, url, loaded_id = served
    shots_dir = tmp_path / "screens"
    shots_dir.mkdir()
    violations: list[str] = []
    charts: list[tuple[int, str]] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915})  # a small phone screen
            page.on("console", lambda msg: violations.append(msg.text)
                    if "Content Security Policy" in msg.text else None)
            page.on("response", lambda r: charts.append((r.status, r.headers.get("content-type", "")))
                    if "/charts/" in r.url else None)

            def shot(name: str) -> None:
                page.screenshot(path=str(shots_dir / f"{len(list(shots_dir.iterdir())) + 1:02d}-{name}.png"),
                                full_page=True)

            page.goto(f"{url}/login")
            page.fill("input[name=name]", "olga")
            page.fill("input[name=password]", "password1")
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Campaigns")  # the organiser's home page
            shot("campaigns")

            page.click("text=New campaign")
            page.fill("input[name=name]", "Child malaria week")
            page.fill("input[name=condition]", "malaria")
            page.select_option("select[name=areas]", ["north/d1", "north/d2"])
            page.fill("input[name=start_date]", "2026-06-10")
            page.fill("input[name=end_date]", "2026-06-01")
            page.fill("input[name=max_age]", "14")
            page.select_option("select[name=field_0]", "malaria_rdt")
            page.select_option("select[name=op_0]", "eq")
            page.fill("input[name=value_0]", "positive")
            page.fill("textarea[name=targets]", "north/d1: 120\nnorth/d2: 80")
            page.click("text=Create campaign")
            expect(page.locator("label", has_text="End date").locator(".flag")).to_contain_text(
                "Must not be before start_date.")
            shot("refused")
            page.fill("input[name=end_date]", "2026-06-20")
            page.click("text=Create campaign")
            expect(page.locator(".flash")).to_contain_text("Campaign created")
            created_id = page.url.rsplit("/", 1)[-1]
            page.select_option("select[name=chws]", ["c1", "c3"])
            page.click("text=Save assignment")
            expect(page.locator(".flash")).to_contain_text("Assigned to 2 area(s) and 2 CHW(s).")
            shot("assigned")

            page.goto(f"{url}/campaigns/{loaded_id}/progress")
            expect(page.locator("main")).to_contain_text("Screened: 6 of a target of 15 (40.0%)")
            images = page.locator("div.chart svg image")
            expect(images).to_have_count(4)
            for i in range(4):
                expect(page.locator("div.chart svg").nth(i)).to_be_visible()
                size = images.nth(i).evaluate(
                    "async el => { const img = new Image(); img.src = el.href.baseVal; await img.decode();"
                    " return [img.naturalWidth, img.naturalHeight]; }")
                assert size[0] == 600 and size[1] >= 320
            shot("progress")
            page.select_option("select[name=sex]", "female")
            page.click("main form.filters button[type=submit]")
            expect(page.locator("main")).to_contain_text("eligible registered population: 4")
            # The page's text can be in before its four charts have come back: wait for their replies
            # (the response events arrive while Playwright waits), or the count below races them.
            deadline = time.monotonic() + 15
            while len(charts) < 8 and time.monotonic() < deadline:
                page.wait_for_timeout(50)
            shot("progress-female")
        finally:
            browser.close()
    keep_artifacts(shots_dir, "browser-campaigns")
    assert len(list(shots_dir.glob("*.png"))) == 5
    assert violations == []
    assert len(charts) >= 8 and all(status == 200 and kind.startswith("image/svg+xml") for status, kind in charts)

    with app.app_context():
        doc: dict[str, Any] = get_doc(DB, created_id, None, ReadOptions())
        assert {k: doc[k] for k in ("name", "condition", "areas", "start_date", "end_date", "eligibility",
                                    "fields", "targets", "chws", "organiser")} == {
            "name": "Child malaria week", "condition": "malaria", "areas": ["north/d1", "north/d2"],
            "start_date": "2026-06-10", "end_date": "2026-06-20", "eligibility": {"max_age": 14},
            "fields": [{"field": "malaria_rdt", "op": "eq", "value": "positive", "refer": True}],
            "targets": {"north/d1": 120, "north/d2": 80}, "chws": ["c1", "c3"], "organiser": "olga"}
        assert [c.id for c in list_campaigns(DB, visibility_of("olga", ("organiser",)))] == [loaded_id]
