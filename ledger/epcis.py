"""The ledger's custody events as GS1 EPCIS 2.0 events (docs/protocol.md section 17).

Each exported event type has a small function that maps one log entry to one EPCIS event (a JSON-LD object
that validates against GS1's EPCIS 2.0 JSON Schema); `document` wraps a page of them in an `EPCISDocument`;
`export_page` reads the log for `GET /v1/epcis/events` (paging by log position, the EPCIS query parameters
of `parse_query`).

Identifiers are URIs under the ledger's public base URL: a tag is `{base}/t/{tag}` (the URL its QR label
opens, without the label signature), an organisation `{base}/orgs/{org}`. Vocabulary of our own (an extra
business step, the extension fields) lives in the namespace `TL_NAMESPACE`, prefix `tl`.

The mapping functions are pure: what they need beyond the entry (organisation records, who dispatched a tag
before it was received) comes in a `Context`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from domain.registry import OrgRecord
from ledger.entries import Entry, read_entry
from ledger.store.base import LogStore, StoredEvent
from verification.encoding import is_tag_id, parse_time

GS1_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
TL_NAMESPACE = "https://tagledger.org/ns/epcis/"
CONTEXT: list[Any] = [GS1_CONTEXT, {"tl": TL_NAMESPACE}]
MEDIA_TYPE = "application/ld+json"
SCHEMA_VERSION = "2.0"
TIME_ZONE_OFFSET = "+00:00"  # every ledger time is UTC

BIZSTEP_SMELTING = TL_NAMESPACE + "BizStep-smelting"
"""Our one business step: the ore was smelted or refined (consumed) at a smelter or refiner. The CBV has none."""
VTYPE_BUSINESS_LOCATION = "urn:epcglobal:epcis:vtype:BusinessLocation"

VOID_DISPOSITION = {"stolen": "stolen", "lost": "unknown", "damaged": "damaged", "other": "unknown"}
"""`tag_voided.data.reason` -> CBV disposition (the CBV has no `lost`: the object's condition is `unknown`)."""

EXPORTED: dict[str, str] = {
    "tag_attached": "ObjectEvent",
    "custody_dispatched": "ObjectEvent",
    "custody_received": "ObjectEvent",
    "lot_formed": "TransformationEvent",
    "lot_split": "TransformationEvent",
    "tag_consumed": "TransformationEvent",
    "tag_voided": "ObjectEvent",
    "tag_scanned": "ObjectEvent",
}
"""The ledger event types that are exported, and the EPCIS event type each becomes. Registry, risk and
genesis events are not about a physical object and are not exported (section 17)."""

EPCIS_EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent",
                     "AssociationEvent")

CBV_BIZSTEPS = frozenset({
    "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning", "creating_class_instance",
    "cycle_counting", "decommissioning", "departing", "destroying", "disassembling", "dispensing", "encoding",
    "entering_exiting", "holding", "inspecting", "installing", "killing", "loading", "other", "packing", "picking",
    "receiving", "removing", "repackaging", "repairing", "replacing", "reserving", "retail_selling", "shipping",
    "staging_outbound", "stock_taking", "stocking", "storing", "transporting", "unloading", "unpacking",
    "void_shipping", "sensor_reporting", "sampling",
})
"""CBV 2.0 business steps (bare names, as the GS1 JSON-LD context defines them)."""

PER_PAGE_DEFAULT = 30  # as the EPCIS 2.0 REST binding's `perPage`
PER_PAGE_MAX = 1000
SCAN_LIMIT = 10_000
"""At most this many log entries are examined per request: a page can hold fewer than `perPage` events (even
none) and still have a next page."""
READ_BATCH = 1000


# ---------------------------------------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identifiers:
    """The URIs of tags, organisations and log entries under the ledger's public base URL."""

    base_url: str

    def tag(self, tag_id: str) -> str:
        return f"{self.base_url}/t/{tag_id}"

    def org(self, org_id: str) -> str:
        return f"{self.base_url}/orgs/{org_id}"

    def org_id(self, uri: str) -> str | None:
        prefix = f"{self.base_url}/orgs/"
        return uri[len(prefix):] if uri.startswith(prefix) else None

    def log_entry(self, seq: int) -> str:
        return f"{self.base_url}/v1/log/entries?start={seq}&end={seq + 1}"


def geo_uri(gps: Mapping[str, str]) -> str:
    """RFC 5870 `geo:` URI (WGS-84) of a protocol GPS value: `geo:-10.741230,25.421870`."""
    return f"geo:{gps['lat']},{gps['lon']}"


def tag_of_epc(value: str) -> str | None:
    """The tag id named by a query value: a tag id, or a tag URI `.../t/{tag}` (any base URL)."""
    if is_tag_id(value):
        return value
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or parts.query or parts.fragment or "/t/" not in parts.path:
        return None
    candidate = parts.path.rsplit("/t/", 1)[1]
    return candidate if is_tag_id(candidate) else None


def kilograms(mass_g: int) -> float:
    """Integer grams as kilograms. Python writes the shortest decimal that reads back as the same float, which
    for n/1000 is the exact decimal (42500 -> 42.5, 12345 -> 12.345)."""
    return mass_g / 1000


# ---------------------------------------------------------------------------------------------------------
# The mapping
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What the mapping needs besides the entry."""

    ids: Identifiers
    orgs: Mapping[str, OrgRecord] = field(default_factory=dict)
    sender_of: Callable[[str, int], str | None] = lambda tag, seq: None
    """Who dispatched `tag` last before log entry `seq` (the source of a `custody_received`)."""


def _header(entry: Entry, epcis_type: str) -> dict[str, Any]:
    body = entry.body
    return {
        "type": epcis_type,
        "eventID": f"urn:uuid:{body['id']}",
        "eventTime": body["time"],
        "eventTimeZoneOffset": TIME_ZONE_OFFSET,
        "recordTime": entry.received,
    }


def _trail(entry: Entry, ctx: Context) -> dict[str, Any]:
    """The extension that leads back to the signed original: its log entry, envelope hash, signer, type."""
    return {
        "tl:seq": entry.seq,
        "tl:envelopeHash": entry.hash,
        "tl:actor": ctx.ids.org(entry.body["actor"]),
        "tl:ledgerEventType": entry.body["type"],
        "tl:logEntry": ctx.ids.log_entry(entry.seq),
    }


def _read_point(data: Mapping[str, Any], actor: str, ctx: Context) -> dict[str, str]:
    """Where it happened: the GPS position recorded with the event, else the actor's premises."""
    gps = data.get("gps")
    return {"id": geo_uri(gps) if gps else ctx.ids.org(actor)}


def _at_premises(ctx: Context, actor: str) -> dict[str, Any]:
    """An event made at the actor's own premises (a merge, a split, a smelting): read point and location."""
    return {"readPoint": {"id": ctx.ids.org(actor)}, "bizLocation": {"id": ctx.ids.org(actor)}}


def _mass_sensor(mass_g: int | None) -> dict[str, Any]:
    """The mass the actor weighed, as a sensor report (a scale is a sensor), in kilograms."""
    if mass_g is None:
        return {}
    return {"sensorElementList": [{"sensorReport": [{"type": "Mass", "value": kilograms(mass_g), "uom": "KGM"}]}]}


def _mass_list(ctx: Context, masses: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """Per-object masses of a TransformationEvent (whose sensor reports could not say which object)."""
    items = [{"tl:epc": ctx.ids.tag(tag), "tl:quantity": kilograms(mass_g), "tl:uom": "KGM"}
             for tag, mass_g in masses]
    return {"tl:massList": items} if items else {}


def _optional(**fields: Any) -> dict[str, Any]:
    return {f"tl:{name}": value for name, value in fields.items() if value is not None}


def _party(kind: str, org_uri: str) -> dict[str, str]:
    return {"type": "possessing_party", kind: org_uri}


def tag_of(entry: Entry) -> str:
    return entry.body["stream"].removeprefix("tag:")


def map_tag_attached(entry: Entry, ctx: Context) -> dict[str, Any]:
    body, data = entry.body, entry.body["data"]
    site = ctx.orgs.get(data["site"])
    ilmd = {"tl:mineral": data["mineral"], **_optional(ore=data.get("ore")), "tl:pit": data["pit"],
            "tl:site": ctx.ids.org(data["site"]), **_optional(countryOfOrigin=site.country if site else None)}
    price = data.get("price_paid")
    return {
        **_header(entry, "ObjectEvent"),
        "epcList": [ctx.ids.tag(tag_of(entry))],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": _read_point(data, body["actor"], ctx),
        "bizLocation": {"id": ctx.ids.org(data["site"])},
        **_mass_sensor(data["mass_g"]),
        "ilmd": ilmd,
        **({"tl:pricePaid": {"tl:currency": price["currency"], "tl:minorUnitsPerKg": price["minor_per_kg"]}}
           if price else {}),
        **_trail(entry, ctx),
    }


def map_custody_dispatched(entry: Entry, ctx: Context) -> dict[str, Any]:
    body, data = entry.body, entry.body["data"]
    return {
        **_header(entry, "ObjectEvent"),
        "epcList": [ctx.ids.tag(tag_of(entry))],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
        "readPoint": _read_point(data, body["actor"], ctx),
        "sourceList": [_party("source", ctx.ids.org(body["actor"]))],
        "destinationList": [_party("destination", ctx.ids.org(data["to"]))],
        **_mass_sensor(data.get("mass_g")),
        **_optional(location=data.get("location")),
        **_trail(entry, ctx),
    }


def map_custody_received(entry: Entry, ctx: Context) -> dict[str, Any]:
    body, data = entry.body, entry.body["data"]
    sender = ctx.sender_of(tag_of(entry), entry.seq)
    return {
        **_header(entry, "ObjectEvent"),
        "epcList": [ctx.ids.tag(tag_of(entry))],
        "action": "OBSERVE",
        "bizStep": "receiving",
        "disposition": "in_progress",
        "readPoint": _read_point(data, body["actor"], ctx),
        "bizLocation": {"id": ctx.ids.org(body["actor"])},
        **({"sourceList": [_party("source", ctx.ids.org(sender))]} if sender else {}),
        "destinationList": [_party("destination", ctx.ids.org(body["actor"]))],
        **_mass_sensor(data["mass_g"]),
        **_optional(location=data.get("location")),
        **_trail(entry, ctx),
    }


def map_lot_formed(entry: Entry, ctx: Context) -> dict[str, Any]:
    body, data = entry.body, entry.body["data"]
    lot = tag_of(entry)
    return {
        **_header(entry, "TransformationEvent"),
        "inputEPCList": [ctx.ids.tag(tag) for tag in data["inputs"]],
        "outputEPCList": [ctx.ids.tag(lot)],
        "bizStep": "commissioning",
        "disposition": "active",
        **_at_premises(ctx, body["actor"]),
        **_mass_list(ctx, [(lot, data["mass_g"])]),
        **_trail(entry, ctx),
    }


def map_lot_split(entry: Entry, ctx: Context) -> dict[str, Any]:
    body, data = entry.body, entry.body["data"]
    return {
        **_header(entry, "TransformationEvent"),
        "inputEPCList": [ctx.ids.tag(tag_of(entry))],
        "outputEPCList": [ctx.ids.tag(output["tag"]) for output in data["outputs"]],
        "bizStep": "commissioning",
        "disposition": "active",
        **_at_premises(ctx, body["actor"]),
        **_mass_list(ctx, [(output["tag"], output["mass_g"]) for output in data["outputs"]]),
        **_trail(entry, ctx),
    }


def map_tag_consumed(entry: Entry, ctx: Context) -> dict[str, Any]:
    body, data = entry.body, entry.body["data"]
    tag = tag_of(entry)
    refiner = ctx.orgs.get(body["actor"])
    mass_g = data.get("mass_g")
    return {
        **_header(entry, "TransformationEvent"),
        "inputEPCList": [ctx.ids.tag(tag)],
        # the outputs (metal, concentrate) are the refiner's own products: its own EPCIS events can name
        # this transformationID to join them to this consumption
        "transformationID": f"urn:uuid:{body['id']}",
        "bizStep": BIZSTEP_SMELTING,
        **_at_premises(ctx, body["actor"]),
        **_optional(rmiSmelterId=refiner.rmi_cid if refiner else None, product=data.get("product")),
        **_mass_list(ctx, [(tag, mass_g)] if mass_g is not None else []),
        **_trail(entry, ctx),
    }


def map_tag_voided(entry: Entry, ctx: Context) -> dict[str, Any]:
    body, data = entry.body, entry.body["data"]
    return {
        **_header(entry, "ObjectEvent"),
        "epcList": [ctx.ids.tag(tag_of(entry))],
        "action": "DELETE",
        "bizStep": "decommissioning",
        "disposition": VOID_DISPOSITION[data["reason"]],
        "readPoint": {"id": ctx.ids.org(body["actor"])},
        "tl:voidReason": data["reason"],
        **_optional(note=data.get("note")),
        **_trail(entry, ctx),
    }


def map_tag_scanned(entry: Entry, ctx: Context) -> dict[str, Any]:
    data = entry.body["data"]
    return {
        **_header(entry, "ObjectEvent"),
        "epcList": [ctx.ids.tag(tag_of(entry))],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "readPoint": {"id": geo_uri(data["gps"])},
        **_optional(purpose=data.get("purpose"), location=data.get("location")),
        **_trail(entry, ctx),
    }


MAPPERS: dict[str, Callable[[Entry, Context], dict[str, Any]]] = {
    "tag_attached": map_tag_attached,
    "custody_dispatched": map_custody_dispatched,
    "custody_received": map_custody_received,
    "lot_formed": map_lot_formed,
    "lot_split": map_lot_split,
    "tag_consumed": map_tag_consumed,
    "tag_voided": map_tag_voided,
    "tag_scanned": map_tag_scanned,
}
assert MAPPERS.keys() == EXPORTED.keys()


def map_entry(entry: Entry, ctx: Context) -> dict[str, Any] | None:
    """The EPCIS event of a log entry, or None for an event type that is not exported."""
    mapper = MAPPERS.get(entry.body["type"])
    return None if mapper is None else mapper(entry, ctx)


# ---------------------------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------------------------


def epcs_of(event: Mapping[str, Any], fields: Iterable[str] = ("epcList", "inputEPCList", "outputEPCList")
            ) -> list[str]:
    return [epc for name in fields for epc in event.get(name, [])]


def orgs_of(event: Mapping[str, Any], ids: Identifiers) -> list[str]:
    """The organisations an EPCIS event names (as locations, parties or signer), in order of appearance."""
    uris = [event.get("readPoint", {}).get("id", ""), event.get("bizLocation", {}).get("id", ""),
            *(s["source"] for s in event.get("sourceList", [])),
            *(d["destination"] for d in event.get("destinationList", [])),
            event.get("ilmd", {}).get("tl:site", ""), event.get("tl:actor", "")]
    return list(dict.fromkeys(org for org in map(ids.org_id, uris) if org))


def master_data(org_ids: Iterable[str], ctx: Context) -> list[dict[str, Any]]:
    """EPCIS master data (a vocabulary in the document header) for the organisations the events name: name,
    role, country, GPS, operator and, for smelters and refiners, the RMI smelter id (CID)."""
    elements = []
    for org_id in org_ids:
        org = ctx.orgs.get(org_id)
        if org is None:
            continue
        attributes: list[dict[str, Any]] = [
            {"id": "tl:name", "attribute": org.name},
            {"id": "tl:role", "attribute": str(org.role)},
            {"id": "tl:country", "attribute": org.country},
        ]
        if org.rmi_cid:
            attributes.append({"id": "tl:rmiSmelterId", "attribute": org.rmi_cid})
        if org.gps:
            attributes.append({"id": "tl:geo", "attribute": geo_uri(org.gps)})
        if org.operated_by:
            attributes.append({"id": "tl:operatedBy", "attribute": ctx.ids.org(org.operated_by)})
        elements.append({"id": ctx.ids.org(org_id), "attributes": attributes})
    return [{"type": VTYPE_BUSINESS_LOCATION, "vocabularyElementList": elements}] if elements else []


def document(events: list[dict[str, Any]], ctx: Context, *, creation_date: str,
             next_page_token: str | None = None) -> dict[str, Any]:
    """An `EPCISDocument` holding `events`, with master data for the organisations they name."""
    orgs = dict.fromkeys(org for event in events for org in orgs_of(event, ctx.ids))
    vocabularies = master_data(orgs, ctx)
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": creation_date,
        **({"epcisHeader": {"epcisMasterData": {"vocabularyList": vocabularies}}} if vocabularies else {}),
        "epcisBody": {"eventList": events},
        **({"tl:nextPageToken": next_page_token} if next_page_token is not None else {}),
    }


# ---------------------------------------------------------------------------------------------------------
# The query
# ---------------------------------------------------------------------------------------------------------


class QueryError(ValueError):
    """A query parameter the export does not accept (answered with 400)."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Query:
    event_types: frozenset[str] | None = None
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    match_epc: frozenset[str] | None = None  # tag ids, in epcList
    match_input_epc: frozenset[str] | None = None
    match_output_epc: frozenset[str] | None = None
    match_any_epc: frozenset[str] | None = None  # epcList, inputEPCList or outputEPCList
    eq_biz_step: frozenset[str] | None = None
    per_page: int = PER_PAGE_DEFAULT
    start: int = 0  # from nextPageToken: the first log position to examine

    def tags(self) -> frozenset[str] | None:
        """Every tag an EPC parameter names (the events to look at are in those tags' streams), or None."""
        sets = [s for s in (self.match_epc, self.match_input_epc, self.match_output_epc, self.match_any_epc)
                if s is not None]
        return frozenset().union(*sets) if sets else None


LIST_PARAMETERS = ("eventType", "MATCH_epc", "MATCH_inputEPC", "MATCH_outputEPC", "MATCH_anyEPC", "EQ_bizStep")
SINGLE_PARAMETERS = ("GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime", "perPage", "nextPageToken")
PARAMETERS = LIST_PARAMETERS + SINGLE_PARAMETERS


def _values(items: list[str]) -> list[str]:
    """A list parameter's values: repeat the parameter, or separate values with `|`."""
    return [value for item in items for value in item.split("|")]


def _time(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or "T" not in text.upper() or moment.utcoffset() is None:
        raise QueryError(name, f"{name} must be an RFC 3339 date-time with a time zone "
                               f"(e.g. 2026-11-23T08:15:00Z), not {text!r}")
    return moment


def _biz_step(value: str) -> str:
    """A business step as the export writes it: a CBV name bare, anything else as its URI."""
    for prefix in ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-", "https://ns.gs1.org/cbv/BizStep-"):
        if value.startswith(prefix) and value[len(prefix):] in CBV_BIZSTEPS:
            return value[len(prefix):]
    if value in CBV_BIZSTEPS or (":" in value and urlsplit(value).scheme):
        return value
    raise QueryError("EQ_bizStep", f"{value!r} is neither a CBV business step nor a URI")


def parse_query(params: Iterable[tuple[str, str]], *, log_size: int) -> Query:
    """The export query from URL query parameters (name, value pairs, in order). Raises `QueryError`."""
    given: dict[str, list[str]] = {}
    for name, value in params:
        if name not in PARAMETERS:
            raise QueryError(name, f"unknown query parameter {name!r}; this export understands "
                                   + ", ".join(PARAMETERS))
        given.setdefault(name, []).append(value)
    for name in SINGLE_PARAMETERS:
        if len(given.get(name, [])) > 1:
            raise QueryError(name, f"{name} is given more than once")
    single = {name: values[0] for name, values in given.items() if name in SINGLE_PARAMETERS}

    event_types = None
    if "eventType" in given:
        event_types = frozenset(_values(given["eventType"]))
        unknown = sorted(event_types - set(EPCIS_EVENT_TYPES))
        if unknown:
            raise QueryError("eventType", f"unknown EPCIS event type {unknown[0]!r}; the types are "
                                          + ", ".join(EPCIS_EVENT_TYPES))

    def epcs(name: str) -> frozenset[str] | None:
        if name not in given:
            return None
        tags = []
        for value in _values(given[name]):
            tag = tag_of_epc(value)
            if tag is None:
                raise QueryError(name, f"{value!r} is not a tag: give a tag id or its URI ({{base}}/t/{{tag}})")
            tags.append(tag)
        return frozenset(tags)

    per_page = PER_PAGE_DEFAULT
    if "perPage" in single:
        text = single["perPage"]
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= PER_PAGE_MAX):
            raise QueryError("perPage", f"perPage must be an integer from 1 to {PER_PAGE_MAX}, not {text!r}")
        per_page = int(text)
    start = 0
    if "nextPageToken" in single:
        text = single["nextPageToken"]
        if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= log_size):
            raise QueryError("nextPageToken", f"{text!r} is not a page token of this ledger "
                                              "(use the one the previous page gave)")
        start = int(text)
    return Query(
        event_types=event_types,
        ge_event_time=_time("GE_eventTime", single["GE_eventTime"]) if "GE_eventTime" in single else None,
        lt_event_time=_time("LT_eventTime", single["LT_eventTime"]) if "LT_eventTime" in single else None,
        ge_record_time=_time("GE_recordTime", single["GE_recordTime"]) if "GE_recordTime" in single else None,
        lt_record_time=_time("LT_recordTime", single["LT_recordTime"]) if "LT_recordTime" in single else None,
        match_epc=epcs("MATCH_epc"),
        match_input_epc=epcs("MATCH_inputEPC"),
        match_output_epc=epcs("MATCH_outputEPC"),
        match_any_epc=epcs("MATCH_anyEPC"),
        eq_biz_step=frozenset(map(_biz_step, _values(given["EQ_bizStep"]))) if "EQ_bizStep" in given else None,
        per_page=per_page,
        start=start,
    )


def matches(event: Mapping[str, Any], query: Query, ids: Identifiers) -> bool:
    """Does an EPCIS event satisfy the query's filters (all of them; any value of each)?"""
    if query.event_types is not None and event["type"] not in query.event_types:
        return False
    when = parse_time(event["eventTime"])
    if query.ge_event_time is not None and when < query.ge_event_time:
        return False
    if query.lt_event_time is not None and when >= query.lt_event_time:
        return False
    recorded = parse_time(event["recordTime"])
    if query.ge_record_time is not None and recorded < query.ge_record_time:
        return False
    if query.lt_record_time is not None and recorded >= query.lt_record_time:
        return False
    for wanted, fields in ((query.match_epc, ("epcList",)), (query.match_input_epc, ("inputEPCList",)),
                           (query.match_output_epc, ("outputEPCList",)),
                           (query.match_any_epc, ("epcList", "inputEPCList", "outputEPCList"))):
        if wanted is not None and not {ids.tag(tag) for tag in wanted} & set(epcs_of(event, fields)):
            return False
    if query.eq_biz_step is not None and event.get("bizStep") not in query.eq_biz_step:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# Reading the log
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    events: list[dict[str, Any]]
    next_page_token: str | None
    log_size: int


class _Senders:
    """Who dispatched a tag last: from the dispatches seen while reading in log order, else its stream."""

    def __init__(self, store: LogStore):
        self.store = store
        self.seen: dict[str, str] = {}

    def note(self, entry: Entry) -> None:
        if entry.body["type"] == "custody_dispatched":
            self.seen[tag_of(entry)] = entry.body["actor"]

    def __call__(self, tag: str, seq: int) -> str | None:
        if tag in self.seen:
            return self.seen[tag]
        for stored in reversed(self.store.read_tagged([f"tag:{tag}"])):
            if stored.seq < seq and stored.type == "custody_dispatched":
                return read_entry(stored.data).body["actor"]
        return None


def _candidates(store: LogStore, query: Query, size: int) -> Iterator[StoredEvent | int]:
    """The stored events to examine, in log order; a bare int says where a budget-limited scan stopped."""
    tags = query.tags()
    if tags is not None:
        if tags and query.start < size:
            for stored in store.read_tagged([f"tag:{tag}" for tag in sorted(tags)], after=query.start):
                if stored.seq >= size:
                    break
                yield stored
        return
    position, end = query.start, min(size, query.start + SCAN_LIMIT)
    while position < end:
        batch = store.read_range(position, min(end, position + READ_BATCH))
        if not batch:
            break
        yield from batch
        position = batch[-1].seq + 1
    if end < size:
        yield end


def export_page(store: LogStore, query: Query, *, ids: Identifiers, orgs: Mapping[str, OrgRecord]) -> Page:
    """One page of the export: the events after `query.start` that match, at most `query.per_page`."""
    size = store.size()
    senders = _Senders(store)
    ctx = Context(ids=ids, orgs=orgs, sender_of=senders)
    events: list[dict[str, Any]] = []
    next_start: int | None = None
    for stored in _candidates(store, query, size):
        if isinstance(stored, int):  # the scan budget ran out before the end of the log
            next_start = stored
            break
        if len(events) == query.per_page:  # a full page, and there is at least one more entry to examine
            next_start = stored.seq
            break
        if stored.type not in EXPORTED:
            continue
        entry = read_entry(stored.data)
        event = map_entry(entry, ctx)
        senders.note(entry)
        if event is not None and matches(event, query, ids):
            events.append(event)
    return Page(events, None if next_start is None else str(next_start), size)
