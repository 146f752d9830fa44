"""GET /v1/reports/due-diligence/{tag_id} over real HTTP, on both backends: JSON and printable HTML.

A lot formed at a processing depot from bags of one mine site, where a monitor reported an armed group (a red
flag) while the ore was in custody, with a corrective action assigned: the report names the bags, the site,
the incident and the action, balances the mass, and carries the proofs.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pytest

from tests.integration.conftest import LiveLedger
from verification.sealed_details import commitment, new_details


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def lot(live_ledger: LiveLedger) -> LiveLedger:
    live = live_ledger
    site = live.register("mine-a", "site", name="Mine A")
    depot = live.register("depot-a", "processor", name="Depot A")
    monitor = live.register("monitor-a", "monitor", name="Monitor A")
    live.operator.issue_tags("mine-a", prefix="BAG-", start=1, count=2)
    live.operator.issue_tags("depot-a", tags=["LOT-0001"])
    for tag in ("BAG-000001", "BAG-000002"):
        site.attach(tag, mineral="cobalt", mass_g=40_000, pit="P7")
        site.dispatch(tag, "depot-a")
        depot.receive(tag, mass_g=40_000)
    details = new_details("Armed men demanded payment at the pit entrance")
    monitor.report_incident("INC-7", site="mine-a", category="armed_groups", severity="high", occurred_at=stamp(),
                            details_sha256=commitment(details), summary="Armed group at the pit")
    live.operator.assign_action("INC-7", "A1", owner="mine-a", description="Suspend sales from the pit",
                                cycle=datetime.now(timezone.utc).strftime("%Y-%m"))
    depot.merge("LOT-0001", ["BAG-000001", "BAG-000002"], mass_g=79_950)
    return live


def test_the_json_report(lot: LiveLedger) -> None:
    response = lot.http.get("/v1/reports/due-diligence/LOT-0001")
    assert response.status_code == 200, response.text
    r = response.json()
    assert r["format"] == "tagledger/dd-report/v1" and r["tag"] == "LOT-0001"
    assert [(i["tag"], i["site"], i["mineral"], i["mass_g"]) for i in r["inputs"]] == [
        ("BAG-000001", "mine-a", "cobalt", 40_000), ("BAG-000002", "mine-a", "cobalt", 40_000)]
    assert r["mass_balance"]["loss_g"] == 50 and r["mass_balance"]["steps"][0]["difference_g"] == -50
    site = r["risk"]["sites"][0]
    assert site["site"] == "mine-a" and site["status_now"] == "red"
    incident = site["incidents"][0]
    assert incident["id"] == "INC-7" and incident["red_flag"] and incident["summary"] == "Armed group at the pit"
    assert incident["actions"][0]["description"] == "Suspend sales from the pit"
    assert "details" not in incident  # the sealed description never appears in a public report
    assert "Armed men demanded" not in response.text
    assert r["summary"]["unremediated_red_flags"] == 1
    events = [e for evs in r["proofs"]["events"].values() for e in evs]
    assert all("envelope" in e and "inclusion_proof" in e for e in events)


def test_the_printable_report(lot: LiveLedger) -> None:
    response = lot.http.get("/v1/reports/due-diligence/LOT-0001", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = html.unescape(response.text)
    for expected in ("Due-diligence report", "LOT-0001", "BAG-000001", "BAG-000002", "Mine A", "INC-7",
                     "RED FLAG", "Annex II 3-4: non_state_armed_groups", "Suspend sales from the pit", "@page"):
        assert expected in text, expected
    same = lot.http.get("/v1/reports/due-diligence/LOT-0001?format=html")
    assert same.status_code == 200 and "INC-7" in same.text


@pytest.mark.parametrize("path, status", [
    ("/v1/reports/due-diligence/NOPE-0001", 404),
    ("/v1/reports/due-diligence/not%20a%20tag", 400),
    ("/v1/reports/due-diligence/LOT-0001?format=pdf", 400),
    ("/v1/reports/due-diligence/LOT-0001?as_of=0", 400),
    ("/v1/reports/due-diligence/LOT-0001?as_of=abc", 400),
])
def test_bad_requests_are_problems(lot: LiveLedger, path: str, status: int) -> None:
    response = lot.http.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
