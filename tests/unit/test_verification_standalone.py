"""verification/ runs alone: it imports only the standard library and ``cryptography``.

An auditor must be able to check the log with nothing but this package (docs/protocol.md), so
importing all of it in a fresh interpreter must not pull in the rest of tagledger or any other
third-party package.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import verification

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "domain",
    "ledger",
    "api",
    "pydantic",
    "psycopg",
    "rfc8785",
    "eventsourcing",
    "fastapi",
}
# cryptography's own native parts, and the package itself
ALLOWED_THIRD_PARTY = {"verification", "cryptography", "_cffi_backend", "cffi", "_openssl"}

PROBE = """
import importlib, json, sys
before = set(sys.modules)
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _verification_modules() -> list[str]:
    return ["verification"] + [
        module.name for module in pkgutil.walk_packages(verification.__path__, "verification.")
    ]


def test_all_submodules_are_probed() -> None:
    assert {
        "verification.canonical",
        "verification.encoding",
        "verification.envelope",
        "verification.entry",
    } <= set(_verification_modules())


def _imported_top_level(modules: list[str]) -> set[str]:
    """Top-level names of every module a fresh interpreter loads to import ``modules``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=modules)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {name.split(".")[0] for name in json.loads(result.stdout)}


def test_the_probe_sees_third_party_imports() -> None:
    assert "rfc8785" in _imported_top_level(["rfc8785"])


def test_verification_imports_only_stdlib_and_cryptography() -> None:
    top_level = _imported_top_level(_verification_modules())
    assert "verification" in top_level
    assert not top_level & FORBIDDEN, sorted(top_level & FORBIDDEN)
    others = top_level - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY
    assert not others, f"verification/ imports third-party modules: {sorted(others)}"
