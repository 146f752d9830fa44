"""domain.rules.check: every rule of docs/protocol.md section 7 and every branch of domain/rules.py.

Pure and fast: event bodies are plain dicts admitted by `tests/unit/domain_world.World` exactly as the ledger
writer admits them (check, then Registry.apply, then custody.apply). No database, no HTTP, no signatures.
Every rejection asserts the exact rule name *and* the JSON Pointer (`RuleViolation.field`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from domain.custody import Status
from domain.errors import RuleViolation
from domain.roles import Role
from domain.rules import Admitted
from domain_world import START, World, fake_hash, ts
from verification.encoding import b64url_decode, b64url_encode, key_id

# --------------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------------


def expect(violation: RuleViolation, rule: str, field: str) -> None:
    assert (violation.rule, violation.field) == (rule, field), str(violation)


@pytest.fixture
def world() -> World:
    """Genesis plus one organisation of every role (see domain_world.CAST)."""
    return World().cast()


def staged(tolerance_ppm: int = 20_000) -> World:
    """A world with one tag in every interesting state.

    NEW-001, LOT-001  issued to site-a, unattached
    BAG-001 (1000 g), BAG-002 (500 g)  attached and held by site-a
    TRN-001 (1000 g)  dispatched by site-a to trader (in transit)
    REF-001 (1000 g)  held by refiner
    OUT-001, OUT-002  issued to refiner, unattached
    """
    w = World(tolerance_ppm=tolerance_ppm).cast()
    w.issue_tags("site-a", "NEW-001", "LOT-001")
    w.bag("BAG-001")
    w.bag("BAG-002", mass_g=500)
    w.bag("TRN-001")
    w.record(w.dispatch("TRN-001", "trader"))
    w.bag_at("REF-001", "refiner")
    w.issue_tags("refiner", "OUT-001", "OUT-002")
    return w


@pytest.fixture
def stage() -> World:
    return staged()


# One valid body per event type, against `staged()`.
VALID: dict[str, Callable[[World], dict[str, Any]]] = {
    "org_registered": lambda w: w.register("newcomer", "trader"),
    "key_added": lambda w: w.add_key("site-a"),
    "key_revoked": lambda w: w.revoke_key("site-a", w.kid("site-a")),
    "tags_issued": lambda w: w.issue("site-a", ["ISS-001"]),
    "tag_attached": lambda w: w.attach("NEW-001"),
    "custody_dispatched": lambda w: w.dispatch("BAG-001", "trader"),
    "custody_received": lambda w: w.receive("TRN-001"),
    "lot_formed": lambda w: w.merge("LOT-001", ["BAG-001", "BAG-002"]),
    "lot_split": lambda w: w.split("REF-001", [("OUT-001", 500), ("OUT-002", 500)]),
    "tag_consumed": lambda w: w.consume("REF-001"),
    "tag_voided": lambda w: w.void("BAG-001"),
}


# --------------------------------------------------------------------------------------------------
# the positive path
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_every_event_type_is_accepted_when_valid(event_type: str) -> None:
    w = staged()
    body = VALID[event_type](w)
    assert body["type"] == event_type
    admitted = w.admit(body)
    assert isinstance(admitted, Admitted)
    w.record(body)


def test_a_whole_supply_chain_is_accepted(world: World) -> None:
    w = world
    w.record(w.add_key("site-a"))
    w.record(w.issue("site-a", ["BAG-001"], ranges=[{"prefix": "CD-KOL-", "start": 7, "count": 3, "width": 4}]))
    assert sorted(t for t in w.tags) == ["BAG-001", "CD-KOL-0007", "CD-KOL-0008", "CD-KOL-0009"]
    gps = {"lat": "-10.7123456", "lon": "25.4678900"}
    w.record(
        w.attach(
            "BAG-001",
            mineral="cobalt",
            mass_g=48_000,
            data={"ore": "heterogenite", "gps": gps, "price_paid": {"currency": "USD", "minor_per_kg": 1250}},
        )
    )
    w.record(w.attach("CD-KOL-0007", mineral="cobalt", mass_g=52_000))
    w.record(w.dispatch("BAG-001", "coop", mass_g=47_900, data={"location": "Kolwezi", "gps": gps}))
    w.record(w.receive("BAG-001", mass_g=47_800, data={"location": "Kolwezi depot"}))
    w.record(w.dispatch("CD-KOL-0007", "coop"))
    w.record(w.receive("CD-KOL-0007", mass_g=52_000))
    w.issue_tags("coop", "LOT-001")
    w.record(w.merge("LOT-001", ["BAG-001", "CD-KOL-0007"], mass_g=99_000))
    w.hand_over("LOT-001", "trader", mass_g=98_900)
    w.hand_over("LOT-001", "exporter")
    w.hand_over("LOT-001", "refiner")
    w.issue_tags("refiner", "OUT-001", "OUT-002")
    w.record(w.split("LOT-001", {"OUT-001": 60_000, "OUT-002": 38_900}))
    w.record(w.consume("OUT-001", mass_g=59_500, product="cobalt hydroxide"))
    w.record(w.void("OUT-002", reason="stolen", note="taken on the road"))
    w.record(w.void("CD-KOL-0008", actor="site-a", reason="damaged"))
    w.record(w.revoke_key("site-a", w.kids("site-a")[0], reason="phone lost"))
    assert [w.state(t).status for t in ("BAG-001", "LOT-001", "OUT-001", "OUT-002", "CD-KOL-0008", "CD-KOL-0009")] == [
        Status.MERGED,
        Status.SPLIT,
        Status.CONSUMED,
        Status.VOIDED,
        Status.VOIDED,
        Status.ISSUED,
    ]


def test_check_returns_the_payload_and_the_created_tags(world: World) -> None:
    body = world.issue("site-a", ["ZZZ-1", "AAA-1"], ranges=[{"prefix": "R", "start": 98, "count": 3, "width": 2}])
    admitted = world.admit(body)
    assert admitted.created_tags == ["ZZZ-1", "AAA-1", "R98", "R99", "R100"]
    assert admitted.payload.tags == ["ZZZ-1", "AAA-1"]
    world.record(body)
    assert world.admit(world.attach("AAA-1")).created_tags == []


def test_check_is_pure(stage: World) -> None:
    before = {t: s.to_json() for t, s in stage.tags.items()}
    orgs = {o: r.to_json() for o, r in stage.registry.orgs.items()}
    for build in VALID.values():
        stage.admit(build(stage))
    assert {t: s.to_json() for t, s in stage.tags.items()} == before
    assert {o: r.to_json() for o, r in stage.registry.orgs.items()} == orgs


# --------------------------------------------------------------------------------------------------
# genesis
# --------------------------------------------------------------------------------------------------


def test_genesis_is_accepted_and_registers_the_operator() -> None:
    w = World(genesis=False)
    w.record(w.genesis())
    assert w.registry.ledger is not None and w.registry.ledger.mass_tolerance_ppm == 20_000
    assert w.role("operator") == Role.OPERATOR
    assert w.kids("operator") == [w.root.kid]


def test_a_second_genesis_is_a_stream_conflict(world: World) -> None:
    v = world.reject(world.genesis())
    expect(v, "stream.conflict", "/body/prev")
    assert v.extra == {"stream": "ledger", "expected": None, "head": {"hash": fake_hash(0), "seq": 0}}
    assert v.is_conflict


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda w: w.register("site-a", "site", key="0" * 16), id="org_registered"),
        pytest.param(lambda w: w.add_key("operator", key="0" * 16), id="key_added"),
        pytest.param(lambda w: w.issue("site-a", ["AAA"], key="0" * 16), id="tags_issued"),
        pytest.param(lambda w: w.attach("AAA"), id="tag_attached"),
    ],
)
def test_events_before_genesis_are_refused(build) -> None:
    w = World(genesis=False)
    expect(w.reject(build(w)), "stream.unknown", "/body/stream")


@pytest.mark.parametrize(
    ("overrides", "rule", "field"),
    [
        pytest.param({"stream": "org:operator"}, "envelope.malformed", "/body/stream", id="wrong-stream"),
        pytest.param({"prev": "ab" * 32}, "envelope.malformed", "/body/stream", id="prev-not-null"),
        pytest.param({"links": {"tag:AAA": None}}, "envelope.malformed", "/body/stream", id="links"),
        pytest.param({"actor": "somebody"}, "actor.unknown", "/body/actor", id="actor-not-the-operator"),
        pytest.param({"key": "0123456789abcdef"}, "key.unknown", "/body/key", id="key-not-the-root-key"),
        pytest.param({"data": {"mass_tolerance_ppm": 500_001}}, "envelope.malformed", "/body/data/mass_tolerance_ppm", id="tolerance-too-big"),
        pytest.param({"data": {"mass_tolerance_ppm": -1}}, "envelope.malformed", "/body/data/mass_tolerance_ppm", id="tolerance-negative"),
        pytest.param({"data": {"mass_tolerance_ppm": True}}, "envelope.malformed", "/body/data/mass_tolerance_ppm", id="tolerance-bool"),
        pytest.param({"data": {"root_key": "short"}}, "envelope.malformed", "/body/data/root_key", id="root-key-not-a-key"),
    ],
)
def test_genesis_shape(overrides: dict[str, Any], rule: str, field: str) -> None:
    w = World(genesis=False)
    expect(w.reject(w.genesis(**overrides)), rule, field)


@pytest.mark.parametrize("tolerance", [0, 500_000])
def test_genesis_tolerance_bounds_are_accepted(tolerance: int) -> None:
    w = World(genesis=False, tolerance_ppm=tolerance)
    w.record(w.genesis())


def test_genesis_dated_in_the_future_is_refused() -> None:
    w = World(genesis=False)
    expect(w.reject(w.genesis(time=ts(w.now + timedelta(days=30)))), "time.in_future", "/body/time")


def test_genesis_with_a_non_canonical_root_key_is_malformed() -> None:
    w = World(genesis=False)
    bad = "A" * 42 + "B"  # 43 characters, but the unused low bits are not zero
    v = w.reject(w.genesis(data={"root_key": bad}, key="0" * 16))
    expect(v, "envelope.malformed", "/body/data/root_key")


# key.weak at genesis: the root key and the log key (the root key's kid must still name the signer)
WEAK_KEYS = {  # base64url of the edge-case vectors' keys (verification/vectors/ed25519-edge-cases.json)
    "identity": b64url_encode(bytes.fromhex("01" + "00" * 31)),
    "order 2": b64url_encode(bytes.fromhex("ec" + "ff" * 30 + "7f")),
    "order 8": b64url_encode(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")),
    "mixed order": b64url_encode(bytes.fromhex("b502ff3d92e31d8190b4aa4ea0414005167fad089c4de9dac8a2fc850fed4f58")),
    "y = p + 1": b64url_encode(bytes.fromhex("ee" + "ff" * 30 + "7f")),
    "sign bit on x = 0": b64url_encode(bytes.fromhex("01" + "00" * 30 + "80")),
    "not a point": b64url_encode(bytes.fromhex("02" + "00" * 31)),
}


@pytest.mark.parametrize("name", sorted(WEAK_KEYS))
def test_genesis_with_a_weak_root_key_is_refused(name: str) -> None:
    w = World(genesis=False)
    weak = WEAK_KEYS[name]
    v = w.reject(w.genesis(data={"root_key": weak}, key=key_id(b64url_decode(weak))))
    expect(v, "key.weak", "/body/data/root_key")


@pytest.mark.parametrize("name", sorted(WEAK_KEYS))
def test_genesis_with_a_weak_log_key_is_refused(name: str) -> None:
    w = World(genesis=False)
    v = w.reject(w.genesis(data={"log_key": {"name": "log-2026", "public_key": WEAK_KEYS[name]}}))
    expect(v, "key.weak", "/body/data/log_key/public_key")


def test_a_weak_root_key_under_another_kid_is_key_unknown_first() -> None:
    w = World(genesis=False)
    expect(w.reject(w.genesis(data={"root_key": WEAK_KEYS["identity"]})), "key.unknown", "/body/key")


# --------------------------------------------------------------------------------------------------
# envelope.malformed: the payload schemas
# --------------------------------------------------------------------------------------------------


def put(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: {**data, **fields}


def drop(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: {k: v for k, v in data.items() if k != name}


def replace(value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda data: value


def first_output(**fields: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: {"outputs": [{**data["outputs"][0], **fields}, *data["outputs"][1:]]}


GPS = {"lat": "-10.5", "lon": "25.5"}

MALFORMED = [
    # tag_attached
    ("tag_attached", put(mass_g="1000"), "/body/data/mass_g", "string-for-int"),
    ("tag_attached", put(mass_g=True), "/body/data/mass_g", "bool-for-int"),
    ("tag_attached", put(mass_g=1000.0), "/body/data/mass_g", "float-for-int"),
    ("tag_attached", put(mass_g=0), "/body/data/mass_g", "zero-mass"),
    ("tag_attached", put(mass_g=-5), "/body/data/mass_g", "negative-mass"),
    ("tag_attached", put(mass_g=2**53), "/body/data/mass_g", "mass-beyond-2^53-1"),
    ("tag_attached", drop("mass_g"), "/body/data/mass_g", "missing-mass"),
    ("tag_attached", drop("pit"), "/body/data/pit", "missing-pit"),
    ("tag_attached", put(pit=""), "/body/data/pit", "empty-pit"),
    ("tag_attached", put(pit="p" * 121), "/body/data/pit", "pit-too-long"),
    ("tag_attached", put(colour="red"), "/body/data/colour", "unknown-field"),
    ("tag_attached", put(mineral="gold"), "/body/data/mineral", "unknown-mineral"),
    ("tag_attached", put(mineral="Cobalt"), "/body/data/mineral", "mineral-case"),
    ("tag_attached", put(site="Site_A"), "/body/data/site", "site-not-an-org-id"),
    ("tag_attached", put(gps={"lat": "91", "lon": "0"}), "/body/data/gps/lat", "lat-above-90"),
    ("tag_attached", put(gps={"lat": "-90.0000001", "lon": "0"}), "/body/data/gps/lat", "lat-below-minus-90"),
    ("tag_attached", put(gps={"lat": "0", "lon": "-180.5"}), "/body/data/gps/lon", "lon-beyond-180"),
    ("tag_attached", put(gps={"lat": "10.12345678", "lon": "0"}), "/body/data/gps/lat", "eight-decimals"),
    ("tag_attached", put(gps={"lat": 10, "lon": "0"}), "/body/data/gps/lat", "gps-number"),
    ("tag_attached", put(gps={"lat": "1e1", "lon": "0"}), "/body/data/gps/lat", "gps-exponent"),
    ("tag_attached", put(gps={"lat": " 10", "lon": "0"}), "/body/data/gps/lat", "gps-space"),
    ("tag_attached", put(gps={"lat": "10"}), "/body/data/gps/lon", "gps-missing-lon"),
    ("tag_attached", put(gps={**GPS, "alt": "3"}), "/body/data/gps/alt", "gps-unknown-field"),
    ("tag_attached", put(gps=[GPS["lat"], GPS["lon"]]), "/body/data/gps", "gps-list"),
    ("tag_attached", put(price_paid={"currency": "usd", "minor_per_kg": 1}), "/body/data/price_paid/currency", "currency-case"),
    ("tag_attached", put(price_paid={"currency": "USD", "minor_per_kg": -1}), "/body/data/price_paid/minor_per_kg", "negative-price"),
    ("tag_attached", put(price_paid={"currency": "USD", "minor_per_kg": True}), "/body/data/price_paid/minor_per_kg", "bool-price"),
    # custody_dispatched / received
    ("custody_dispatched", put(to=5), "/body/data/to", "to-number"),
    ("custody_dispatched", put(to="Trader"), "/body/data/to", "to-not-an-org-id"),
    ("custody_dispatched", drop("to"), "/body/data/to", "missing-to"),
    ("custody_dispatched", put(mass_g=False), "/body/data/mass_g", "dispatch-bool-mass"),
    ("custody_dispatched", put(location=""), "/body/data/location", "empty-location"),
    ("custody_received", drop("mass_g"), "/body/data/mass_g", "receive-missing-mass"),
    ("custody_received", put(mass_g=None), "/body/data/mass_g", "receive-null-mass"),
    ("custody_received", put(mass_g="1000"), "/body/data/mass_g", "receive-string-mass"),
    # lot_formed / lot_split
    ("lot_formed", put(inputs=[]), "/body/data/inputs", "no-inputs"),
    ("lot_formed", put(inputs="BAG-001"), "/body/data/inputs", "inputs-string"),
    ("lot_formed", put(inputs=["BAG-001", "bag-2"]), "/body/data/inputs/1", "input-not-a-tag-id"),
    ("lot_formed", put(mass_g=True), "/body/data/mass_g", "lot-bool-mass"),
    ("lot_split", replace({"outputs": [{"tag": "OUT-001", "mass_g": 1000}]}), "/body/data/outputs", "one-output"),
    ("lot_split", first_output(mass_g=0), "/body/data/outputs/0/mass_g", "output-zero-mass"),
    ("lot_split", first_output(mass_g=True), "/body/data/outputs/0/mass_g", "output-bool-mass"),
    ("lot_split", first_output(extra=1), "/body/data/outputs/0/extra", "output-unknown-field"),
    ("lot_split", first_output(tag="out-1"), "/body/data/outputs/0/tag", "output-not-a-tag-id"),
    # tag_consumed / tag_voided
    ("tag_consumed", put(mass_g="1"), "/body/data/mass_g", "consume-string-mass"),
    ("tag_consumed", put(product=""), "/body/data/product", "empty-product"),
    ("tag_voided", put(reason="sold"), "/body/data/reason", "unknown-reason"),
    ("tag_voided", drop("reason"), "/body/data/reason", "missing-reason"),
    ("tag_voided", put(note=""), "/body/data/note", "empty-note"),
    ("tag_voided", put(note="n" * 501), "/body/data/note", "note-too-long"),
    # registry events
    ("org_registered", put(role="king"), "/body/data/role", "unknown-role"),
    ("org_registered", put(role=1), "/body/data/role", "role-number"),
    ("org_registered", put(country="cd"), "/body/data/country", "country-case"),
    ("org_registered", put(public_keys=[]), "/body/data/public_keys", "no-keys"),
    ("org_registered", put(public_keys=["A" * 43] * 9), "/body/data/public_keys", "nine-keys"),
    ("org_registered", put(public_keys=["short"]), "/body/data/public_keys/0", "key-not-base64url-43"),
    ("org_registered", put(rmi_cid="CID12"), "/body/data/rmi_cid", "bad-rmi-cid"),
    ("org_registered", put(operated_by="Site A"), "/body/data/operated_by", "operated-by-not-an-org-id"),
    ("org_registered", put(capacity_kg_per_month=0), "/body/data/capacity_kg_per_month", "zero-capacity"),
    ("org_registered", put(capacity_kg_per_month=True), "/body/data/capacity_kg_per_month", "bool-capacity"),
    ("org_registered", put(gps={"lat": "0", "lon": "181"}), "/body/data/gps/lon", "org-bad-gps"),
    ("key_added", put(public_key="A" * 44), "/body/data/public_key", "key-44-chars"),
    ("key_added", put(public_key=None), "/body/data/public_key", "key-null"),
    ("key_revoked", put(key="XYZ"), "/body/data/key", "kid-not-hex16"),
    ("key_revoked", put(reason=""), "/body/data/reason", "empty-reason"),
    ("key_revoked", put(effective="2026-01-01 00:00:00Z"), "/body/data/effective", "effective-not-a-time"),
    ("key_revoked", put(effective="2026-01-01T00:00:00+00:00"), "/body/data/effective", "effective-offset"),
    ("key_revoked", put(effective="2026-02-30T00:00:00Z"), "/body/data/effective", "effective-impossible-date"),
    ("tags_issued", put(tags=["lower-1"]), "/body/data/tags/0", "tag-not-a-tag-id"),
    ("tags_issued", put(tags="AAA-1"), "/body/data/tags", "tags-string"),
    ("tags_issued", put(ranges=[{"prefix": "R", "start": 0, "count": 1, "width": 13}]), "/body/data/ranges/0/width", "width-13"),
    ("tags_issued", put(ranges=[{"prefix": "R", "start": 0, "count": 0, "width": 3}]), "/body/data/ranges/0/count", "count-0"),
    ("tags_issued", put(ranges=[{"prefix": "R", "start": -1, "count": 1, "width": 3}]), "/body/data/ranges/0/start", "start-negative"),
    ("tags_issued", put(ranges=[{"prefix": "r", "start": 0, "count": 1, "width": 3}]), "/body/data/ranges/0/prefix", "prefix-lowercase"),
    ("tags_issued", put(ranges=[{"prefix": "R", "start": 0, "count": 1}]), "/body/data/ranges/0/width", "range-missing-width"),
    ("tags_issued", put(extra=[]), "/body/data/extra", "issued-unknown-field"),
    # data that is not an object at all
    ("tag_attached", replace(["cobalt"]), "/body/data", "data-list"),
    ("tag_voided", replace(None), "/body/data", "data-null"),
    ("custody_dispatched", replace("trader"), "/body/data", "data-string"),
]


@pytest.mark.parametrize(
    ("event_type", "mutate", "pointer"),
    [pytest.param(t, m, p, id=f"{t}:{i}") for t, m, p, i in MALFORMED],
)
def test_bad_payload_fields_are_malformed_with_the_right_pointer(event_type, mutate, pointer) -> None:
    w = staged()
    body = VALID[event_type](w)
    w.admit(copy.deepcopy(body))  # the unmodified body is valid: only the mutation is wrong
    body["data"] = mutate(copy.deepcopy(body["data"]))
    expect(w.reject(body), "envelope.malformed", pointer)


def test_an_unknown_event_type_is_malformed(stage: World) -> None:
    body = stage.dispatch("BAG-001", "trader")
    body["type"] = "custody_teleported"
    expect(stage.reject(body), "envelope.malformed", "/body/type")


def test_malformed_pointer_escapes_member_names(stage: World) -> None:
    body = stage.attach("NEW-001", data={"a/b~c": 1})
    expect(stage.reject(body), "envelope.malformed", "/body/data/a~1b~0c")


@pytest.mark.parametrize(
    ("event_type", "mutate", "pointer"),
    [
        pytest.param("tag_attached", put(gps={"lat": "\u0661\u0660.\u0665", "lon": "0"}), "/body/data/gps/lat", id="gps-arabic-digits"),
        pytest.param("org_registered", put(rmi_cid="CID\u0660\u0660\u0660\u0660\u0660\u0661"), "/body/data/rmi_cid", id="rmi-cid-arabic-digits"),
        pytest.param("key_revoked", put(effective="\u0662\u0660\u0662\u0666-01-01T00:00:00Z"), "/body/data/effective", id="effective-arabic-digits"),
    ],
)
def test_non_ascii_digits_are_malformed(event_type, mutate, pointer) -> None:
    w = staged()
    body = VALID[event_type](w)
    body["data"] = mutate(copy.deepcopy(body["data"]))
    expect(w.reject(body), "envelope.malformed", pointer)


def test_gps_bounds_are_inclusive(stage: World) -> None:
    stage.record(stage.attach("NEW-001", data={"gps": {"lat": "-90.0000000", "lon": "180"}}))


# --------------------------------------------------------------------------------------------------
# envelope.malformed: stream shapes and links
# --------------------------------------------------------------------------------------------------


def test_a_tag_event_on_an_org_stream_is_malformed(stage: World) -> None:
    body = stage.event("tag_attached", "org:site-a", stage.attach("NEW-001")["data"], actor="site-a")
    expect(stage.reject(body), "envelope.malformed", "/body/stream")


def test_a_registry_event_on_a_tag_stream_is_malformed(stage: World) -> None:
    body = stage.event("key_added", "tag:BAG-001", {"public_key": stage.new_public_key()}, actor="operator")
    expect(stage.reject(body), "envelope.malformed", "/body/stream")


@pytest.mark.parametrize("event_type", ["custody_dispatched", "tag_attached", "tag_voided", "tags_issued", "key_added"])
def test_links_only_on_lot_events(stage: World, event_type: str) -> None:
    body = VALID[event_type](stage)
    body["links"] = {"tag:BAG-002": stage.head_hash("tag:BAG-002")}
    expect(stage.reject(body), "envelope.malformed", "/body/links")


@pytest.mark.parametrize("event_type", ["custody_dispatched", "tag_voided", "key_added"])
def test_an_empty_links_object_is_malformed(stage: World, event_type: str) -> None:
    body = VALID[event_type](stage)
    body["links"] = {}
    expect(stage.reject(body), "envelope.malformed", "/body/links")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(
            lambda w: {**w.dispatch("BAG-001", "trader", actor="monitor"), "links": {"tag:BAG-002": w.head_hash("tag:BAG-002")}},
            "/body/links",
            id="links-on-a-dispatch-by-a-monitor",
        ),
        pytest.param(lambda w: w.issue("site-a", ["ISS-1", "ISS-1"], actor="site-a"), "/body/data/tags/1", id="duplicate-tags-issued-by-a-site"),
        pytest.param(
            lambda w: w.event("tag_attached", "org:site-a", w.attach("NEW-001")["data"], actor="auditor"),
            "/body/stream",
            id="tag-event-on-an-org-stream-by-an-auditor",
        ),
    ],
)
def test_structure_is_checked_before_actor_and_role(stage: World, build, field: str) -> None:
    expect(stage.reject(build(stage)), "envelope.malformed", field)


def test_links_name_tag_streams(stage: World) -> None:
    links = {"tag:BAG-001": stage.head_hash("tag:BAG-001"), "org:site-a": stage.head_hash("org:site-a")}
    body = stage.merge("LOT-001", ["BAG-001"], links=links)
    expect(stage.reject(body), "envelope.malformed", "/body/links/org:site-a")


# --------------------------------------------------------------------------------------------------
# streams: stream.unknown, stream.conflict
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda w: w.attach("NOPE-1", actor="site-a"), "/body/stream", id="attach"),
        pytest.param(lambda w: w.dispatch("NOPE-1", "trader", actor="site-a"), "/body/stream", id="dispatch"),
        pytest.param(lambda w: w.receive("NOPE-1", actor="trader"), "/body/stream", id="receive"),
        pytest.param(lambda w: w.void("NOPE-1", actor="operator"), "/body/stream", id="void"),
        pytest.param(lambda w: w.consume("NOPE-1", actor="refiner"), "/body/stream", id="consume"),
        pytest.param(lambda w: w.merge("NOPE-1", ["BAG-001"]), "/body/stream", id="lot-tag"),
        pytest.param(lambda w: w.merge("LOT-001", ["BAG-001", "NOPE-1"]), "/body/links/tag:NOPE-1", id="merge-input"),
        pytest.param(
            lambda w: w.split("REF-001", [("OUT-001", 500), ("NOPE-1", 500)]), "/body/links/tag:NOPE-1", id="split-output"
        ),
        pytest.param(lambda w: w.add_key("nobody"), "/body/stream", id="key_added-unknown-org"),
        pytest.param(lambda w: w.revoke_key("nobody", "0" * 16), "/body/stream", id="key_revoked-unknown-org"),
        pytest.param(lambda w: w.issue("nobody", ["ISS-1"]), "/body/stream", id="tags_issued-unknown-org"),
        pytest.param(lambda w: w.register("newcomer", "site", prev="ab" * 32), "/body/stream", id="new-org-with-prev"),
    ],
)
def test_unknown_streams(stage: World, build, field: str) -> None:
    """An unissued tag or an unregistered organisation is stream.unknown (at the pointer of its head)."""
    expect(stage.reject(build(stage)), "stream.unknown", field)


def test_stale_prev_is_a_conflict_naming_the_current_head(stage: World) -> None:
    first = stage.dispatch("BAG-001", "trader")
    second = stage.dispatch("BAG-001", "coop")  # written against the same head
    assert first["prev"] == second["prev"]
    winner = stage.record(first)
    v = stage.reject(second)
    expect(v, "stream.conflict", "/body/prev")
    assert v.extra == {
        "stream": "tag:BAG-001",
        "expected": second["prev"],
        "head": {"hash": winner, "seq": stage.seq - 1},
    }
    assert v.is_conflict


@pytest.mark.parametrize("prev", [None, "ab" * 32], ids=["null", "made-up"])
def test_wrong_prev_is_a_conflict(stage: World, prev) -> None:
    head = stage.head("tag:BAG-001")
    v = stage.reject(stage.dispatch("BAG-001", "trader", prev=prev))
    expect(v, "stream.conflict", "/body/prev")
    assert v.extra["head"] == {"hash": head.hash, "seq": head.seq}
    assert v.extra["expected"] == prev


def test_a_stale_link_is_a_conflict(stage: World) -> None:
    body = stage.merge("LOT-001", ["BAG-001", "BAG-002"])
    stale = body["links"]["tag:BAG-002"]
    stage.record(stage.dispatch("BAG-002", "trader"))  # BAG-002 moves on (and is no longer mergeable)
    head = stage.head("tag:BAG-002")
    v = stage.reject(body)
    expect(v, "stream.conflict", "/body/links/tag:BAG-002")
    assert v.extra == {"stream": "tag:BAG-002", "expected": stale, "head": {"hash": head.hash, "seq": head.seq}}


def test_a_stale_org_prev_is_a_conflict(stage: World) -> None:
    body = stage.add_key("site-a")
    stage.record(stage.issue("site-a", ["ISS-001"]))
    v = stage.reject(body)
    expect(v, "stream.conflict", "/body/prev")
    assert v.extra["stream"] == "org:site-a"
    assert v.extra["head"] == {"hash": stage.head_hash("org:site-a"), "seq": stage.seq - 1}


def test_registering_an_existing_org_again_is_a_conflict(world: World) -> None:
    v = world.reject(world.register("site-a", "site", prev=None))
    expect(v, "stream.conflict", "/body/prev")


@pytest.mark.parametrize("org", ["site-a", "operator"])
def test_an_existing_org_cannot_be_re_registered_with_its_head(world: World, org: str) -> None:
    v = world.reject(world.register(org, "auditor", prev=world.head_hash(f"org:{org}")))
    expect(v, "stream.conflict", "/body/prev")


# --------------------------------------------------------------------------------------------------
# time: time.before_previous, time.in_future
# --------------------------------------------------------------------------------------------------


def test_time_before_the_previous_event_of_the_stream(stage: World) -> None:
    last = stage.head("tag:BAG-001").time
    v = stage.reject(stage.dispatch("BAG-001", "trader", time=ts(last - timedelta(microseconds=1))))
    expect(v, "time.before_previous", "/body/time")


def test_time_equal_to_the_previous_event_is_accepted(stage: World) -> None:
    last = stage.head("tag:BAG-001").time
    stage.record(stage.dispatch("BAG-001", "trader", time=ts(last)))


def test_time_before_the_previous_event_of_a_linked_input(stage: World) -> None:
    # LOT-001 was issued early; BAG-002's last event is later. A merge dated in between is refused.
    lot_time = stage.head("tag:LOT-001").time
    input_time = stage.head("tag:BAG-002").time
    assert lot_time < input_time - timedelta(seconds=1)
    between = ts(input_time - timedelta(seconds=1))
    v = stage.reject(stage.merge("LOT-001", ["BAG-001", "BAG-002"], time=between))
    expect(v, "time.before_previous", "/body/time")
    stage.record(stage.merge("LOT-001", ["BAG-001", "BAG-002"], time=ts(input_time)))


def test_time_before_the_previous_event_of_a_split_output(stage: World) -> None:
    stage.issue_tags("refiner", "LATE-1")
    late = stage.head("tag:LATE-1").time
    v = stage.reject(stage.split("REF-001", [("OUT-001", 500), ("LATE-1", 500)], time=ts(late - timedelta(seconds=1))))
    expect(v, "time.before_previous", "/body/time")


def test_time_before_the_previous_event_of_an_org_stream(world: World) -> None:
    registered = world.head("org:site-a").time
    v = world.reject(world.add_key("site-a", time=ts(registered - timedelta(seconds=1))))
    expect(v, "time.before_previous", "/body/time")


def test_time_in_future_boundary(stage: World) -> None:
    now = START + timedelta(days=1)
    stage.record(stage.dispatch("BAG-001", "trader", time=ts(now + timedelta(seconds=300))), now=now)
    v = stage.reject(stage.receive("BAG-001", time=ts(now + timedelta(seconds=300, microseconds=1))), now=now)
    expect(v, "time.in_future", "/body/time")
    v = stage.reject(stage.attach("NEW-001", time=ts(now + timedelta(hours=1))), now=now)
    expect(v, "time.in_future", "/body/time")


def test_time_in_future_applies_to_registry_events(world: World) -> None:
    v = world.reject(world.register("newcomer", "site", time=ts(world.now + timedelta(seconds=301))))
    expect(v, "time.in_future", "/body/time")


# --------------------------------------------------------------------------------------------------
# actors and keys
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda w: w.attach("NEW-001", actor="ghost"), id="attach"),
        pytest.param(lambda w: w.dispatch("BAG-001", "trader", actor="ghost"), id="dispatch"),
        pytest.param(lambda w: w.register("newcomer", "site", actor="ghost"), id="org_registered"),
    ],
)
def test_an_unregistered_actor_is_unknown(stage: World, build) -> None:
    expect(stage.reject(build(stage)), "actor.unknown", "/body/actor")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda w: "0123456789abcdef", id="made-up"),
        pytest.param(lambda w: w.kid("site-b"), id="another-orgs-key"),
        pytest.param(lambda w: w.root.kid, id="the-operators-key"),
    ],
)
def test_a_key_that_is_not_the_actors_is_unknown(stage: World, key) -> None:
    expect(stage.reject(stage.dispatch("BAG-001", "trader", key=key(stage))), "key.unknown", "/body/key")


def test_a_key_is_not_valid_before_it_was_added(world: World) -> None:
    world.issue_tags("site-a", "AAA-1")
    world.record(world.add_key("site-a"))
    new_kid = world.kids("site-a")[1]
    added = world.registry.keys[new_kid].added_at
    v = world.reject(world.attach("AAA-1", key=new_kid, time=ts(added - timedelta(seconds=1))))
    expect(v, "key.not_yet_valid", "/body/key")
    world.record(world.attach("AAA-1", key=new_kid, time=ts(added)))


def test_a_revoked_key_signs_nothing_received_after_the_revocation(world: World) -> None:
    world.issue_tags("site-a", "AAA-1")
    issued = world.head("tag:AAA-1").time
    old = world.kid("site-a")
    world.record(world.add_key("site-a"))
    new = world.kids("site-a")[1]
    world.record(world.revoke_key("site-a", old))
    revoked = world.registry.keys[old].revoked_effective
    assert revoked == world.head("org:site-a").time  # default `effective`: the event's own time
    expect(world.reject(world.attach("AAA-1", key=old, time=ts(revoked))), "key.revoked", "/body/key")
    expect(world.reject(world.attach("AAA-1", key=old)), "key.revoked", "/body/key")
    # backdating below the revocation's effective time no longer helps (protocol 1.7): the revocation is in the log
    expect(world.reject(world.attach("AAA-1", key=old, time=ts(issued + timedelta(seconds=30)))), "key.revoked",
           "/body/key")
    # the org's other key still works, and so do late records signed by it (dated before the revocation)
    added = world.registry.keys[new].added_at
    assert added < revoked
    world.record(world.attach("AAA-1", key=new, time=ts(added)), now=revoked + timedelta(days=30))


def test_a_backdated_revocation_refuses_every_later_use_of_the_key(world: World) -> None:
    world.issue_tags("site-a", "AAA-1")
    issued = world.head("tag:AAA-1").time
    kid = world.kid("site-a")
    effective = issued + timedelta(seconds=20)
    world.record(world.revoke_key("site-a", kid, effective=ts(effective), time=ts(issued + timedelta(minutes=10))))
    assert world.registry.keys[kid].revoked_effective == effective
    expect(world.reject(world.attach("AAA-1", time=ts(effective))), "key.revoked", "/body/key")
    expect(world.reject(world.attach("AAA-1", time=ts(issued + timedelta(minutes=5)))), "key.revoked", "/body/key")
    expect(world.reject(world.attach("AAA-1", time=ts(effective - timedelta(microseconds=1)))), "key.revoked",
           "/body/key")


def test_a_late_record_by_a_valid_key_is_accepted_however_late(world: World) -> None:
    """Phones record offline for days: only the key's validity and the streams' order bound a record's time."""
    world.issue_tags("site-a", "AAA-1")
    issued = world.head("tag:AAA-1").time
    world.record(world.attach("AAA-1", time=ts(issued + timedelta(seconds=1))),
                 now=issued + timedelta(days=400))


def test_a_revoked_operator_key_cannot_sign_registry_events(world: World) -> None:
    world.record(world.add_key("operator"))
    new = world.kids("operator")[1]
    world.record(world.revoke_key("operator", world.root.kid))
    expect(world.reject(world.register("newcomer", "site")), "key.revoked", "/body/key")
    world.record(world.register("newcomer", "site", key=new))


ROLE_CASES = [
    ("monitor dispatches", lambda w: w.dispatch("BAG-001", "trader", actor="monitor")),
    ("auditor dispatches", lambda w: w.dispatch("BAG-001", "trader", actor="auditor")),
    ("operator dispatches", lambda w: w.dispatch("BAG-001", "trader", actor="operator")),
    ("monitor receives", lambda w: w.receive("TRN-001", actor="monitor")),
    ("operator attaches", lambda w: w.attach("NEW-001", actor="operator")),
    ("trader consumes", lambda w: w.consume("TRN-001", actor="trader")),
    ("site consumes", lambda w: w.consume("BAG-001", actor="site-a")),
    ("exporter consumes", lambda w: w.consume("BAG-001", actor="exporter")),
    ("auditor voids", lambda w: w.void("BAG-001", actor="auditor")),
    ("monitor forms a lot", lambda w: w.merge("LOT-001", ["BAG-001"], actor="monitor")),
    ("auditor splits", lambda w: w.split("REF-001", [("OUT-001", 500), ("OUT-002", 500)], actor="auditor")),
    ("site registers an org", lambda w: w.register("newcomer", "site", actor="site-a")),
    ("trader registers an org", lambda w: w.register("newcomer", "site", actor="trader")),
    ("site issues tags", lambda w: w.issue("site-a", ["ISS-001"], actor="site-a")),
    ("monitor issues tags", lambda w: w.issue("site-a", ["ISS-001"], actor="monitor")),
    ("site adds a key", lambda w: w.add_key("site-a", actor="site-a")),
    ("site revokes a key", lambda w: w.revoke_key("site-a", w.kid("site-a"), actor="site-a")),
]


@pytest.mark.parametrize("build", [pytest.param(b, id=i) for i, b in ROLE_CASES])
def test_actor_role(stage: World, build) -> None:
    expect(stage.reject(build(stage)), "actor.role", "/body/actor")


def test_nobody_registers_a_second_operator(world: World) -> None:
    expect(world.reject(world.register("operator-2", "operator")), "actor.role", "/body/data/role")


def test_operated_by_must_be_a_registered_org(world: World) -> None:
    v = world.reject(world.register("pit-7", "site", data={"operated_by": "nobody"}))
    expect(v, "stream.unknown", "/body/data/operated_by")
    world.record(world.register("pit-7", "site", data={"operated_by": "coop", "capacity_kg_per_month": 5000}))
    assert world.registry.orgs["pit-7"].operated_by == "coop"


@pytest.mark.parametrize("role", ["site", "cooperative", "trader", "processor", "exporter", "refiner", "auditor", "monitor"])
def test_every_non_operator_role_can_be_registered(world: World, role: str) -> None:
    extra = {"rmi_cid": "CID002158"} if role == "refiner" else None
    world.record(world.register(f"new-{role}", role, data=extra))
    assert world.role(f"new-{role}") == role


# --------------------------------------------------------------------------------------------------
# keys: key.already_registered, key_revoked rules
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WEAK_KEYS))
def test_a_weak_key_is_never_registered(world: World, name: str) -> None:
    weak = WEAK_KEYS[name]
    expect(world.reject(world.register("newcomer", "site", public_keys=[weak])), "key.weak", "/body/data/public_keys/0")
    expect(
        world.reject(world.register("newcomer", "site", public_keys=[world.new_public_key(), weak])),
        "key.weak",
        "/body/data/public_keys/1",
    )
    expect(world.reject(world.add_key("site-a", weak)), "key.weak", "/body/data/public_key")
    assert world.registry.orgs.get("newcomer") is None and len(world.kids("site-a")) == 1


def test_key_weak_comes_before_key_already_registered(world: World) -> None:
    weak = WEAK_KEYS["identity"]
    expect(world.reject(world.register("newcomer", "site", public_keys=[weak, weak])), "key.weak", "/body/data/public_keys/0")


def test_ordinary_keys_are_registered(world: World) -> None:
    world.record(world.register("newcomer", "site", public_keys=[world.new_public_key() for _ in range(8)]))
    world.record(world.add_key("newcomer"))
    assert len(world.kids("newcomer")) == 9


def test_key_already_registered(world: World) -> None:
    site_key = world.registry.keys[world.kid("site-a")].public_key
    fresh = world.new_public_key()
    expect(world.reject(world.register("newcomer", "site", public_keys=[site_key])), "key.already_registered", "/body/data/public_keys/0")
    expect(
        world.reject(world.register("newcomer", "site", public_keys=[fresh, fresh])),
        "key.already_registered",
        "/body/data/public_keys/1",
    )
    expect(
        world.reject(world.register("newcomer", "site", public_keys=[fresh, world.root.public_key])),
        "key.already_registered",
        "/body/data/public_keys/1",
    )
    expect(world.reject(world.add_key("site-b", site_key)), "key.already_registered", "/body/data/public_key")
    expect(world.reject(world.add_key("site-a", site_key)), "key.already_registered", "/body/data/public_key")
    world.record(world.register("newcomer", "site", public_keys=[fresh, world.new_public_key()]))
    assert len(world.kids("newcomer")) == 2


def test_a_non_canonical_public_key_is_malformed(world: World) -> None:
    bad = "A" * 42 + "B"  # the right pattern, but the unused low bits are not zero
    v = world.reject(world.register("newcomer", "site", public_keys=[world.new_public_key(), bad]))
    expect(v, "envelope.malformed", "/body/data/public_keys/1")
    expect(world.reject(world.add_key("site-a", bad)), "envelope.malformed", "/body/data/public_key")


def test_revoking_a_key_the_org_does_not_have(world: World) -> None:
    expect(world.reject(world.revoke_key("site-a", "0123456789abcdef")), "key.unknown", "/body/data/key")
    expect(world.reject(world.revoke_key("site-a", world.kid("site-b"))), "key.unknown", "/body/data/key")


def test_a_key_is_revoked_once(world: World) -> None:
    kid = world.kid("site-a")
    world.record(world.revoke_key("site-a", kid))
    expect(world.reject(world.revoke_key("site-a", kid)), "key.already_revoked", "/body/data/key")


def test_a_revocation_cannot_take_effect_later_than_its_event(world: World) -> None:
    kid = world.kid("site-a")
    when = world.next_time()
    later = world.at(microseconds=1)
    v = world.reject(world.revoke_key("site-a", kid, effective=later, time=when))
    expect(v, "envelope.malformed", "/body/data/effective")
    world.record(world.revoke_key("site-a", kid, effective=when, time=when))


# --------------------------------------------------------------------------------------------------
# tags_issued: tag.already_issued, recipient.invalid, sizes
# --------------------------------------------------------------------------------------------------


def test_tags_cannot_be_issued_twice(stage: World) -> None:
    expect(stage.reject(stage.issue("site-b", ["ISS-001", "BAG-001"])), "tag.already_issued", "/body/data/tags/1")
    expect(stage.reject(stage.issue("site-a", ["NEW-001"])), "tag.already_issued", "/body/data/tags/0")
    ranges = [{"prefix": "OUT-", "start": 2, "count": 5, "width": 3}]  # OUT-002 exists
    expect(stage.reject(stage.issue("refiner", ranges=ranges)), "tag.already_issued", "/body/data/ranges/0")


@pytest.mark.parametrize(
    ("tags", "ranges", "field"),
    [
        pytest.param(["ISS-001", "ISS-002", "ISS-001"], None, "/body/data/tags/2", id="listed-twice"),
        pytest.param(["R007"], [{"prefix": "R", "start": 5, "count": 3, "width": 3}], "/body/data/ranges/0", id="listed-and-in-a-range"),
        pytest.param(
            None,
            [{"prefix": "R", "start": 5, "count": 3, "width": 3}, {"prefix": "R0", "start": 6, "count": 1, "width": 2}],
            "/body/data/ranges/1",
            id="two-overlapping-ranges",
        ),
    ],
)
def test_a_tag_issued_twice_within_one_event(world: World, tags, ranges, field: str) -> None:
    """Section 6 says the tags of one event are *distinct*: a repeat is a malformed event (as in
    verification.envelope.issued_tags), not tag.already_issued (which is about tags that already exist)."""
    expect(world.reject(world.issue("site-a", tags, ranges=ranges)), "envelope.malformed", field)


def test_tags_issued_sizes(world: World) -> None:
    expect(world.reject(world.issue("site-a")), "envelope.malformed", "/body/data")
    expect(world.reject(world.issue("site-a", [], ranges=[])), "envelope.malformed", "/body/data")
    too_many = [{"prefix": "A", "start": 0, "count": 6000, "width": 5}, {"prefix": "B", "start": 0, "count": 4001, "width": 5}]
    expect(world.reject(world.issue("site-a", ranges=too_many)), "envelope.malformed", "/body/data/ranges/1/count")
    exactly = [{"prefix": "A", "start": 0, "count": 6000, "width": 5}, {"prefix": "B", "start": 0, "count": 4000, "width": 5}]
    assert len(world.admit(world.issue("site-a", ranges=exactly)).created_tags) == 10_000


def test_a_range_must_issue_valid_tag_ids(world: World) -> None:
    short = [{"prefix": "A", "start": 0, "count": 1, "width": 1}]  # "A0": 2 characters
    expect(world.reject(world.issue("site-a", ranges=short)), "envelope.malformed", "/body/data/ranges/0")
    overflow = [{"prefix": "AB", "start": 9, "count": 2, "width": 1}]  # a longer number is not cut
    assert world.admit(world.issue("site-a", ranges=overflow)).created_tags == ["AB9", "AB10"]


@pytest.mark.parametrize("org", ["auditor", "monitor", "operator"])
def test_tags_are_issued_to_custody_roles_only(world: World, org: str) -> None:
    expect(world.reject(world.issue(org, ["ISS-001"])), "recipient.invalid", "/body/stream")


# --------------------------------------------------------------------------------------------------
# tag_attached
# --------------------------------------------------------------------------------------------------


def test_attach_by_the_org_the_tag_was_issued_to(stage: World) -> None:
    expect(stage.reject(stage.attach("NEW-001", actor="site-b")), "tag.not_issued_to_actor", "/body/actor")
    expect(stage.reject(stage.attach("NEW-001", actor="site-a", site="site-b")), "tag.not_issued_to_actor", "/body/data/site")
    stage.record(stage.attach("NEW-001", actor="site-a", site="site-a"))


def test_a_tag_is_attached_once(stage: World) -> None:
    expect(stage.reject(stage.attach("BAG-001")), "tag.already_attached", "/body/stream")
    expect(stage.reject(stage.attach("TRN-001")), "tag.already_attached", "/body/stream")
    stage.record(stage.attach("NEW-001"))
    expect(stage.reject(stage.attach("NEW-001")), "tag.already_attached", "/body/stream")


def test_a_non_site_custody_org_can_attach_its_own_tag(world: World) -> None:
    # ALLOWED_ROLES lets every custody role attach; the spec only says "the org the tag was issued to"
    world.issue_tags("coop", "COOP-1")
    world.record(world.attach("COOP-1"))
    assert world.state("COOP-1").holder == "coop"


# --------------------------------------------------------------------------------------------------
# tag.not_attached
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda w: w.dispatch("NEW-001", "trader", actor="site-a"), "/body/stream", id="dispatch"),
        pytest.param(lambda w: w.receive("NEW-001", actor="site-a"), "/body/stream", id="receive"),
        pytest.param(lambda w: w.consume("OUT-001", actor="refiner"), "/body/stream", id="consume"),
        pytest.param(lambda w: w.split("NEW-001", [("ISS-1", 1), ("ISS-2", 1)], actor="site-a"), "/body/stream", id="split"),
        pytest.param(lambda w: w.merge("LOT-001", ["BAG-001", "NEW-001"], actor="site-a"), "/body/data/inputs/1", id="merge-input"),
    ],
)
def test_custody_events_need_an_attached_tag(stage: World, build, field: str) -> None:
    stage.issue_tags("site-a", "ISS-1", "ISS-2")
    expect(stage.reject(build(stage)), "tag.not_attached", field)


# --------------------------------------------------------------------------------------------------
# tag.finished: nothing follows consumed / voided / merged / split
# --------------------------------------------------------------------------------------------------


def _finish(w: World, how: str) -> None:
    """FIN-1, held by the refiner, is finished `how`."""
    w.bag_at("FIN-1", "refiner")
    if how == "consumed":
        w.record(w.consume("FIN-1"))
    elif how == "voided":
        w.record(w.void("FIN-1"))
    elif how == "merged":
        w.issue_tags("refiner", "LOT-R1")
        w.record(w.merge("LOT-R1", ["FIN-1"]))
    elif how == "split":
        w.issue_tags("refiner", "OUT-R1", "OUT-R2")
        w.record(w.split("FIN-1", [("OUT-R1", 500), ("OUT-R2", 500)]))
    assert w.state("FIN-1").finished and w.state("FIN-1").status == how


FOLLOWERS = {
    "dispatch": (lambda w: w.dispatch("FIN-1", "trader", actor="refiner"), "/body/stream"),
    "receive": (lambda w: w.receive("FIN-1", actor="refiner"), "/body/stream"),
    "consume": (lambda w: w.consume("FIN-1", actor="refiner"), "/body/stream"),
    "void": (lambda w: w.void("FIN-1", actor="refiner"), "/body/stream"),
    "void-by-operator": (lambda w: w.void("FIN-1", actor="operator"), "/body/stream"),
    "split": (lambda w: w.split("FIN-1", [("NEW-R1", 500), ("NEW-R2", 500)], actor="refiner"), "/body/stream"),
    "merge-as-input": (lambda w: w.merge("NEW-LOT", ["FIN-1"], actor="refiner", mass_g=1000), "/body/data/inputs/0"),
}


@pytest.mark.parametrize("how", ["consumed", "voided", "merged", "split"])
@pytest.mark.parametrize("follower", sorted(FOLLOWERS))
def test_nothing_follows_a_finished_tag(world: World, how: str, follower: str) -> None:
    _finish(world, how)
    world.issue_tags("refiner", "NEW-R1", "NEW-R2", "NEW-LOT")
    build, field = FOLLOWERS[follower]
    expect(world.reject(build(world)), "tag.finished", field)


@pytest.mark.parametrize("how", ["consumed", "voided", "merged", "split"])
def test_attach_on_a_finished_tag_is_already_attached(world: World, how: str) -> None:
    """Both tag.finished ("any event") and tag.already_attached ("attach on a tag not in status issued")
    describe this; the domain names the more specific one, tag.already_attached."""
    _finish(world, how)
    expect(world.reject(world.attach("FIN-1", actor="site-a")), "tag.already_attached", "/body/stream")


def test_an_unattached_voided_tag_is_finished(stage: World) -> None:
    stage.record(stage.void("NEW-001", actor="site-a"))
    assert stage.state("NEW-001").status == Status.VOIDED
    expect(stage.reject(stage.void("NEW-001", actor="operator")), "tag.finished", "/body/stream")
    expect(stage.reject(stage.dispatch("NEW-001", "trader", actor="site-a")), "tag.finished", "/body/stream")
    expect(stage.reject(stage.attach("NEW-001")), "tag.already_attached", "/body/stream")
    expect(stage.reject(stage.merge("NEW-001", ["BAG-001"])), "tag.already_attached", "/body/stream")


# --------------------------------------------------------------------------------------------------
# custody.not_holder, custody.not_recipient, custody.not_in_transit, custody.in_transit
# --------------------------------------------------------------------------------------------------


def test_only_the_current_holder_dispatches(stage: World) -> None:
    expect(stage.reject(stage.dispatch("BAG-001", "trader", actor="site-b")), "custody.not_holder", "/body/actor")
    stage.hand_over("BAG-001", "coop")
    expect(stage.reject(stage.dispatch("BAG-001", "trader", actor="site-a")), "custody.not_holder", "/body/actor")
    stage.record(stage.dispatch("BAG-001", "trader", actor="coop"))


def test_the_recipient_does_not_hold_an_in_transit_tag(stage: World) -> None:
    expect(stage.reject(stage.dispatch("TRN-001", "exporter", actor="trader")), "custody.not_holder", "/body/actor")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda w: w.consume("REF-001", actor="refiner-2"), "/body/actor", id="consume"),
        pytest.param(lambda w: w.split("BAG-001", [("OUT-001", 500), ("OUT-002", 500)], actor="refiner"), "/body/actor", id="split"),
        pytest.param(lambda w: w.merge("LOT-001", ["BAG-001", "BAG-B"], actor="site-a"), "/body/data/inputs/1", id="merge-input"),
        pytest.param(lambda w: w.void("BAG-001", actor="site-b"), "/body/actor", id="void"),
        pytest.param(lambda w: w.void("TRN-001", actor="trader"), "/body/actor", id="void-by-recipient"),
    ],
)
def test_custody_not_holder(stage: World, build, field: str) -> None:
    stage.add_org("refiner-2", "refiner")
    stage.bag("BAG-B", "site-b")
    expect(stage.reject(build(stage)), "custody.not_holder", field)


def test_only_the_named_recipient_receives(stage: World) -> None:
    expect(stage.reject(stage.receive("TRN-001", actor="exporter")), "custody.not_recipient", "/body/actor")
    expect(stage.reject(stage.receive("TRN-001", actor="site-a")), "custody.not_recipient", "/body/actor")
    stage.record(stage.receive("TRN-001", actor="trader"))
    assert stage.state("TRN-001").holder == "trader"


@pytest.mark.parametrize("actor", ["site-a", "trader"])
def test_receive_needs_a_dispatch(stage: World, actor: str) -> None:
    expect(stage.reject(stage.receive("BAG-001", actor=actor)), "custody.not_in_transit", "/body/stream")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda w: w.dispatch("REF-001", "exporter"), "/body/stream", id="dispatch"),
        pytest.param(lambda w: w.consume("REF-001"), "/body/stream", id="consume"),
        pytest.param(lambda w: w.split("REF-001", [("OUT-001", 500), ("OUT-002", 500)]), "/body/stream", id="split"),
        pytest.param(lambda w: w.merge("LOT-R", ["REF-001"], mass_g=1000), "/body/data/inputs/0", id="merge-input"),
    ],
)
def test_an_in_transit_tag_cannot_move(stage: World, build, field: str) -> None:
    stage.issue_tags("refiner", "LOT-R")
    stage.record(stage.dispatch("REF-001", "trader"))
    assert stage.state("REF-001").holder == "refiner"
    expect(stage.reject(build(stage)), "custody.in_transit", field)


def test_the_holder_may_void_an_in_transit_tag(stage: World) -> None:
    stage.record(stage.void("TRN-001", actor="site-a", reason="stolen"))
    assert stage.state("TRN-001").pending_recipient is None


# --------------------------------------------------------------------------------------------------
# recipient.invalid
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["site-a", "nobody", "auditor", "monitor", "operator"])
def test_dispatch_to_an_invalid_recipient(stage: World, to: str) -> None:
    expect(stage.reject(stage.dispatch("BAG-001", to)), "recipient.invalid", "/body/data/to")


@pytest.mark.parametrize("to", ["site-b", "coop", "trader", "processor", "exporter", "refiner"])
def test_dispatch_to_any_other_custody_org(stage: World, to: str) -> None:
    stage.record(stage.dispatch("BAG-001", to))


# --------------------------------------------------------------------------------------------------
# mass.gain (tolerance boundary)
# --------------------------------------------------------------------------------------------------

# (tolerance ppm, current g, the largest accepted g): at the boundary accepted, one gram more refused
GAIN_BOUNDARIES = [
    (20_000, 1000, 1020),
    (20_000, 1234, 1258),  # 1234 * 1.02 = 1258.68
    (0, 1000, 1000),
    (1, 999_999, 999_999),  # 999_999 * 1.000001 = 999_999.999999
    (1, 1_000_000, 1_000_001),
    (500_000, 3, 4),  # 3 * 1.5 = 4.5
    (20_000, 10**12, 1_020_000_000_000),
]


def _gain_world(tolerance: int, current: int) -> World:
    w = World(tolerance_ppm=tolerance).cast()
    w.bag_at("G-1", "refiner", mass_g=current)
    return w


@pytest.mark.parametrize(("tolerance", "current", "limit"), GAIN_BOUNDARIES)
@pytest.mark.parametrize("event", ["dispatch", "receive", "consume"])
def test_mass_gain_boundary(event: str, tolerance: int, current: int, limit: int) -> None:
    def body(w: World, mass: int) -> dict[str, Any]:
        if event == "dispatch":
            return w.dispatch("G-1", "trader", mass_g=mass)
        if event == "consume":
            return w.consume("G-1", mass_g=mass)
        return w.receive("G-1", mass_g=mass)

    w = _gain_world(tolerance, current)
    if event == "receive":
        w.record(w.dispatch("G-1", "trader"))  # no dispatched mass: compared with the current mass
    expect(w.reject(body(w, limit + 1)), "mass.gain", "/body/data/mass_g")
    w.record(body(w, limit))


def test_receive_is_compared_with_the_dispatched_mass(world: World) -> None:
    world.bag("G-1", mass_g=1000)
    world.record(world.dispatch("G-1", "trader", mass_g=900))
    expect(world.reject(world.receive("G-1", mass_g=919)), "mass.gain", "/body/data/mass_g")  # 900 * 1.02 = 918
    world.record(world.receive("G-1", mass_g=918))


def test_losing_mass_is_always_allowed(world: World) -> None:
    world.bag_at("G-1", "refiner", mass_g=1000)
    world.record(world.dispatch("G-1", "trader", mass_g=1))
    world.record(world.receive("G-1", mass_g=1))


# --------------------------------------------------------------------------------------------------
# mass.balance on lot_formed and lot_split (both directions, boundary)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mass", "ok"),
    [(1500, True), (1530, True), (1531, False), (1470, True), (1469, False), (1, False), (3000, False)],
)
def test_mass_balance_of_a_lot(stage: World, mass: int, ok: bool) -> None:
    body = stage.merge("LOT-001", ["BAG-001", "BAG-002"], mass_g=mass)  # inputs: 1000 + 500 g, 2 %
    if ok:
        stage.record(body)
    else:
        expect(stage.reject(body), "mass.balance", "/body/data/mass_g")


@pytest.mark.parametrize(
    ("outputs", "ok"),
    [
        ((500, 500), True),
        ((510, 510), True),  # 1020
        ((510, 511), False),  # 1021
        ((490, 490), True),  # 980
        ((490, 489), False),  # 979
        ((1, 1), False),
    ],
)
def test_mass_balance_of_a_split(stage: World, outputs: tuple[int, int], ok: bool) -> None:
    body = stage.split("REF-001", list(zip(["OUT-001", "OUT-002"], outputs)))  # the lot: 1000 g, 2 %
    if ok:
        stage.record(body)
    else:
        expect(stage.reject(body), "mass.balance", "/body/data/outputs")


def test_mass_balance_with_zero_tolerance() -> None:
    w = staged(tolerance_ppm=0)
    expect(w.reject(w.merge("LOT-001", ["BAG-001", "BAG-002"], mass_g=1501)), "mass.balance", "/body/data/mass_g")
    expect(w.reject(w.merge("LOT-001", ["BAG-001", "BAG-002"], mass_g=1499)), "mass.balance", "/body/data/mass_g")
    expect(w.reject(w.split("REF-001", [("OUT-001", 500), ("OUT-002", 499)])), "mass.balance", "/body/data/outputs")
    w.record(w.split("REF-001", [("OUT-001", 500), ("OUT-002", 500)]))
    w.record(w.merge("LOT-001", ["BAG-001", "BAG-002"], mass_g=1500))


# --------------------------------------------------------------------------------------------------
# lot_formed: links, lot tag, inputs
# --------------------------------------------------------------------------------------------------


def test_lot_links_must_equal_the_inputs(stage: World) -> None:
    h = stage.head_hash
    missing = {"tag:BAG-001": h("tag:BAG-001")}
    extra = {**missing, "tag:BAG-002": h("tag:BAG-002"), "tag:NEW-001": h("tag:NEW-001")}
    for links in (missing, extra, None):
        body = stage.merge("LOT-001", ["BAG-001", "BAG-002"], links=links)
        expect(stage.reject(body), "envelope.malformed", "/body/links")


def test_lot_inputs_are_distinct_and_exclude_the_lot(stage: World) -> None:
    twice = stage.merge("LOT-001", ["BAG-001", "BAG-001"], mass_g=2000)
    expect(stage.reject(twice), "envelope.malformed", "/body/data/inputs")
    itself = stage.merge("LOT-001", ["BAG-001", "LOT-001"], mass_g=1000)
    expect(stage.reject(itself), "envelope.malformed", "/body/data/inputs")


def test_the_lot_tag_must_be_issued_to_the_actor_and_unused(stage: World) -> None:
    stage.issue_tags("site-b", "LOT-B")
    expect(stage.reject(stage.merge("LOT-B", ["BAG-001"])), "tag.not_issued_to_actor", "/body/stream")
    expect(stage.reject(stage.merge("BAG-002", ["BAG-001"])), "tag.already_attached", "/body/stream")
    stage.record(stage.merge("LOT-001", ["BAG-001"]))  # a lot of one input is fine
    stage.issue_tags("site-a", "LOT-002")
    expect(stage.reject(stage.merge("LOT-001", ["BAG-002"])), "tag.already_attached", "/body/stream")
    stage.record(stage.merge("LOT-002", ["LOT-001"]))  # a lot of lots


def test_every_input_must_be_held_by_the_actor(stage: World) -> None:
    stage.bag("BAG-B", "site-b")
    v = stage.reject(stage.merge("LOT-001", ["BAG-001", "BAG-002", "BAG-B"], actor="site-a"))
    expect(v, "custody.not_holder", "/body/data/inputs/2")


# --------------------------------------------------------------------------------------------------
# lot_split: outputs
# --------------------------------------------------------------------------------------------------


def test_split_outputs_must_be_issued_to_the_actor(stage: World) -> None:
    stage.issue_tags("trader", "OUT-T")
    v = stage.reject(stage.split("REF-001", [("OUT-001", 500), ("OUT-T", 500)]))
    expect(v, "tag.not_issued_to_actor", "/body/data/outputs/1/tag")


def test_split_outputs_must_be_unused(stage: World) -> None:
    stage.bag("USED-1", "refiner")
    stage.issue_tags("refiner", "VOID-1")
    stage.record(stage.void("VOID-1", actor="refiner"))
    for used in ("USED-1", "VOID-1"):
        v = stage.reject(stage.split("REF-001", [(used, 500), ("OUT-001", 500)]))
        expect(v, "tag.already_attached", "/body/data/outputs/0/tag")


def test_split_outputs_are_distinct_and_exclude_the_lot(stage: World) -> None:
    expect(stage.reject(stage.split("REF-001", [("OUT-001", 500), ("OUT-001", 500)])), "envelope.malformed", "/body/data/outputs")
    expect(stage.reject(stage.split("REF-001", [("OUT-001", 500), ("REF-001", 500)])), "envelope.malformed", "/body/data/outputs")


def test_split_links_must_equal_the_outputs(stage: World) -> None:
    h = stage.head_hash
    for links in ({"tag:OUT-001": h("tag:OUT-001")}, None, {"tag:OUT-001": h("tag:OUT-001"), "tag:OUT-002": h("tag:OUT-002"), "tag:NEW-001": h("tag:NEW-001")}):
        body = stage.split("REF-001", [("OUT-001", 500), ("OUT-002", 500)], links=links)
        expect(stage.reject(body), "envelope.malformed", "/body/links")


def test_split_by_the_holder_only(stage: World) -> None:
    v = stage.reject(stage.split("REF-001", [("OUT-001", 500), ("OUT-002", 500)], actor="trader"))
    expect(v, "custody.not_holder", "/body/actor")


# --------------------------------------------------------------------------------------------------
# tag_voided
# --------------------------------------------------------------------------------------------------


def test_void_by_the_holder(stage: World) -> None:
    stage.record(stage.void("BAG-001", actor="site-a", reason="damaged"))
    assert stage.state("BAG-001").void_reason == "damaged"


@pytest.mark.parametrize("tag", ["BAG-001", "NEW-001", "TRN-001", "REF-001"])
def test_void_by_the_operator(stage: World, tag: str) -> None:
    stage.record(stage.void(tag, actor="operator", reason="other"))


def test_void_by_a_non_holder_is_refused(stage: World) -> None:
    stage.hand_over("BAG-001", "trader")
    expect(stage.reject(stage.void("BAG-001", actor="site-a")), "custody.not_holder", "/body/actor")


def test_an_unattached_tag_is_voided_by_the_org_it_was_issued_to(stage: World) -> None:
    expect(stage.reject(stage.void("NEW-001", actor="site-b")), "custody.not_holder", "/body/actor")
    stage.record(stage.void("NEW-001", actor="site-a"))
