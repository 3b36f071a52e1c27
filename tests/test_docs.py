"""Every setting the code reads is documented (a setting nobody can find is a setting nobody can use)."""
from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETTING = re.compile(r"\bWASL_[A-Z][A-Z_]*[A-Z]\b")
READ_ONLY_BY_TESTS = {"WASL_PG_BIN", "WASL_PEER_SERVER"}


def test_every_wasl_setting_read_by_the_code_is_in_docs_configuration() -> None:
    code = "".join(path.read_text(encoding="utf-8") for package in ("api", "sync", "models", "crypto", "wasl_cli")
                   for path in (ROOT / package).rglob("*.py"))
    read = set(SETTING.findall(code)) - READ_ONLY_BY_TESTS
    documented = set(SETTING.findall((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")))
    assert read, "the scan found no settings at all"
    assert sorted(read - documented) == []
