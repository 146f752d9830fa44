"""The EPCIS 2.0 mapping (`ledger.epcis`): each ledger event type as an EPCIS event, the document, the query.

Events come from the in-memory `World` (bodies admitted by the real domain rules); every document is validated
against GS1's EPCIS 2.0 JSON Schema (tests/data/epcis, with format checking) and its bare terms against GS1's
JSON-LD context. `check_document` is also used by tests/integration/test_epcis.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from domain.roles import Role
from ledger import epcis
from ledger.entries import Entry
from tests.unit.domain_world import World

DATA = Path(__file__).resolve().parents[1] / "data" / "epcis"
BASE = "https://ledger.example.org"
IDS = epcis.Identifiers(BASE)
CID = "CID002158"
GPS = {"lat": "-10.712345", "lon": "25.467890"}


# ---------------------------------------------------------------------------------------------------------
# Checking a document against GS1's artefacts (shared with the integration tests)
# ---------------------------------------------------------------------------------------------------------


@cache
def _validator() -> Draft7Validator:
    schema = json.loads((DATA / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


@cache
def gs1_terms() -> frozenset[str]:
    """Every term GS1's JSON-LD context defines, at any depth (field names, CBV values, measurement types)."""
    context = json.loads((DATA / "epcis-context.jsonld").read_text(encoding="utf-8"))["@context"]
    return frozenset(key for key, _ in _walk(context) if not key.startswith("@"))


MASTER_DATA_TERMS = frozenset({"epcisMasterData", "vocabularyElementList", "attributes", "attribute"})
"""Names GS1's JSON Schema gives the header's master data but its JSON-LD context does not define (a gap between
GS1's two artefacts): allowed in the header only; the events carry what matters (the CID) themselves."""


def check_document(document: Mapping[str, Any]) -> None:
    """Fail unless `document` is a valid EPCIS 2.0 document whose bare names and vocabulary values are GS1's
    (anything of our own is a `tl:` compact IRI or an absolute URI)."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
    assert document["@context"] == epcis.CONTEXT
    terms = gs1_terms()
    body = {key: value for key, value in document.items() if key not in ("@context", "epcisHeader")}
    for key, _ in _walk(document.get("epcisHeader", {})):
        assert ":" in key or key in terms or key in MASTER_DATA_TERMS, f"{key!r} is not a term of GS1's context"
    for key, value in _walk(body):
        assert ":" in key or key in terms, f"{key!r} is not a term of GS1's context"
        if key in ("bizStep", "disposition") and isinstance(value, str):
            assert ":" in value or value in terms, f"{key} {value!r} is not a CBV value"
        if key == "type" and isinstance(value, str) and value not in ("EPCISDocument", *epcis.EPCIS_EVENT_TYPES):
            assert ":" in value or value in terms, f"type {value!r} is not defined by GS1's context"
    for event in document["epcisBody"]["eventList"]:
        assert event["type"] in terms and event["eventTimeZoneOffset"] == "+00:00"


def doc(*events: dict[str, Any], ctx: epcis.Context | None = None) -> dict[str, Any]:
    return epcis.document(list(events), ctx or epcis.Context(ids=IDS), creation_date="2026-12-03T10:00:00Z")


# ---------------------------------------------------------------------------------------------------------
# A small story, folded by the real domain rules
# ---------------------------------------------------------------------------------------------------------


def _entries(world: World) -> list[Entry]:
    return [Entry(seq, body["time"].replace("Z", ".5Z") if "." not in body["time"] else body["time"],
                  {"body": body, "sig": "s"}, digest, b"")
            for body, digest, seq in world.log]


def _sender_of(entries: list[Entry]):  # noqa: ANN202 - a Context.sender_of
    def sender_of(tag: str, seq: int) -> str | None:
        found = [e.body["actor"] for e in entries if e.seq < seq and e.body["type"] == "custody_dispatched"
                 and e.body["stream"] == f"tag:{tag}"]
        return found[-1] if found else None
    return sender_of


@pytest.fixture(scope="module")
def story() -> tuple[World, list[Entry], epcis.Context]:
    w = World().cast()
    w.add_org("smelter", Role.REFINER, rmi_cid=CID, country="BE")
    w.add_org("customs", Role.AUTHORITY, country="CD")
    w.bag("BAG-1", mass_g=42_500, data={"ore": "heterogenite", "gps": GPS,
                                        "price_paid": {"currency": "USD", "minor_per_kg": 1250}})
    w.bag("BAG-2", mass_g=30_000)
    w.bag("BAG-3", mass_g=25_000)
    for tag in ("BAG-1", "BAG-2"):
        w.record(w.dispatch(tag, "trader", mass_g=None if tag == "BAG-2" else 42_500,
                            data={"location": "Kolwezi depot", "gps": GPS}))
        w.record(w.receive(tag, data={"location": "Kolwezi"}))
    w.record(w.void("BAG-3", reason="stolen", note="taken from the depot"))
    w.issue_tags("trader", "LOT-1", "OUT-1", "OUT-2")
    w.record(w.merge("LOT-1", ["BAG-1", "BAG-2"], mass_g=72_345))
    w.record(w.split("LOT-1", {"OUT-1": 40_000, "OUT-2": 32_000}))
    w.hand_over("OUT-1", "smelter")
    w.record(w.consume("OUT-1", mass_g=39_875, product="cobalt hydroxide feed"))
    w.record(w.event("tag_scanned", "tag:OUT-2", {"gps": GPS, "purpose": "customs", "location": "Kasumbalesa"},
                     actor="customs"))
    w.issue_tags("site-b", "SPARE-1")
    w.record(w.void("SPARE-1", reason="lost"))
    entries = _entries(w)
    return w, entries, epcis.Context(ids=IDS, orgs=w.registry.orgs, sender_of=_sender_of(entries))


def _mapped(story: tuple[World, list[Entry], epcis.Context], ledger_type: str) -> list[tuple[Entry, dict[str, Any]]]:
    _, entries, ctx = story
    found = [(e, epcis.map_entry(e, ctx)) for e in entries if e.body["type"] == ledger_type]
    assert found, ledger_type
    return found  # type: ignore[return-value]


def _one(story, ledger_type: str, tag: str) -> tuple[Entry, dict[str, Any]]:  # noqa: ANN001
    (found,) = [(e, ev) for e, ev in _mapped(story, ledger_type) if e.body["stream"] == f"tag:{tag}"]
    return found


# ---------------------------------------------------------------------------------------------------------
# The whole story is a valid document, and only custody events are exported
# ---------------------------------------------------------------------------------------------------------


def test_the_story_is_a_valid_epcis_document(story) -> None:  # noqa: ANN001
    _, entries, ctx = story
    events = [ev for ev in (epcis.map_entry(e, ctx) for e in entries) if ev is not None]
    exported = [e for e in entries if e.body["type"] in epcis.EXPORTED]
    assert [ev["tl:seq"] for ev in events] == [e.seq for e in exported]
    assert {e.body["type"] for e in exported} == set(epcis.EXPORTED)  # the story has every exported type
    for entry, event in zip(exported, events):
        assert event["type"] == epcis.EXPORTED[entry.body["type"]]
        assert event["eventID"] == f"urn:uuid:{entry.body['id']}"
        assert event["eventTime"] == entry.body["time"] and event["recordTime"] == entry.received
        assert event["tl:envelopeHash"] == entry.hash and event["tl:ledgerEventType"] == entry.body["type"]
        assert event["tl:actor"] == f"{BASE}/orgs/{entry.body['actor']}"
        assert event["tl:logEntry"] == f"{BASE}/v1/log/entries?start={entry.seq}&end={entry.seq + 1}"
    document = doc(*events, ctx=ctx)
    check_document(document)
    assert document["type"] == "EPCISDocument" and document["schemaVersion"] == "2.0"
    assert len({ev["eventID"] for ev in events}) == len(events)


def test_registry_and_risk_events_are_not_exported() -> None:
    ctx = epcis.Context(ids=IDS)
    for ledger_type, stream, data in (
        ("ledger_created", "ledger", {}), ("org_registered", "org:x", {}), ("key_added", "org:x", {}),
        ("key_revoked", "org:x", {}), ("tags_issued", "org:x", {"tags": ["A-1"]}),
        ("incident_reported", "incident:INC-1", {}), ("action_assigned", "incident:INC-1", {}),
        ("site_monitored", "site:x", {"period": "2026-11"}),
    ):
        body = {"id": "00000000-0000-4000-8000-000000000000", "type": ledger_type, "stream": stream,
                "actor": "operator", "time": "2026-11-23T08:15:00Z", "data": data}
        assert epcis.map_entry(Entry(1, "2026-11-23T08:15:00.000000Z", {"body": body}, "ab" * 32, b""), ctx) is None
    assert set(epcis.EXPORTED) == {"tag_attached", "custody_dispatched", "custody_received", "lot_formed",
                                   "lot_split", "tag_consumed", "tag_voided", "tag_scanned"}


# ---------------------------------------------------------------------------------------------------------
# One mapping per event type
# ---------------------------------------------------------------------------------------------------------


def test_attach_commissions_the_bag_with_its_origin(story) -> None:  # noqa: ANN001
    _, event = _one(story, "tag_attached", "BAG-1")
    assert (event["type"], event["action"], event["bizStep"], event["disposition"]) == (
        "ObjectEvent", "ADD", "commissioning", "active")
    assert event["epcList"] == [f"{BASE}/t/BAG-1"]
    assert event["readPoint"] == {"id": "geo:-10.712345,25.467890"}  # the pit's GPS
    assert event["bizLocation"] == {"id": f"{BASE}/orgs/site-a"}
    assert event["ilmd"] == {"tl:mineral": "cobalt", "tl:ore": "heterogenite", "tl:pit": "pit-1",
                             "tl:site": f"{BASE}/orgs/site-a", "tl:countryOfOrigin": "CD"}
    assert event["sensorElementList"] == [{"sensorReport": [{"type": "Mass", "value": 42.5, "uom": "KGM"}]}]
    assert event["tl:pricePaid"] == {"tl:currency": "USD", "tl:minorUnitsPerKg": 1250}
    _, plain = _one(story, "tag_attached", "BAG-2")  # no GPS: the site's premises; no ore, no price
    assert plain["readPoint"] == {"id": f"{BASE}/orgs/site-a"}
    assert "tl:ore" not in plain["ilmd"] and "tl:pricePaid" not in plain


def test_dispatch_and_receipt_hand_over_possession(story) -> None:  # noqa: ANN001
    _, shipped = _one(story, "custody_dispatched", "BAG-1")
    assert (shipped["action"], shipped["bizStep"], shipped["disposition"]) == ("OBSERVE", "shipping", "in_transit")
    assert shipped["sourceList"] == [{"type": "possessing_party", "source": f"{BASE}/orgs/site-a"}]
    assert shipped["destinationList"] == [{"type": "possessing_party", "destination": f"{BASE}/orgs/trader"}]
    assert "bizLocation" not in shipped  # in transit: at no business location
    assert shipped["readPoint"] == {"id": "geo:-10.712345,25.467890"} and shipped["tl:location"] == "Kolwezi depot"
    assert shipped["sensorElementList"][0]["sensorReport"][0]["value"] == 42.5
    _, unweighed = _one(story, "custody_dispatched", "BAG-2")
    assert "sensorElementList" not in unweighed  # the dispatch stated no mass

    _, received = _one(story, "custody_received", "BAG-1")
    assert (received["action"], received["bizStep"], received["disposition"]) == (
        "OBSERVE", "receiving", "in_progress")
    assert received["sourceList"] == [{"type": "possessing_party", "source": f"{BASE}/orgs/site-a"}]
    assert received["destinationList"] == [{"type": "possessing_party", "destination": f"{BASE}/orgs/trader"}]
    assert received["bizLocation"] == received["readPoint"] == {"id": f"{BASE}/orgs/trader"}
    assert received["tl:location"] == "Kolwezi"
    # without a known sender (the context cannot tell), the receipt still stands, without a source
    entry, _ = _one(story, "custody_received", "BAG-1")
    alone = epcis.map_custody_received(entry, epcis.Context(ids=IDS))
    assert "sourceList" not in alone and alone["destinationList"] == received["destinationList"]
    check_document(doc(alone))


def test_a_lot_is_a_transformation_of_its_bags(story) -> None:  # noqa: ANN001
    entry, event = _one(story, "lot_formed", "LOT-1")
    assert event["type"] == "TransformationEvent" and "action" not in event
    assert event["inputEPCList"] == [f"{BASE}/t/BAG-1", f"{BASE}/t/BAG-2"] == [
        f"{BASE}/t/{t}" for t in entry.body["data"]["inputs"]]
    assert event["outputEPCList"] == [f"{BASE}/t/LOT-1"]
    assert (event["bizStep"], event["disposition"]) == ("commissioning", "active")
    assert event["bizLocation"] == event["readPoint"] == {"id": f"{BASE}/orgs/trader"}
    assert event["tl:massList"] == [{"tl:epc": f"{BASE}/t/LOT-1", "tl:quantity": 72.345, "tl:uom": "KGM"}]


def test_a_split_is_a_transformation_of_the_lot(story) -> None:  # noqa: ANN001
    _, event = _one(story, "lot_split", "LOT-1")
    assert event["type"] == "TransformationEvent"
    assert event["inputEPCList"] == [f"{BASE}/t/LOT-1"]
    assert event["outputEPCList"] == [f"{BASE}/t/OUT-1", f"{BASE}/t/OUT-2"]
    assert [(m["tl:epc"], m["tl:quantity"]) for m in event["tl:massList"]] == [
        (f"{BASE}/t/OUT-1", 40.0), (f"{BASE}/t/OUT-2", 32.0)]


def test_consumption_at_the_refiner_carries_its_rmi_smelter_id(story) -> None:  # noqa: ANN001
    entry, event = _one(story, "tag_consumed", "OUT-1")
    assert event["type"] == "TransformationEvent"
    assert event["inputEPCList"] == [f"{BASE}/t/OUT-1"] and "outputEPCList" not in event
    assert event["transformationID"] == f"urn:uuid:{entry.body['id']}"  # required without outputs
    assert event["bizStep"] == epcis.BIZSTEP_SMELTING == "https://tagledger.org/ns/epcis/BizStep-smelting"
    assert event["bizLocation"] == event["readPoint"] == {"id": f"{BASE}/orgs/smelter"}
    assert event["tl:rmiSmelterId"] == CID
    assert event["tl:product"] == "cobalt hydroxide feed"
    assert event["tl:massList"] == [{"tl:epc": f"{BASE}/t/OUT-1", "tl:quantity": 39.875, "tl:uom": "KGM"}]
    _, _, ctx = story
    document = doc(event, ctx=ctx)
    check_document(document)
    (vocabulary,) = document["epcisHeader"]["epcisMasterData"]["vocabularyList"]
    assert vocabulary["type"] == "urn:epcglobal:epcis:vtype:BusinessLocation"
    smelter = {e["id"]: e for e in vocabulary["vocabularyElementList"]}[f"{BASE}/orgs/smelter"]
    assert {"id": "tl:rmiSmelterId", "attribute": CID} in smelter["attributes"]
    assert {"id": "tl:country", "attribute": "BE"} in smelter["attributes"]
    # a refiner without a known CID: no id is made up
    unknown = epcis.Context(ids=IDS)
    assert "tl:rmiSmelterId" not in epcis.map_tag_consumed(entry, unknown)


def test_voiding_decommissions_the_tag(story) -> None:  # noqa: ANN001
    _, stolen = _one(story, "tag_voided", "BAG-3")
    assert (stolen["action"], stolen["bizStep"], stolen["disposition"]) == ("DELETE", "decommissioning", "stolen")
    assert stolen["tl:voidReason"] == "stolen" and stolen["tl:note"] == "taken from the depot"
    _, lost = _one(story, "tag_voided", "SPARE-1")  # never attached: the identifier is retired all the same
    assert lost["disposition"] == "unknown" and "tl:note" not in lost
    assert epcis.VOID_DISPOSITION == {"stolen": "stolen", "lost": "unknown", "damaged": "damaged",
                                      "other": "unknown"}
    assert set(epcis.VOID_DISPOSITION.values()) <= gs1_terms()


def test_a_scan_is_an_inspection_where_it_was_seen(story) -> None:  # noqa: ANN001
    _, event = _one(story, "tag_scanned", "OUT-2")
    assert (event["type"], event["action"], event["bizStep"]) == ("ObjectEvent", "OBSERVE", "inspecting")
    assert "disposition" not in event  # a sighting changes nothing about the bag
    assert event["readPoint"] == {"id": "geo:-10.712345,25.467890"}
    assert event["tl:purpose"] == "customs" and event["tl:location"] == "Kasumbalesa"
    assert event["tl:actor"] == f"{BASE}/orgs/customs"


def test_kilograms_are_exact_decimals() -> None:
    rng = random.Random(5)
    for grams in [1, 999, 1000, 12_345, 42_500, 999_999_999, *(rng.randrange(1, 10**12) for _ in range(2000))]:
        assert Decimal(json.dumps(epcis.kilograms(grams))) == Decimal(grams) / 1000, grams


def test_master_data_lists_each_named_organisation_once(story) -> None:  # noqa: ANN001
    _, entries, ctx = story
    events = [ev for ev in (epcis.map_entry(e, ctx) for e in entries) if ev is not None]
    document = doc(*events, ctx=ctx)
    (vocabulary,) = document["epcisHeader"]["epcisMasterData"]["vocabularyList"]
    ids = [e["id"] for e in vocabulary["vocabularyElementList"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {f"{BASE}/orgs/{o}" for o in ("site-a", "site-b", "trader", "smelter", "customs")}
    empty = doc()
    check_document(empty)
    assert "epcisHeader" not in empty and empty["epcisBody"] == {"eventList": []}


# ---------------------------------------------------------------------------------------------------------
# Identifiers and the query
# ---------------------------------------------------------------------------------------------------------


def test_identifiers() -> None:
    assert IDS.tag("KAL-000001") == f"{BASE}/t/KAL-000001"
    assert IDS.org_id(f"{BASE}/orgs/kalando-zea") == "kalando-zea" and IDS.org_id("geo:1,2") is None
    assert epcis.geo_uri({"lat": "-1.9583", "lon": "28.93241"}) == "geo:-1.9583,28.93241"
    assert epcis.tag_of_epc("KAL-000001") == "KAL-000001"
    assert epcis.tag_of_epc("https://other.example/ledger/t/KAL-000001") == "KAL-000001"
    for bad in ("kal-000001", "https://x.example/t/KAL-000001?s=abc", "urn:epc:id:sgtin:0614141.107346.2017",
                "https://x.example/tags/KAL-1", "https://x.example/t/", ""):
        assert epcis.tag_of_epc(bad) is None, bad


def test_parse_query_accepts_the_epcis_parameters() -> None:
    query = epcis.parse_query([
        ("eventType", "ObjectEvent|TransformationEvent"), ("GE_eventTime", "2026-11-23T08:15:00Z"),
        ("LT_eventTime", "2026-11-24T00:00:00+01:00"), ("MATCH_anyEPC", f"{BASE}/t/LOT-1"),
        ("MATCH_anyEPC", "BAG-1"), ("EQ_bizStep", "urn:epcglobal:cbv:bizstep:shipping"),
        ("EQ_bizStep", epcis.BIZSTEP_SMELTING), ("perPage", "5"), ("nextPageToken", "7"),
    ], log_size=10)
    assert query.event_types == {"ObjectEvent", "TransformationEvent"}
    assert query.ge_event_time is not None and query.ge_event_time.isoformat() == "2026-11-23T08:15:00+00:00"
    assert query.lt_event_time is not None and query.lt_event_time.utcoffset().total_seconds() == 3600
    assert query.match_any_epc == {"LOT-1", "BAG-1"} and query.tags() == {"LOT-1", "BAG-1"}
    assert query.eq_biz_step == {"shipping", epcis.BIZSTEP_SMELTING}
    assert (query.per_page, query.start) == (5, 7)
    default = epcis.parse_query([], log_size=0)
    assert (default.per_page, default.start, default.tags()) == (30, 0, None)


@pytest.mark.parametrize("params, parameter", [
    ([("foo", "1")], "foo"),
    ([("eventType", "ObjectEvent|Bogus")], "eventType"),
    ([("GE_eventTime", "2026-11-23")], "GE_eventTime"),
    ([("LT_eventTime", "2026-11-23T08:15:00")], "LT_eventTime"),  # no time zone
    ([("GE_recordTime", "yesterday")], "GE_recordTime"),
    ([("perPage", "0")], "perPage"),
    ([("perPage", "1001")], "perPage"),
    ([("perPage", "ten")], "perPage"),
    ([("perPage", "5"), ("perPage", "6")], "perPage"),
    ([("nextPageToken", "-1")], "nextPageToken"),
    ([("nextPageToken", "11")], "nextPageToken"),  # beyond the log
    ([("nextPageToken", "٣")], "nextPageToken"),  # a digit, but not ASCII
    ([("MATCH_epc", "urn:epc:id:sgtin:0614141.107346.2017")], "MATCH_epc"),
    ([("MATCH_anyEPC", "BAG-1|not a tag")], "MATCH_anyEPC"),
    ([("EQ_bizStep", "shippin")], "EQ_bizStep"),
])
def test_parse_query_refuses(params: list[tuple[str, str]], parameter: str) -> None:
    with pytest.raises(epcis.QueryError) as refused:
        epcis.parse_query(params, log_size=10)
    assert refused.value.parameter == parameter and refused.value.message


def test_matches_filters_by_type_time_epc_and_step(story) -> None:  # noqa: ANN001
    def query(*params: tuple[str, str]) -> epcis.Query:
        return epcis.parse_query(list(params), log_size=10_000)

    _, lot = _one(story, "lot_formed", "LOT-1")
    _, shipped = _one(story, "custody_dispatched", "BAG-1")
    assert epcis.matches(lot, query(), IDS)
    assert epcis.matches(lot, query(("eventType", "TransformationEvent")), IDS)
    assert not epcis.matches(shipped, query(("eventType", "TransformationEvent")), IDS)
    assert epcis.matches(lot, query(("MATCH_anyEPC", "BAG-1")), IDS)
    assert epcis.matches(lot, query(("MATCH_inputEPC", "BAG-1")), IDS)
    assert not epcis.matches(lot, query(("MATCH_epc", "BAG-1")), IDS)  # only epcList: ObjectEvents
    assert not epcis.matches(lot, query(("MATCH_outputEPC", "BAG-1")), IDS)
    assert epcis.matches(lot, query(("MATCH_outputEPC", "LOT-1")), IDS)
    assert epcis.matches(shipped, query(("MATCH_epc", "OUT-9|BAG-1")), IDS)
    assert epcis.matches(shipped, query(("EQ_bizStep", "https://ref.gs1.org/cbv/BizStep-shipping")), IDS)
    assert not epcis.matches(shipped, query(("EQ_bizStep", "receiving")), IDS)
    when = shipped["eventTime"]
    assert epcis.matches(shipped, query(("GE_eventTime", when), ("LT_eventTime", lot["eventTime"])), IDS)
    assert not epcis.matches(shipped, query(("LT_eventTime", when)), IDS)  # LT is exclusive
    recorded = shipped["recordTime"]
    assert epcis.matches(shipped, query(("GE_recordTime", recorded)), IDS)
    assert not epcis.matches(shipped, query(("LT_recordTime", recorded)), IDS)


def test_the_document_check_has_teeth(story) -> None:  # noqa: ANN001
    """`check_document` refuses what GS1's artefacts refuse: it is not a rubber stamp."""
    _, event = _one(story, "lot_formed", "LOT-1")
    check_document(doc(event))
    broken = [
        {k: v for k, v in event.items() if k != "eventTimeZoneOffset"},  # required by the schema
        {**event, "eventID": "not a uri"},  # format: uri
        {**event, "eventTime": "23/11/2026"},  # format: date-time
        {**event, "bizStep": "smelting"},  # neither a CBV value nor a URI
        {**event, "weight": 3},  # an extension must be a URI (a `tl:` compact IRI)
        {k: v for k, v in event.items() if k != "outputEPCList"},  # inputs only, without a transformationID
    ]
    for bad in broken:
        with pytest.raises(AssertionError):
            check_document(doc(bad))
