"""A supervisor's day in a real browser (Debian's Chromium through Playwright), then the CHW's tablet.

Sign in, filter the visit log, open a visit, review it (has issues, with a comment), settle
a conflict, merge two duplicate patients; screenshots are kept under the test's tmp_path and
copied to test-artifacts/browser-supervisor/. Then a stock PouchDB 9, signed in as the CHW
who made the visit, pulls the records database and receives the review document.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.pool import NullPool

from models import db
from models.conflicts import ConflictRecord
from models.duplicates import PatientMerge
from tests.conftest import make_app, serve_in_thread
from tests.pouch import docs_by_id, run_peer, step_result

from .browser import keep_artifacts, launch, require_chromium
from .test_supervise import build_supervised
from .test_visit_log import DB, password

pytestmark = [pytest.mark.browser, pytest.mark.pouchdb]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    """The supervisors' world on SQLite, served on loopback (one engine: the pages are engine-blind)."""
    app = make_app(f"sqlite:///{tmp_path}/wasl.sqlite", SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool})
    build_supervised(app)
    yield from ((app, url) for url in serve_in_thread(app))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Shots:
    """Numbered screenshots of a page, kept as test artifacts."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)


def test_a_supervisor_reviews_resolves_and_merges_and_the_chw_receives_the_review(
        served: tuple[Flask, str], tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright
    app, url = served
    shots_dir = tmp_path / "screens"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915})  # a small phone screen
            shots = Shots(page, shots_dir)
            page.goto(f"{url}/login")
            page.fill("input[name=name]", "sara")
            page.fill("input[name=password]", password("sara"))
            page.click("button[type=submit]")
            expect(page.locator("#total")).to_have_text("5 visits")
            shots.take("visit-log")

            page.select_option("select[name=chw]", "amina")
            page.click("form.filters button[type=submit]")
            expect(page.locator("#total")).to_have_text("3 visits")
            assert "chw=amina" in page.url
            shots.take("filtered")

            page.click('a[href="/visits/vs-a1"]')
            expect(page.locator("h1")).to_contain_text("Routine visit")
            photo = page.locator("img[alt='arm.png']")
            expect(photo).to_be_visible()
            assert photo.evaluate("img => img.naturalWidth") == 48  # served, decoded, shown
            shots.take("visit")
            page.check("input[name=state][value=has_issues]")
            page.fill("textarea[name=comment]", "Repeat the blood pressure after rest")
            page.click("text=Save review")
            expect(page.locator("#review-state")).to_contain_text("Has issues")
            shots.take("reviewed")

            page.click("header nav >> text=Conflicts")
            page.click("table a >> text=Aisha Okello")
            other = page.locator("section.value", has_text="Other value")
            kept_value = other.locator("pre").inner_text().strip().strip('"')
            other.locator("button", has_text="Keep this value").click()
            expect(page.locator(".flash.ok")).to_contain_text("The chosen value is kept")
            shots.take("conflict-settled")

            page.click("header nav >> text=Duplicates")
            page.click("text=Compare")
            page.check("input[name=survivor][value=pt-d1]")
            page.click("button >> text=Merge")
            expect(page.locator(".flash.ok")).to_contain_text("Merged.")
            shots.take("merged")
        finally:
            browser.close()
    keep_artifacts(shots_dir, "browser-supervisor")
    assert len(list(shots_dir.glob("*.png"))) == 6

    with app.app_context():
        conflict = db.session.scalar(db.select(ConflictRecord).where(ConflictRecord.doc_id == "pt-1"))
        assert conflict is not None and (conflict.state, conflict.decided_by) == ("changed", "sara")
        assert kept_value.startswith("+254")
        merge = db.session.scalar(db.select(PatientMerge))
        assert merge is not None and (merge.survivor_id, merge.merged_id, merge.by) == ("pt-d1", "pt-d2", "sara")

    # The CHW's tablet: a stock PouchDB signed in as amina pulls her scope, the review included.
    remote = url.replace("http://", f"http://amina:{password('amina')}@") + f"/couch/{DB}"
    result = run_peer({"remotes": {"server": remote}, "steps": [
        {"op": "replicate", "source": "server", "target": "local", "as": "pull"},
        {"op": "allDocs", "options": {"include_docs": True}, "as": "held"}]})
    assert step_result(result, "pull")["ok"] is True
    held = docs_by_id(step_result(result, "held"))
    review = held["review-vs-a1"]
    assert {k: review[k] for k in ("type", "visit_id", "chw", "state", "comment", "reviewer")} == {
        "type": "review", "visit_id": "vs-a1", "chw": "amina", "state": "has_issues",
        "comment": "Repeat the blood pressure after rest", "reviewer": "sara"}
    assert "vs-b1" not in held and "vs-z1" not in held  # her scope only: not bashir's village, not elsewhere
