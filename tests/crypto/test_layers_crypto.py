"""Layering of crypto/: pure (no Flask, no database, no models), and the only home of cryptography.hazmat."""
from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

import crypto

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRYPTO_DIR = ROOT / "crypto"
MODULES = sorted(path.stem for path in CRYPTO_DIR.glob("*.py"))
FORBIDDEN = ("flask", "flask_sqlalchemy", "sqlalchemy", "models", "api", "sync", "werkzeug", "psycopg")
SKIP_DIRS = {".venv", "venv", ".git", "node_modules", "instance", "__pycache__", "build", "dist"}
# tests/crypto checks the recipes against cryptography's primitives directly (known answers), so it may import them.
HAZMAT_ALLOWED = (CRYPTO_DIR, ROOT / "tests" / "crypto")


def imports_of(path: pathlib.Path) -> set[str]:
    """Return every module name a Python file imports (absolute names; relative ones as '.name')."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def repo_python_files() -> list[pathlib.Path]:
    """Return the project's own .py files (not the virtualenv, node_modules or instance data)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        found += [pathlib.Path(folder) / name for name in files if name.endswith(".py")]
    return found


def test_crypto_loads_no_framework_in_a_fresh_interpreter() -> None:
    code = ("import json, sys\nimport crypto\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("module", MODULES)
def test_crypto_imports_only_stdlib_cryptography_and_itself(module: str) -> None:
    outside = {name for name in imports_of(CRYPTO_DIR / f"{module}.py")
               if not name.startswith(".") and name.split(".")[0] not in sys.stdlib_module_names
               and name.split(".")[0] != "cryptography"}
    assert outside == set()


def test_nothing_outside_crypto_imports_cryptography_hazmat() -> None:
    offenders = sorted(str(path.relative_to(ROOT)) for path in repo_python_files()
                       if not any(path.is_relative_to(allowed) for allowed in HAZMAT_ALLOWED)
                       and any(name == "cryptography.hazmat" or name.startswith("cryptography.hazmat.")
                               for name in imports_of(path)))
    assert offenders == []


def test_crypto_exports_are_sorted_and_present() -> None:
    assert crypto.__all__ == sorted(crypto.__all__)
    assert all(hasattr(crypto, name) for name in crypto.__all__)
    assert {"hash_password", "verify_password", "seal", "open_sealed", "unlock"} <= set(crypto.__all__)


@pytest.mark.parametrize("module", MODULES)
def test_crypto_modules_follow_the_conventions(module: str) -> None:
    source = (CRYPTO_DIR / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert ast.get_docstring(tree), "module docstring"
    first_code = next(s for s in tree.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)))
    assert isinstance(first_code, ast.ImportFrom) and first_code.module == "__future__"
    assert len(source.splitlines()) <= 150
    for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        assert function.returns is not None, f"{function.name}: return annotation"
        arguments = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
        assert all(a.annotation is not None for a in arguments if a.arg not in ("self", "cls")), function.name
        assert function.end_lineno is not None and function.end_lineno - function.lineno < 40, function.name
        assert ast.get_docstring(function), f"{function.name}: docstring"
