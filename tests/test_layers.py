"""Layering: the revision-tree modules stay pure (no Flask, no database, no models)."""
from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PURE_MODULES = ["sync.errors", "sync.revs", "sync.revtree", "sync.merge", "sync.docfields", "sync.scope",
                "sync.records.merge3", "sync.records.project"]
FORBIDDEN = ("flask", "flask_sqlalchemy", "sqlalchemy", "models", "api", "werkzeug", "psycopg")
ALLOWED_PROJECT_IMPORTS = {"sync.errors", "sync.revs", "sync.revtree"}


def test_pure_modules_load_no_framework_in_a_fresh_interpreter() -> None:
    code = (
        "import json, sys\n"
        f"import {', '.join(PURE_MODULES)}\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in forbidden)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_only_the_standard_library(module: str) -> None:
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = set()
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            imported.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            assert statement.level == 0, "use absolute imports in pure modules"
            imported.add(statement.module or "")
    outside = {name for name in imported
               if name.split(".")[0] not in sys.stdlib_module_names and name not in ALLOWED_PROJECT_IMPORTS}
    assert outside == set()


@pytest.mark.parametrize("module", ["sync.revs", "sync.revtree", "sync.merge"])
def test_revision_modules_follow_the_conventions(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert ast.get_docstring(tree), "module docstring"
    first_code = next(s for s in tree.body
                      if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)))
    assert isinstance(first_code, ast.ImportFrom) and first_code.module == "__future__"
    assert len(source.splitlines()) <= 250
    for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        assert function.returns is not None, f"{function.name}: return annotation"
        arguments = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
        assert all(a.annotation is not None for a in arguments if a.arg not in ("self", "cls")), function.name
        assert function.end_lineno is not None and function.end_lineno - function.lineno < 40, function.name
        if not function.name.startswith("_"):
            assert ast.get_docstring(function), f"{function.name}: docstring"
