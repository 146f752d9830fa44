"""bench/build_large_store.py writes a store the ledger's own check and the auditor's replay accept (issue 13).

The builder skips the per-event rule checks of the write path and COPYs the rows into PostgreSQL; what makes that
acceptable is that the result is a ledger like any other: `tagledger check` (entries, Merkle tree, checkpoints),
`tagledger export` then `tagledger audit` (every entry replayed: canonical bytes, signatures, keys, hash links, the
custody and risk rules, the Merkle root of the signed checkpoint, the projection's digest), and the tag views carry
the state the histories were built to reach, with proofs. A byte flipped in one entry fails the audit at that entry.
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from ledger.cli import main as tagledger
from ledger.service import Ledger
from verification import audit
from verification.merkle import leaf_hash, verify_inclusion

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import build_large_store  # noqa: E402  (bench/build_large_store.py)


@pytest.fixture
def built(fresh_pg_url: str, tmp_path: Path) -> tuple[str, Path, dict]:
    home = tmp_path / "home"
    manifest = build_large_store.build(fresh_pg_url, home, 300, workers=2, groups_per_window=10, seed=3,
                                       log=lambda _: None)
    return fresh_pg_url, home, manifest


def _audit(bundle: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    capsys.readouterr()
    status = audit.main([str(bundle), "--no-state", "--workers", "0", "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_the_bulk_store_passes_the_check_and_the_audit_and_its_views_hold_the_planned_states(
        built: tuple[str, Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, home, manifest = built
    assert manifest["tags"] == 300 and manifest["projections"] == "up to date"
    assert manifest["windows"] == 3  # three COPY transactions after the setup, each with its checkpoint
    assert manifest["entries"] > 8 * 300  # full histories: ~10 entries per tag (fewer: the last window is under way)

    assert tagledger(["--home", str(home), "check", "--quiet"]) == 0

    bundle = tmp_path / "bundle.zip"
    assert tagledger(["--home", str(home), "export", "--out", str(bundle), "--quiet"]) == 0
    status, report = _audit(bundle, capsys)
    assert status == 0, report
    assert report["ok"] and report["size"] == manifest["entries"], report
    assert any(s["step"] == "projection" and "matches the replay" in s["result"] for s in report["steps"]), report

    ledger = Ledger.open(url)
    try:
        ledger.start_projection(follow=False)
        statuses = Counter()
        for tag, (status_, holder) in manifest["samples"].items():
            view = ledger.tag(tag)
            assert view is not None, tag
            assert (str(view.state.status), view.state.holder) == (status_, holder), tag
            assert view.problems == [] and view.flags == [], (tag, view.problems, view.flags)
            checkpoint = view.checkpoint
            assert checkpoint is not None and checkpoint.size == manifest["entries"]
            for entry in view.entries:  # every event with its proof, up to the signed checkpoint's root (or raises)
                verify_inclusion(leaf_hash(entry.raw), entry.seq, checkpoint.size, view.proofs[entry.seq],
                                 checkpoint.root)
            statuses[str(view.state.status)] += 1
        assert {"merged", "consumed"} <= set(statuses) and len(statuses) >= 3, statuses
        unused = ledger.tag(manifest["pools"]["unused"][0])
        assert unused is not None and str(unused.state.status) == "issued" and len(unused.entries) == 1
        lot = manifest["pools"]["lot"][0]
        view = ledger.tag(lot)
        assert view is not None and len(view.origins) >= 8  # a lot's bags (8 to 12), each with its origin
        assert ledger.tag("CD-S999-000001") is None
    finally:
        ledger.close()


def test_a_flipped_byte_in_one_entry_of_the_bulk_store_fails_the_audit_at_that_entry(
        built: tuple[str, Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, home, manifest = built
    bundle = tmp_path / "bundle.zip"
    assert tagledger(["--home", str(home), "export", "--out", str(bundle), "--quiet"]) == 0
    altered = tmp_path / "altered.zip"
    seq = manifest["entries"] // 2
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(altered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "entries.ndjson":
                lines = data.split(b"\n")
                at = lines[seq].index(b'"sig":"') + len(b'"sig":"')  # the first character of its signature
                line = bytearray(lines[seq])
                line[at] = ord("A") if line[at] != ord("A") else ord("B")
                lines[seq] = bytes(line)
                data = b"\n".join(lines)
            target.writestr(item, data)
    status, report = _audit(altered, capsys)
    assert status == 1 and not report["ok"]
    assert report["first_bad_entry"] == seq, report
    assert "signature" in report["failure"], report
