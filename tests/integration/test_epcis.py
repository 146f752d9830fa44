"""`GET /v1/epcis/events` over real HTTP, on SQLite and PostgreSQL: the demo data set as GS1 EPCIS 2.0.

Every page is validated against GS1's EPCIS 2.0 JSON Schema (tests/data/epcis, with format checking) and its bare
terms against GS1's JSON-LD context (`check_document`); then its content is compared with the ledger's own log:
one EPCIS event per custody event, in log order, each pointing back to its signed original.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx

from ledger import epcis
from ledger.client import LocalTransport, Signer
from ledger.demo import DemoReport, load_demo
from ledger.entries import Entry, envelope_bytes_of, read_entry
from tests.integration.conftest import OPERATOR, LiveLedger
from tests.unit.test_epcis_mapping import check_document
from verification.encoding import parse_time

GPS = {"lat": "-2.484120", "lon": "28.907330"}
MAX_PAGES = 500


def _load_demo(live: LiveLedger) -> DemoReport:
    """The demo data set (through the ledger's signed write path), then two scans by a customs officer: one of a
    bag in custody, one of a lot after it was consumed."""
    report = load_demo(LocalTransport(live.ledger), Signer(OPERATOR, live.root), seed=7, tags_per_site=8)
    customs = live.register("rra-customs", "authority", name="Rwanda Revenue Authority, customs", country="RW")
    customs.scan(report.examples["in_custody"], gps=GPS, purpose="customs", location="Rusizi I border post")
    customs.scan(report.examples["consumed_lot"], gps=GPS, purpose="inspection")
    return report


def _entries(live: LiveLedger) -> list[Entry]:
    return [read_entry(stored.data) for stored in live.ledger.store.iter_all()]


def _exported(live: LiveLedger) -> list[Entry]:
    return [e for e in _entries(live) if e.body["type"] in epcis.EXPORTED]


def _export(http: httpx.Client, params: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every page of an export, following `Link: <...>; rel="next"`: (the documents, all their events). Each page
    is checked on the way: 200, JSON-LD, the EPCIS headers, a valid EPCIS document, its token in body and link."""
    documents: list[dict[str, Any]] = []
    response = http.get("/v1/epcis/events", params=params)
    while True:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/ld+json"
        assert response.headers["gs1-epcis-version"] == "2.0" and response.headers["gs1-cbv-version"] == "2.0"
        document = response.json()
        check_document(document)
        documents.append(document)
        assert len(documents) <= MAX_PAGES
        link = response.headers.get("link")
        if link is None:
            assert "tl:nextPageToken" not in document
            break
        url, rel = link.split(";", 1)
        assert rel.strip() == 'rel="next"' and url.startswith("<") and url.endswith(">")
        assert f"nextPageToken={document['tl:nextPageToken']}" in url
        response = http.get(url[1:-1])
    return documents, [event for d in documents for event in d["epcisBody"]["eventList"]]


def _seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["tl:seq"] for event in events]


def _joins(entry: Entry, tag: str) -> bool:
    return f"tag:{tag}" in (entry.body["stream"], *(entry.body.get("links") or {}))


def test_the_demo_exports_as_valid_epcis_that_tells_the_ledgers_story(live_ledger: LiveLedger) -> None:
    live = live_ledger
    report = _load_demo(live)
    ex = report.examples
    documents, events = _export(live.http, {"perPage": "100"})
    entries = _entries(live)
    exported = [e for e in entries if e.body["type"] in epcis.EXPORTED]
    assert len(documents) == -(-len(exported) // 100) >= 3

    # one EPCIS event per custody event, in log order; per type, the counts of the log
    assert _seqs(events) == [e.seq for e in exported]
    log_counts = Counter(e.body["type"] for e in entries)
    assert Counter(ev["tl:ledgerEventType"] for ev in events) == {t: log_counts[t] for t in epcis.EXPORTED
                                                                  if log_counts[t]}
    assert log_counts["tag_scanned"] >= 2 and log_counts["lot_formed"] >= 2 and log_counts["tag_consumed"] >= 1
    assert Counter(ev["type"] for ev in events) == {
        "ObjectEvent": sum(log_counts[t] for t in ("tag_attached", "custody_dispatched", "custody_received",
                                                    "tag_voided", "tag_scanned")),
        "TransformationEvent": sum(log_counts[t] for t in ("lot_formed", "lot_split", "tag_consumed")),
    }
    assert sum(log_counts[t] for t in log_counts if t not in epcis.EXPORTED) > 0  # registry events stay out

    # each event leads back to its signed original
    base = events[0]["tl:actor"].rsplit("/orgs/", 1)[0]
    ids = epcis.Identifiers(base)
    for event, entry in zip(events, exported):
        assert event["eventID"] == f"urn:uuid:{entry.body['id']}"
        assert event["eventTime"] == entry.body["time"] and event["recordTime"] == entry.received
        assert event["tl:envelopeHash"] == entry.hash and event["tl:actor"] == ids.org(entry.body["actor"])
        assert event["type"] == epcis.EXPORTED[entry.body["type"]]
    by_seq = {event["tl:seq"]: event for event in events}

    # a merge: the lot that was consumed, made of bags from several sites
    (lot_entry,) = [e for e in exported if e.body["type"] == "lot_formed" and _joins(e, ex["consumed_lot"])
                    and e.body["stream"] == f"tag:{ex['consumed_lot']}"]
    merge = by_seq[lot_entry.seq]
    assert merge["type"] == "TransformationEvent" and merge["bizStep"] == "commissioning"
    assert merge["inputEPCList"] == [ids.tag(t) for t in lot_entry.body["data"]["inputs"]]
    assert ids.tag(ex["consumed_bag"]) in merge["inputEPCList"] and len(merge["inputEPCList"]) >= 2
    assert merge["outputEPCList"] == [ids.tag(ex["consumed_lot"])]
    assert merge["tl:massList"][0]["tl:quantity"] * 1000 == lot_entry.body["data"]["mass_g"]
    assert merge["bizLocation"]["id"] == ids.org(lot_entry.body["actor"])

    # consumption at the refiner: a transformation carrying the refiner's RMI smelter id
    (refiner,) = report.orgs["refiner"]
    cid = live.ledger.registry().orgs[refiner].rmi_cid
    assert cid == "CID002158"
    consumptions = [ev for ev in events if ev["tl:ledgerEventType"] == "tag_consumed"]
    assert consumptions and all(c["type"] == "TransformationEvent" and c["bizStep"] == epcis.BIZSTEP_SMELTING
                                and c["tl:rmiSmelterId"] == cid and c["bizLocation"]["id"] == ids.org(refiner)
                                and c["transformationID"] == c["eventID"] for c in consumptions)
    (consumed,) = [c for c in consumptions if c["inputEPCList"] == [ids.tag(ex["consumed_lot"])]]
    assert consumed["tl:product"]
    (page,) = [d for d in documents if consumed in d["epcisBody"]["eventList"]]
    (vocabulary,) = page["epcisHeader"]["epcisMasterData"]["vocabularyList"]
    smelter = {e["id"]: e for e in vocabulary["vocabularyElementList"]}[ids.org(refiner)]
    assert {"id": "tl:rmiSmelterId", "attribute": cid} in smelter["attributes"]

    # the signed original, fetched from the log entry the event names, has the hash the event states
    url = urlsplit(consumed["tl:logEntry"])
    line = live.http.get(f"{url.path}?{url.query}").content.rstrip(b"\n")
    assert hashlib.sha256(envelope_bytes_of(line)).hexdigest() == consumed["tl:envelopeHash"]
    original = json.loads(line)
    assert original["seq"] == consumed["tl:seq"] and f"urn:uuid:{original['envelope']['body']['id']}" == \
        consumed["eventID"]

    # a split, a theft, receipts from the right sender, a bag still in transit, the customs scans
    (split,) = [ev for ev in events if ev["tl:ledgerEventType"] == "lot_split"]
    assert split["inputEPCList"] == [ids.tag(ex["split_lot"])] and ids.tag(ex["split_output"]) in split[
        "outputEPCList"]
    (voided,) = [ev for ev in events if ev["tl:ledgerEventType"] == "tag_voided"]
    assert (voided["epcList"], voided["action"], voided["disposition"]) == (
        [ids.tag(ex["voided"])], "DELETE", "stolen")
    dispatcher: dict[str, str] = {}
    for entry in exported:
        tag = entry.body["stream"].removeprefix("tag:")
        if entry.body["type"] == "custody_dispatched":
            dispatcher[tag] = entry.body["actor"]
            assert by_seq[entry.seq]["destinationList"][0]["destination"] == ids.org(entry.body["data"]["to"])
        elif entry.body["type"] == "custody_received":
            assert by_seq[entry.seq]["sourceList"] == [{"type": "possessing_party",
                                                        "source": ids.org(dispatcher[tag])}]
    moving = [ev for ev in events if ev.get("epcList") == [ids.tag(ex["in_transit"])]]
    assert (moving[-1]["bizStep"], moving[-1]["disposition"]) == ("shipping", "in_transit")
    scanned = [e for e in exported if e.body["type"] == "tag_scanned"]
    for entry in scanned:  # each scan where it was made, of the tag it read
        scan, gps = by_seq[entry.seq], entry.body["data"]["gps"]
        assert scan["epcList"] == [ids.tag(entry.body["stream"].removeprefix("tag:"))]
        assert scan["bizStep"] == "inspecting" and scan["readPoint"] == {"id": f"geo:{gps['lat']},{gps['lon']}"}
    assert len({e.body["data"]["gps"]["lat"] for e in scanned}) >= 2  # scans at several places

    # identifiers resolve: a tag's to its verification page, an organisation's to its record
    assert live.http.get(urlsplit(ids.tag(ex["consumed_bag"])).path).status_code == 200
    resolved = live.http.get(urlsplit(ids.org(refiner)).path, follow_redirects=True)
    assert resolved.status_code == 200 and resolved.json()["rmi_cid"] == cid
    assert live.http.get("/orgs/Not_An_Org").status_code == 400


def test_epcis_query_parameters_select_events(live_ledger: LiveLedger) -> None:
    live = live_ledger
    ex = _load_demo(live).examples
    exported = _exported(live)
    _, everything = _export(live.http, {"perPage": "1000"})
    bag, lot = ex["consumed_bag"], ex["consumed_lot"]
    ids = epcis.Identifiers(everything[0]["tl:actor"].rsplit("/orgs/", 1)[0])

    def seqs(params: Any) -> list[int]:
        return _seqs(_export(live.http, params)[1])

    of_bag = [e for e in exported if _joins(e, bag)]
    assert seqs({"MATCH_anyEPC": bag}) == [e.seq for e in of_bag]
    assert [e.body["type"] for e in of_bag][-1] == "lot_formed"  # the bag ends in the lot
    assert seqs({"MATCH_epc": ids.tag(bag)}) == [e.seq for e in of_bag if e.body["type"] != "lot_formed"]
    assert seqs({"MATCH_inputEPC": bag}) == [of_bag[-1].seq]
    assert seqs({"MATCH_outputEPC": bag}) == []
    assert seqs([("MATCH_anyEPC", f"{bag}|{ids.tag(lot)}")]) == [e.seq for e in exported
                                                                   if _joins(e, bag) or _joins(e, lot)]
    assert seqs([("MATCH_anyEPC", bag), ("MATCH_anyEPC", lot)]) == seqs({"MATCH_anyEPC": f"{bag}|{lot}"})

    transformations = [e.seq for e in exported if e.body["type"] in ("lot_formed", "lot_split", "tag_consumed")]
    assert seqs({"eventType": "TransformationEvent"}) == transformations
    assert seqs({"eventType": "AggregationEvent"}) == []
    assert seqs({"eventType": "ObjectEvent", "MATCH_anyEPC": lot}) == [
        e.seq for e in exported if _joins(e, lot) and epcis.EXPORTED[e.body["type"]] == "ObjectEvent"]
    assert seqs({"EQ_bizStep": "shipping|receiving"}) == [
        e.seq for e in exported if e.body["type"] in ("custody_dispatched", "custody_received")]
    assert seqs({"EQ_bizStep": epcis.BIZSTEP_SMELTING}) == [
        e.seq for e in exported if e.body["type"] == "tag_consumed"]

    first, second = (parse_time(exported[len(exported) * k // 3].body["time"]) for k in (1, 2))
    window = [e.seq for e in exported if first <= parse_time(e.body["time"]) < second]
    assert 0 < len(window) < len(exported)
    assert seqs({"GE_eventTime": exported[len(exported) // 3].body["time"],
                 "LT_eventTime": exported[len(exported) * 2 // 3].body["time"]}) == window
    middle = exported[len(exported) // 2].received
    assert seqs({"GE_recordTime": middle}) == [e.seq for e in exported if e.received >= middle]
    assert seqs({"LT_recordTime": middle}) == [e.seq for e in exported if e.received < middle]


def test_pages_are_bounded_and_together_complete(live_ledger: LiveLedger, monkeypatch) -> None:  # noqa: ANN001
    live = live_ledger
    _load_demo(live)
    _, everything = _export(live.http, {"perPage": "1000"})
    documents, paged = _export(live.http, {"perPage": "7"})
    assert [e["eventID"] for e in paged] == [e["eventID"] for e in everything]
    assert all(len(d["epcisBody"]["eventList"]) == 7 for d in documents[:-1])
    assert 0 <= len(documents[-1]["epcisBody"]["eventList"]) <= 7 and len(documents) >= len(everything) // 7

    # a page examines a bounded number of log entries: a selective query may get empty pages, and a next link,
    # until the end of the log
    monkeypatch.setattr(epcis, "SCAN_LIMIT", 40)
    documents, transformations = _export(live.http, {"eventType": "TransformationEvent", "perPage": "5"})
    assert _seqs(transformations) == [e["tl:seq"] for e in everything if e["type"] == "TransformationEvent"]
    assert len(documents) >= live.ledger.store.size() // 40
    assert any(not d["epcisBody"]["eventList"] for d in documents)


def test_an_empty_ledger_and_bad_parameters(live_ledger: LiveLedger) -> None:
    http = live_ledger.http
    documents, events = _export(http)  # only the genesis: a valid, empty document
    assert len(documents) == 1 and events == [] and "epcisHeader" not in documents[0]

    size = live_ledger.entries()
    for params, parameter in [
        ({"foo": "1"}, "foo"),
        ({"eventType": "ObjectEvents"}, "eventType"),
        ({"GE_eventTime": "2026-11-23"}, "GE_eventTime"),
        ({"LT_recordTime": "2026-11-23T08:15:00"}, "LT_recordTime"),
        ({"perPage": "0"}, "perPage"),
        ({"perPage": str(epcis.PER_PAGE_MAX + 1)}, "perPage"),
        ([("perPage", "5"), ("perPage", "5")], "perPage"),
        ({"nextPageToken": str(size + 1)}, "nextPageToken"),
        ({"nextPageToken": "x1"}, "nextPageToken"),
        ({"MATCH_epc": "urn:epc:id:sgtin:0614141.107346.2017"}, "MATCH_epc"),
        ({"EQ_bizStep": "smelting"}, "EQ_bizStep"),
    ]:
        response = http.get("/v1/epcis/events", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["rule"] == "epcis.query_parameter" and problem["field"] == f"/{parameter}", problem
        assert problem["detail"]
    assert http.get("/v1/epcis/events", params={"nextPageToken": str(size)}).json()["epcisBody"]["eventList"] == []
