"""Pit to smelter over real HTTP, on both backends, then an independent check of what the ledger shows.

Every write goes through `LedgerClient` over `HttpTransport` (fetch head, sign locally, POST). The reads are
anonymous `GET /v1/tags/{id}`; the verification at the end uses only `verification/` (the reference verifier
of docs/protocol.md) and the response itself: no ledger code, no store access.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from verification.encoding import b64url_decode, key_id, parse_time
from verification.entry import EntryError, decode_entry, encode_entry
from verification.envelope import (
    Envelope,
    EnvelopeError,
    envelope_hash,
    issued_tags,
    verify_signature,
)

SITE, COOP, TRADER = "kalimbi-site", "nyabibwe-coop", "bukavu-trader"
PROCESSOR, EXPORTER, REFINER = "goma-processing", "kivu-export", "thaisarco"
SITE_NAME = "Kalimbi mine site"
GPS = {"lat": "-2.1234567", "lon": "28.7654321"}
BAGS = [f"KAL-{i:06d}" for i in range(1, 6)]  # issued as a range
LOTS = ["LOT-0001", "LOT-0002", "LOT-0003"]  # issued as a list


# ------------------------------------------------------------------------------------------------
# The independent verifier: verification/ and the response, nothing else
# ------------------------------------------------------------------------------------------------


def independent_problems(document: dict[str, Any]) -> list[str]:
    """Re-check a `tagledger/tag-view/v1` document the way an outside auditor would.

    Returns the problems found (empty when the history checks out). Uses only `verification/`.
    """
    problems: list[str] = []
    tag = document["tag"]
    stream = f"tag:{tag}"
    keys = document["keys"]
    previous_hash: str | None = None
    previous_seq = -1
    previous_received = ""
    for position, event in enumerate(document["events"]):
        where = f"event {position} (#{event.get('seq')})"
        try:
            envelope = Envelope.from_json(event["envelope"])
        except EnvelopeError as error:
            problems.append(f"{where}: malformed envelope: {error}")
            continue
        body = envelope.body
        key = keys.get(body["key"])
        if key is None:
            problems.append(f"{where}: signer key {body['key']} is not listed in `keys`")
        else:
            raw_key = b64url_decode(key["public_key"])
            if key_id(raw_key) != body["key"]:
                problems.append(f"{where}: listed key does not have kid {body['key']}")
            if key["org"] != body["actor"]:
                problems.append(f"{where}: key {body['key']} belongs to {key['org']}, not {body['actor']}")
            if not verify_signature(raw_key, envelope):
                problems.append(f"{where}: signature does not verify")
            when = parse_time(body["time"])
            if when < parse_time(key["valid_from"]) or (
                key["revoked_from"] is not None and when >= parse_time(key["revoked_from"])
            ):
                problems.append(f"{where}: key {body['key']} was not valid at {body['time']}")
        if envelope_hash(envelope) != event["hash"]:
            problems.append(f"{where}: envelope hash differs from the listed hash")
        if event["type"] != body["type"] or event["actor"] != body["actor"] or event["time"] != body["time"]:
            problems.append(f"{where}: summary fields differ from the signed body")
        if position == 0:
            if body["type"] != "tags_issued" or tag not in issued_tags(body["data"]):
                problems.append(f"{where}: the history does not start with the issuance of {tag}")
        else:
            declared = body["prev"] if body["stream"] == stream else (body.get("links") or {}).get(stream, "absent")
            if declared != previous_hash:
                problems.append(f"{where}: does not link to the previous event of {stream}")
        if not event["seq"] > previous_seq:
            problems.append(f"{where}: log positions are not increasing")
        if event["received"] < previous_received:  # same fixed format: string order is time order
            problems.append(f"{where}: receipt time went backwards")
        try:
            raw = encode_entry(event["seq"], event["received"], envelope)
            entry = decode_entry(raw)
        except (EntryError, ValueError) as error:
            problems.append(f"{where}: log entry does not round-trip: {error}")
        else:
            if (entry.seq, entry.received, entry.envelope) != (event["seq"], event["received"], envelope):
                problems.append(f"{where}: decoded log entry differs")
        previous_hash, previous_seq, previous_received = event["hash"], event["seq"], event["received"]
    return problems


# ------------------------------------------------------------------------------------------------
# The chain
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def chain(live_ledger):
    """Register six custody organisations and run the whole chain over HTTP; returns the org clients."""
    live = live_ledger
    site = live.register(SITE, "site", name=SITE_NAME, gps=GPS, capacity_kg_per_month=12_000)
    coop = live.register(COOP, "cooperative", name="Nyabibwe cooperative")
    trader = live.register(TRADER, "trader", name="Bukavu minerals trading")
    processor = live.register(PROCESSOR, "processor", name="Goma processing plant")
    exporter = live.register(EXPORTER, "exporter", name="Kivu export")
    refiner = live.register(REFINER, "refiner", name="Thaisarco smelter", country="TH", rmi_cid="CID001898")

    receipt = live.operator.issue_tags(SITE, prefix="KAL-", start=1, count=5, width=6)
    assert receipt["duplicate"] is False
    live.operator.issue_tags(PROCESSOR, tags=LOTS)

    masses = {BAGS[0]: 10_000, BAGS[1]: 12_500, BAGS[2]: 8_000, BAGS[3]: 9_000}
    for bag, grams in masses.items():
        site.attach(bag, mineral="tin", ore="cassiterite", mass_g=grams, pit="Pit 7", gps=GPS,
                    price_paid={"currency": "USD", "minor_per_kg": 1250})
    site.void(BAGS[3], "stolen", note="bag taken at the roadblock")  # an attached bag, voided by its holder

    hops = [(site, COOP, coop), (coop, TRADER, trader), (trader, PROCESSOR, processor)]
    moisture = {BAGS[0]: 50, BAGS[1]: 0, BAGS[2]: 20}  # grams lost at each hop
    for sender, to, recipient in hops:
        for bag in BAGS[:3]:
            sender.dispatch(bag, to, location="road N2")
            masses[bag] -= moisture[bag]
            recipient.receive(bag, mass_g=masses[bag], location="warehouse")

    lot_mass = sum(masses[b] for b in BAGS[:3])
    processor.merge(LOTS[0], BAGS[:3], mass_g=lot_mass)
    processor.split(LOTS[0], {LOTS[1]: lot_mass - 10_000, LOTS[2]: 10_000})
    processor.dispatch(LOTS[1], EXPORTER, mass_g=lot_mass - 10_000)
    exporter.receive(LOTS[1], mass_g=lot_mass - 10_000)
    exporter.dispatch(LOTS[1], REFINER)
    refiner.receive(LOTS[1], mass_g=lot_mass - 10_100)
    refiner.consume(LOTS[1], mass_g=lot_mass - 10_100, product="tin ingot")
    return {"masses": masses, "lot_mass": lot_mass}


def _get_tag(live, tag: str) -> dict[str, Any]:
    """Anonymous GET: `live.http` sends no credentials (no auth, no cookies, no API key)."""
    response = live.http.get(f"/v1/tags/{tag}")
    assert "authorization" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _assert_events_complete(document: dict[str, Any]) -> None:
    assert document["events"], "a tag's history is never empty"
    for event in document["events"]:
        for name in ("envelope", "hash", "seq", "received", "type", "actor", "time"):
            assert name in event, f"event lacks {name}: {event}"
        assert set(event["envelope"]) == {"body", "sig"}
        assert len(event["hash"]) == 64
    assert document["problems"] == []
    assert independent_problems(document) == []


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------


def test_bag_history_over_http_verifies_independently(live_ledger, chain) -> None:
    document = _get_tag(live_ledger, BAGS[0])
    assert document["format"] == "tagledger/tag-view/v1"
    assert document["tag"] == BAGS[0]
    assert document["verdict"]["code"] == "merged"
    assert document["verdict"]["authentic"] is True
    assert LOTS[0] in document["verdict"]["summary"]

    state = document["state"]
    assert state["status"] == "merged"
    assert state["lot"] == LOTS[0]
    assert state["holder"] == PROCESSOR
    assert state["holder_name"] == "Goma processing plant"
    assert state["issued_to"] == SITE and state["issued_to_name"] == SITE_NAME
    assert state["mass_g"] == chain["masses"][BAGS[0]] == 9_850
    assert state["mass_kg"] == "9.850"
    assert isinstance(state["mass_kg"], str)

    [origin] = document["origins"]
    assert origin["tag"] == BAGS[0]
    assert origin["site"] == SITE and origin["site_name"] == SITE_NAME
    assert origin["mineral"] == "tin" and origin["pit"] == "Pit 7" and origin["gps"] == GPS
    assert origin["price_paid"] == {"currency": "USD", "minor_per_kg": 1250}

    types = [event["type"] for event in document["events"]]
    assert types == ["tags_issued", "tag_attached"] + ["custody_dispatched", "custody_received"] * 3 + ["lot_formed"]
    actors = [event["actor"] for event in document["events"]]
    assert actors[:2] == ["itsci", SITE] and actors[-1] == PROCESSOR
    # the lot_formed event joins the bag's stream through `links`, not `prev`
    last = document["events"][-1]["envelope"]["body"]
    assert last["stream"] == f"tag:{LOTS[0]}" and f"tag:{BAGS[0]}" in last["links"]
    _assert_events_complete(document)
    # every signer of the history is listed with its public key and organisation
    assert {event["envelope"]["body"]["key"] for event in document["events"]} <= set(document["keys"])


def test_lot_history_and_descendants_over_http(live_ledger, chain) -> None:
    lot = _get_tag(live_ledger, LOTS[0])
    assert lot["verdict"]["code"] == "split"
    assert lot["state"]["status"] == "split"
    assert lot["state"]["inputs"] == BAGS[:3]
    assert lot["state"]["outputs"] == [LOTS[1], LOTS[2]]
    assert lot["state"]["mass_kg"] == f"{chain['lot_mass'] // 1000}.{chain['lot_mass'] % 1000:03d}"
    assert [o["tag"] for o in lot["origins"]] == BAGS[:3]
    assert {o["site_name"] for o in lot["origins"]} == {SITE_NAME}
    assert [e["type"] for e in lot["events"]] == ["tags_issued", "lot_formed", "lot_split"]
    _assert_events_complete(lot)

    consumed = _get_tag(live_ledger, LOTS[1])
    assert consumed["verdict"]["code"] == "consumed" and consumed["verdict"]["authentic"] is True
    assert consumed["verdict"]["refiner"] == {"org": REFINER, "name": "Thaisarco smelter", "rmi_cid": "CID001898"}
    assert consumed["state"]["holder"] == REFINER
    assert consumed["state"]["parent"] == LOTS[0]
    assert [o["tag"] for o in consumed["origins"]] == BAGS[:3]  # traced through the split and the merge
    assert [e["type"] for e in consumed["events"]] == [
        "tags_issued", "lot_split", "custody_dispatched", "custody_received", "custody_dispatched",
        "custody_received", "tag_consumed",
    ]
    _assert_events_complete(consumed)

    kept = _get_tag(live_ledger, LOTS[2])
    assert kept["verdict"]["code"] == "in_custody"
    assert kept["state"]["holder"] == PROCESSOR and kept["state"]["mass_kg"] == "10.000"
    _assert_events_complete(kept)

    voided = _get_tag(live_ledger, BAGS[3])
    assert voided["verdict"]["code"] == "voided" and voided["verdict"]["authentic"] is False
    assert voided["state"]["void_reason"] == "stolen"
    _assert_events_complete(voided)

    unused = _get_tag(live_ledger, BAGS[4])
    assert unused["verdict"]["code"] == "issued"
    assert unused["origins"] == [] and unused["state"]["holder"] is None
    _assert_events_complete(unused)


def test_responses_match_the_stored_log_bytes(live_ledger, chain) -> None:
    """What the API shows rebuilds, byte for byte, the entries the log committed to."""
    document = _get_tag(live_ledger, LOTS[1])
    for event in document["events"]:
        [stored] = live_ledger.ledger.store.read_range(event["seq"], event["seq"] + 1)
        rebuilt = encode_entry(event["seq"], event["received"], Envelope.from_json(event["envelope"]))
        assert rebuilt == stored.data


def test_tag_ids_are_normalised_on_get(live_ledger, chain) -> None:
    document = _get_tag(live_ledger, BAGS[0].lower())
    assert document["tag"] == BAGS[0]


TAMPERINGS = {
    "mass": "signature does not verify",
    "sig": "signature does not verify",
    "prev": "does not link to the previous event",
    "hash": "envelope hash differs",
    "key": "belongs to",
    "received": "log entry does not round-trip",
}


def test_tampering_is_detected_independently(live_ledger, chain) -> None:
    original = _get_tag(live_ledger, BAGS[0])
    assert independent_problems(original) == []
    for tamper, expected in TAMPERINGS.items():
        document = copy.deepcopy(original)
        events = document["events"]
        attach = next(e for e in events if e["type"] == "tag_attached")
        if tamper == "mass":
            attach["envelope"]["body"]["data"]["mass_g"] += 1_000  # heavier at the pit than it was
        elif tamper == "sig":
            sig = attach["envelope"]["sig"]
            attach["envelope"]["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
        elif tamper == "prev":
            events[2]["envelope"]["body"]["prev"] = "0" * 64
        elif tamper == "hash":
            attach["hash"] = "f" * 64
        elif tamper == "key":
            # claim the attachment was signed by the coop's key, which the response also lists
            coop_kid = next(k for k, v in document["keys"].items() if v["org"] == COOP)
            attach["envelope"]["body"]["key"] = coop_kid
        else:
            attach["received"] = "not a time"
        problems = independent_problems(document)
        assert problems, f"tampering with {tamper} went unnoticed"
        assert any(expected in p for p in problems), (tamper, problems)
    assert independent_problems(original) == []  # the untouched document still verifies
