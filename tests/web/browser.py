"""Debian's Chromium driven by Playwright, for the browser tests (never `playwright install`)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# Seen working as root on these machines (DESIGN.md, "Real components").
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def require_chromium() -> None:
    """Skip without Chromium; under CI=true its absence fails the run (make test installs it)."""
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is required in CI (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed")


def launch(playwright: Any) -> Any:
    """A headless Chromium from Debian's package."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def keep_artifacts(screens: Path, name: str) -> None:
    """Copy a test's screenshots to test-artifacts/<name>/ (kept by CI, ignored by git)."""
    target = ARTIFACTS / name
    target.mkdir(parents=True, exist_ok=True)
    for picture in sorted(screens.glob("*.png")):
        shutil.copy(picture, target / picture.name)
