"""The risk context of a tag's origin sites (protocol 16.6) and the due-diligence report (16.7), on both backends.

Histories are recorded through the signed write path (tests/ledger/world.py): incidents at the mine site before,
during and after the ore's custody, a lot formed from bags of two sites, and the report's mass balance and
proofs checked against the log itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from ledger.dd_report import due_diligence_report
from ledger.entries import read_entry
from ledger.keys import KeyPair
from ledger.client import LedgerClient, LocalTransport, Signer
from ledger.views import tag_document
from tests.ledger.world import World, attach_and_deliver, make_world
from verification.canonical import jcs
from verification.encoding import format_time, parse_time
from verification.merkle import leaf_hash, verify_inclusion
from verification.sealed_details import commitment, new_details


@pytest.fixture
def world(store_url: str):
    w = make_world(store_url, tags=12)
    w.ledger.start_projection(follow=False)
    keys = KeyPair.generate()  # a second mine site
    w.operator.register_org("rubaya", "Rubaya", "site", "CD", [keys.public_key], time=w.tick())
    w.keys["rubaya"] = keys
    w.clients["rubaya"] = LedgerClient(LocalTransport(w.ledger), Signer("rubaya", keys))
    w.operator.issue_tags("rubaya", prefix="RUB-", start=1, count=4, time=w.tick())
    yield w
    w.ledger.close()


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def report(world: World, incident: str, site: str = "kalimbi", *, category: str = "armed_groups",
           severity: str = "medium", occurred: datetime | None = None, **extra: Any) -> None:
    occurred_at = stamp(occurred or world.tick(1))
    world.clients["monitor"].report_incident(
        incident, site=site, category=category, severity=severity, occurred_at=occurred_at,
        details_sha256=commitment(new_details("what the monitor saw")), time=world.tick(), **extra)


def remediate(world: World, incident: str) -> None:
    """Confirm, assign one action, implement and verify it, close."""
    world.clients["monitor"].confirm_incident(incident, time=world.tick())
    world.operator.assign_action(incident, "A1", owner="kalimbi", description="Fix it",
                                 cycle=world.clock.strftime("%Y-%m"), time=world.tick())
    world.clients["kalimbi"].report_progress(incident, "A1", "done", percent=100, time=world.tick())
    world.clients["monitor"].verify_action(incident, "A1", "implemented", time=world.tick())
    world.clients["monitor"].close_incident(incident, "remediated", time=world.tick())


def risk_of(world: World, tag: str, as_of: int | None = None) -> dict[str, Any]:
    return tag_document(world.ledger.tag(tag, as_of=as_of), world.ledger.registry())["risk"]


def listed(risk: dict[str, Any], site: str = "kalimbi") -> list[str]:
    return [i["id"] for s in risk["sites"] if s["site"] == site for i in s["incidents"]]


def test_incidents_open_while_the_ore_was_in_custody_are_listed(world: World) -> None:
    report(world, "INC-BEFORE", category="environment", severity="low")
    world.clients["monitor"].dismiss_incident("INC-BEFORE", "checked: no pollution", time=world.tick())
    report(world, "INC-OPEN-BEFORE", category="health_safety", severity="high")  # still open when tagged
    attach_and_deliver(world, "KAL-000001")
    report(world, "INC-DURING")  # armed group: always a red flag
    risk = risk_of(world, "KAL-000001")
    assert listed(risk) == ["INC-DURING", "INC-OPEN-BEFORE"]  # newest first; the dismissed one is not
    assert risk["open_red_flags_in_window"] == 2
    assert risk["unremediated"] == 2 and risk["remediated"] == 0
    site = risk["sites"][0]
    assert site["status_now"] == "red" and site["site_name"] == "Kalimbi"
    during = site["incidents"][0]
    assert during["red_flag"] and during["annex_ii"] == [{"risk": "non_state_armed_groups", "paragraphs": "3-4"}]


def test_an_incident_after_the_custody_ended_is_not_the_tags(world: World) -> None:
    attach_and_deliver(world, "KAL-000001", to="refiner")
    world.clients["refiner"].consume("KAL-000001", time=world.tick())
    world.clients["monitor"].scan("KAL-000001", gps={"lat": "-1.94", "lon": "30.06"}, time=world.tick())
    report(world, "INC-LATER")  # occurred after the consumption: not this ore's
    risk = risk_of(world, "KAL-000001")
    assert listed(risk) == []
    assert risk["sites"][0]["status_now"] == "red"  # the site's status now says so nonetheless
    end = risk["sites"][0]["window"]["to"]
    consumed = [e for e in world.ledger.tag("KAL-000001").entries if e.body["type"] == "tag_consumed"][0]
    assert parse_time(end) == parse_time(consumed.body["time"])  # the later scan does not extend custody


def test_a_remediated_red_flag_is_counted_as_such(world: World) -> None:
    attach_and_deliver(world, "KAL-000001")
    report(world, "INC-1", category="child_labour", worst_forms=True, severity="low")
    remediate(world, "INC-1")
    risk = risk_of(world, "KAL-000001")
    assert listed(risk) == ["INC-1"]
    incident = risk["sites"][0]["incidents"][0]
    assert incident["red_flag"] and incident["remediated"] and incident["status"] == "closed"
    assert incident["actions"][0]["status"] == "implemented" and not incident["actions"][0]["overdue"]
    assert (risk["remediated"], risk["unremediated"]) == (1, 0)
    assert risk["sites"][0]["status_now"] == "green"


def test_an_incident_reported_late_about_the_window_is_listed(world: World) -> None:
    attach_and_deliver(world, "KAL-000001", to="refiner")
    during = world.tick()
    world.clients["refiner"].consume("KAL-000001", time=world.tick())
    report(world, "INC-LATE", occurred=during)
    assert listed(risk_of(world, "KAL-000001")) == ["INC-LATE"]


def test_a_lot_carries_the_risk_of_every_site_of_its_bags(world: World) -> None:
    attach_and_deliver(world, "KAL-000001", to="depot")
    world.clients["rubaya"].attach("RUB-000001", mineral="tantalum", mass_g=30_000, pit="R1", time=world.tick())
    world.clients["rubaya"].dispatch("RUB-000001", "depot", time=world.tick())
    world.clients["depot"].receive("RUB-000001", mass_g=30_000, time=world.tick())
    report(world, "INC-RUB", site="rubaya", category="security_forces", severity="high")
    world.clients["depot"].merge("LOT-0001", ["KAL-000001", "RUB-000001"], mass_g=79_900, time=world.tick())
    risk = risk_of(world, "LOT-0001")
    assert [s["site"] for s in risk["sites"]] == ["kalimbi", "rubaya"]
    assert listed(risk, "rubaya") == ["INC-RUB"] and listed(risk, "kalimbi") == []
    assert risk["open_red_flags_in_window"] == 1


def test_as_of_shows_what_was_known_then(world: World) -> None:
    attach_and_deliver(world, "KAL-000001")
    report(world, "INC-1")
    before_close = world.ledger.store.size()
    remediate(world, "INC-1")
    then = risk_of(world, "KAL-000001", as_of=before_close)
    now = risk_of(world, "KAL-000001")
    assert then["sites"][0]["incidents"][0]["status"] == "reported" and then["unremediated"] == 1
    assert now["sites"][0]["incidents"][0]["status"] == "closed" and now["unremediated"] == 0
    last = world.ledger.store.read_range(before_close - 1, before_close)[0]
    assert then["at"] == format_time(parse_time(read_entry(last.data).received))


def test_an_overdue_action_shows_in_the_tag_view(store_url: str) -> None:
    world = make_world(store_url, tags=2, days_ago=70)  # the action's month is over by now
    attach_and_deliver(world, "KAL-000001")
    report(world, "INC-1", category="governance", severity="medium")
    world.operator.assign_action("INC-1", "A1", owner="coop", description="Stop the illegal levy",
                                 cycle=world.clock.strftime("%Y-%m"), time=world.tick())
    risk = risk_of(world, "KAL-000001")
    action = risk["sites"][0]["incidents"][0]["actions"][0]
    assert action["status"] == "open" and action["overdue"] is True
    assert risk["open_red_flags_in_window"] == 0  # governance at medium severity is not a red flag
    assert risk["sites"][0]["status_now"] == "amber"
    world.ledger.close()


# --- the due-diligence report ------------------------------------------------------------------------------


def test_the_due_diligence_report_of_a_lot(world: World) -> None:
    for tag in ("KAL-000001", "KAL-000002"):
        attach_and_deliver(world, tag, to="depot", grams=50_000)  # received at 49,900 g each
    report(world, "INC-1", category="child_labour", worst_forms=True)
    world.clients["depot"].merge("LOT-0001", ["KAL-000001", "KAL-000002"], mass_g=99_700, time=world.tick())
    world.clients["depot"].dispatch("LOT-0001", "refiner", time=world.tick())
    world.clients["refiner"].receive("LOT-0001", mass_g=99_600, time=world.tick())

    r = due_diligence_report(world.ledger, "LOT-0001")
    assert r["format"] == "tagledger/dd-report/v1"
    assert [i["tag"] for i in r["inputs"]] == ["KAL-000001", "KAL-000002"]
    assert all(i["site"] == "kalimbi" and i["mass_g"] == 50_000 for i in r["inputs"])
    assert r["summary"]["input_bags"] == 2 and r["summary"]["sites"] == 1
    assert r["summary"]["open_red_flags_in_window"] == 1 and r["summary"]["unremediated_red_flags"] == 1
    balance = r["mass_balance"]
    assert (balance["attached_g"], balance["final_g"], balance["loss_g"]) == (100_000, 99_600, 400)
    assert balance["loss_ppm"] == 4000
    assert balance["steps"] == [{"seq": balance["steps"][0]["seq"], "type": "lot_formed", "tag": "LOT-0001",
                                 "before_g": 99_800, "after_g": 99_700, "difference_g": -100,
                                 "difference_ppm": -1002}]
    chain = {c["tag"]: c for c in r["chain"]}
    assert set(chain) == {"LOT-0001", "KAL-000001", "KAL-000002"}
    assert [s["type"] for s in chain["KAL-000001"]["custody"]] == [
        "tags_issued", "tag_attached", "custody_dispatched", "custody_received", "lot_formed"]
    assert chain["LOT-0001"]["custody"][-1]["mass_kg"] == "99.600"
    # every event of the chain is in the report with its envelope, and its hash is the log's
    seqs = {e["seq"]: e for events in r["proofs"]["events"].values() for e in events}
    for seq, event in seqs.items():
        stored = world.ledger.store.read_range(seq, seq + 1)[0]
        assert read_entry(stored.data).hash == event["hash"]
        assert event["envelope"] == read_entry(stored.data).envelope


def test_the_report_proofs_verify_against_the_signed_checkpoint(store_url: str) -> None:
    w = make_world(store_url, tags=4)
    try:
        attach_and_deliver(w, "KAL-000001", to="depot")
        w.clients["depot"].merge("LOT-0001", ["KAL-000001"], mass_g=49_900, time=w.tick())
        w.ledger.start_checkpoints(w.log_key, publish_in_background=False)
        w.ledger.publish_checkpoint()
        r = due_diligence_report(w.ledger, "LOT-0001")
        log = r["proofs"]["log"]
        assert log is not None and log["size"] == w.ledger.store.size()
        checked = 0
        for events in r["proofs"]["events"].values():
            for event in events:
                entry = jcs({"v": 1, "seq": event["seq"], "received": event["received"], "envelope": event["envelope"]})
                proof = [bytes.fromhex(h) for h in event["inclusion_proof"]["hashes"]]
                verify_inclusion(leaf_hash(entry), event["log_index"], log["size"], proof, bytes.fromhex(log["root"]))  # raises
                checked += 1
        assert checked >= 6
    finally:
        w.ledger.close()


def test_unknown_tag_has_no_report(world: World) -> None:
    assert due_diligence_report(world.ledger, "NOPE-404") is None
