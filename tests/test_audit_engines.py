"""`tagledger audit` verifies signatures with the ledger's fast path (libsodium, then OpenSSL), `python -m
verification.audit` with OpenSSL alone; both accept the same bundle and both refuse one whose signature was changed,
naming the same entry. Each report names its engine."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ledger.bundle import export_bundle
from ledger.fast_signatures import ENGINE_FAST, engine
from tests.cli_process import ROOT, run_tagledger
from tests.ledger.world import World
from tests.test_audit import world  # noqa: F401 (the fixture: a small ledger on each store)

ARGS = ("--no-state", "--json", "--no-progress", "--workers", "1")


def _both(bundle: Path, vkey: str) -> dict[str, tuple[int, dict]]:
    fast = run_tagledger("audit", str(bundle), "--vkey", vkey, *ARGS, timeout=120)
    plain = subprocess.run([sys.executable, "-m", "verification.audit", str(bundle), "--vkey", vkey, *ARGS],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    return {name: (done.returncode, json.loads(done.stdout or "{}")) for name, done in
            (("tagledger", fast), ("verification", plain))}


def _changed_signature(bundle: Path, seq: int) -> Path:
    """The bundle with one character in the middle of entry `seq`'s signature changed (still canonical base64url)."""
    out = bundle.with_name("changed-signature.zip")
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "entries.ndjson":
                lines = data.split(b"\n")
                at = lines[seq].index(b'"sig":"') + len(b'"sig":"') + 20
                line = bytearray(lines[seq])
                line[at] = ord("B") if line[at] != ord("B") else ord("C")
                lines[seq] = bytes(line)
                data = b"\n".join(lines)
            dst.writestr(item, data)
    return out


def test_tagledger_audit_uses_the_fast_engine_and_verification_audit_does_not(world: World, tmp_path: Path) -> None:
    assert engine() == ENGINE_FAST  # the installed PyNaCl passes the self-test (else the comparison is moot)
    bundle = tmp_path / "ledger.zip"
    export_bundle(world.ledger, bundle)
    vkey = world.ledger.identity().vkey
    runs = _both(bundle, vkey)
    for name, (status, report) in runs.items():
        assert status == 0 and report["ok"] and report["size"] == world.ledger.store.size(), (name, report)
    assert runs["tagledger"][1]["signature_engine"] == "libsodium+openssl"
    assert runs["verification"][1]["signature_engine"] == "openssl"
    steps = {name: {s["step"]: s["result"] for s in report["steps"]} for name, (_, report) in runs.items()}
    assert "libsodium" in steps["tagledger"]["signatures"] and "libsodium" not in steps["verification"]["signatures"]

    target = world.ledger.store.size() - 2
    changed = _changed_signature(bundle, target)
    for name, (status, report) in _both(changed, vkey).items():
        assert status == 1 and report["first_bad_entry"] == target, (name, report)
        assert "signature.invalid" in report["failure"], (name, report)
