"""`tagledger verify-report FILE`: a saved due-diligence report checked offline, with verification/ only.

The report of a lot (two bags from a site where an armed group was reported, a corrective action assigned) is
saved as JSON once the log's checkpoint covers it; the genuine file verifies; each tampering (a bag's mass, a
dropped custody event, a risk fact, the Step 3 answer, a forged inclusion proof, a forged checkpoint) fails with
one line and a non-zero exit.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.cli import main
from tests.integration.conftest import LiveLedger
from tests.integration.test_dd_report import lot  # noqa: F401 - the fixture

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def saved(lot: LiveLedger, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    lot.ledger.publish_checkpoint()  # the report's events all covered by the signed checkpoint
    report = lot.http.get("/v1/reports/due-diligence/LOT-0001").json()
    assert all(e["inclusion_proof"] for evs in report["proofs"]["events"].values() for e in evs)
    assert report["proofs"]["risk_events"]["INC-7"] and report["proofs"]["log"]["key"]
    return report


def run(report: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    code = main(["verify-report", str(path), *extra])
    out = capsys.readouterr()
    return code, (out.out + out.err).strip()


def test_a_genuine_report_verifies(saved: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   lot: LiveLedger) -> None:  # noqa: F811
    code, said = run(saved, tmp_path, capsys)
    assert code == 0, said
    assert said.startswith("verify-report: OK: report for LOT-0001 verifies") and "OECD Step 3: suspend" in said
    # pinned to the log key the operator publishes
    key = lot.http.get("/v1/log/key").json()["vkey"]
    code, said = run(saved, tmp_path, capsys, "--log-key", key)
    assert code == 0, said


def _bag(report: dict[str, Any], tag: str = "BAG-000001") -> dict[str, Any]:
    return next(c for c in report["chain"] if c["tag"] == tag)


def _set_mass(r: dict[str, Any]) -> None:
    next(i for i in r["inputs"] if i["tag"] == "BAG-000001")["mass_g"] = 45_000


def _set_signed_mass(r: dict[str, Any]) -> None:
    event = next(e for e in r["proofs"]["events"]["BAG-000001"] if e["envelope"]["body"]["type"] == "tag_attached")
    event["envelope"]["body"]["data"]["mass_g"] = 45_000


def _drop_event(r: dict[str, Any]) -> None:
    index = next(n for n, e in enumerate(r["proofs"]["events"]["BAG-000001"])
                 if e["envelope"]["body"]["type"] == "custody_dispatched")
    del r["proofs"]["events"]["BAG-000001"][index]
    del _bag(r)["custody"][index]


def _risk_fact(r: dict[str, Any]) -> None:
    r["risk"]["sites"][0]["incidents"][0]["severity"] = "low"


def _close_incident(r: dict[str, Any]) -> None:
    r["risk"]["sites"][0]["incidents"][0]["status"] = "closed"


def _step3(r: dict[str, Any]) -> None:
    r["decision"]["risk"]["step3"]["recommendation"] = "continue"


def _completeness(r: dict[str, Any]) -> None:
    r["decision"]["chain_of_custody"]["complete"] = 1


def _annex_reading(r: dict[str, Any]) -> None:
    r["decision"]["risk"]["annex_ii"][0]["unresolved"] = []


def _forge_proof(r: dict[str, Any]) -> None:
    proof = r["proofs"]["events"]["BAG-000001"][1]["inclusion_proof"]
    proof["hashes"][0] = "00" * 32


def _forge_checkpoint(r: dict[str, Any]) -> None:
    r["proofs"]["log"]["checkpoint"] = r["proofs"]["log"]["checkpoint"].replace("\n", "\n", 1).replace(
        str(r["proofs"]["log"]["size"]), str(r["proofs"]["log"]["size"] + 1), 1)


TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "changed mass": (_set_mass, "input bag BAG-000001: mass_g is 45000, the signed event says 40000"),
    "changed signed mass": (_set_signed_mass, "the event was altered"),
    "dropped event": (_drop_event, "an event is missing"),
    "altered risk fact": (_risk_fact, "INC-7: severity is 'low', the signed events give 'high'"),
    "incident said closed": (_close_incident, "INC-7: status is 'closed'"),
    "altered Step 3": (_step3, "Step 3 recommendation 'continue' is not the one the signed facts give ('suspend')"),
    "forged proof": (_forge_proof, "inclusion proof does not verify"),
    "altered completeness": (_completeness, "decision.chain_of_custody is not what the signed chains give"),
    "altered Annex II reading": (_annex_reading, "decision.risk.annex_ii is not what the signed incidents give"),
    "forged checkpoint": (_forge_checkpoint, "the checkpoint does not verify"),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_a_tampered_report_fails_in_one_line(saved: dict[str, Any], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], how: str) -> None:
    tamper, expected = TAMPERING[how]
    report = copy.deepcopy(saved)
    tamper(report)
    code, said = run(report, tmp_path, capsys)
    assert code != 0
    assert "\n" not in said and said.startswith("verify-report: FAILED: ") and expected in said, said


def test_another_log_key_is_refused(saved: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ledger.keys import KeyPair
    from verification.note import encode_vkey

    other = encode_vkey("tagledger.test/log", KeyPair.generate().public_raw)
    code, said = run(saved, tmp_path, capsys, "--log-key", other)
    assert code != 0 and "is not the log key given" in said and "\n" not in said


def test_an_uncovered_report_says_to_save_it_again(saved: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    report = copy.deepcopy(saved)
    report["proofs"]["events"]["LOT-0001"][-1]["inclusion_proof"] = None
    code, said = run(report, tmp_path, capsys)
    assert code != 0 and "save the report again after the next checkpoint" in said
