"""domain.custody: the state of a tag folded from its events, and properties of random valid histories.

Events are admitted and folded by `tests/unit/domain_world.World` exactly as the ledger writer does
(rules.check, then Registry.apply, then custody.apply). Pure: no database, no HTTP, no signatures.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain import custody
from domain.custody import FINISHED, Status, TagState
from domain.errors import RuleViolation
from domain.roles import CUSTODY_ROLES
from domain.rules import check
from domain_world import World, fold, streams_of

# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

FIELDS = ("status", "issued_to", "holder", "pending_recipient", "mass_g", "lot", "inputs", "parent", "outputs", "void_reason", "events")


def view(state: TagState, *fields: str) -> dict[str, Any]:
    data = state.to_json()
    return {f: data[f] for f in (fields or FIELDS)}


def history_of(world: World, tag: str) -> list[tuple[dict[str, Any], str, int]]:
    """The accepted events of one tag stream (the ones the ledger stores under `tag:<id>`)."""
    return [entry for entry in world.log if f"tag:{tag}" in streams_of(entry[0])]


def head_of(world: World, tag: str) -> tuple[str, int]:
    head = world.state(tag).head
    return head.hash, head.seq


# --------------------------------------------------------------------------------------------------
# the state after each event type
# --------------------------------------------------------------------------------------------------


def test_tags_issued_creates_issued_tags() -> None:
    w = World().cast()
    h = w.record(w.issue("site-a", ["AAA-1"], ranges=[{"prefix": "R-", "start": 1, "count": 2, "width": 3}]))
    assert sorted(w.tags) == ["AAA-1", "R-001", "R-002"]
    for tag in w.tags:
        assert view(w.state(tag)) == {
            "status": "issued",
            "issued_to": "site-a",
            "holder": None,
            "pending_recipient": None,
            "mass_g": None,
            "lot": None,
            "inputs": [],
            "parent": None,
            "outputs": [],
            "void_reason": None,
            "events": 1,
        }
        assert head_of(w, tag) == (h, w.seq - 1)
        assert w.state(tag).origin is None
    assert w.registry.head_of("org:site-a").hash == h  # tags_issued moves the recipient's org stream


def test_tags_issued_with_only_creates_only_those() -> None:
    w = World().cast()
    body = w.issue("site-a", ["AAA-1", "AAA-2", "AAA-3"])
    w.admit(body)
    tags: dict[str, TagState] = {}
    custody.apply(tags, body, "ab" * 32, 99, only={"AAA-2", "ZZZ-9"})
    assert list(tags) == ["AAA-2"]
    assert tags["AAA-2"].head.seq == 99


def test_attach_puts_the_tag_in_custody_with_its_origin() -> None:
    w = World().cast()
    w.issue_tags("site-a", "BAG-1")
    gps = {"lat": "-10.7123456", "lon": "25.4678900"}
    price = {"currency": "USD", "minor_per_kg": 1250}
    body = w.attach("BAG-1", mineral="tin", mass_g=48_100, pit="pit-7", data={"ore": "cassiterite", "gps": gps, "price_paid": price})
    h = w.record(body)
    s = w.state("BAG-1")
    assert view(s, "status", "holder", "mass_g", "pending_recipient", "events") == {
        "status": "in_custody",
        "holder": "site-a",
        "mass_g": 48_100,
        "pending_recipient": None,
        "events": 2,
    }
    assert s.origin == {
        "site": "site-a",
        "mineral": "tin",
        "ore": "cassiterite",
        "pit": "pit-7",
        "gps": gps,
        "attached_at": body["time"],
        "price_paid": price,
    }
    assert head_of(w, "BAG-1") == (h, w.seq - 1)
    assert s.to_json()["last_time"] == body["time"].replace("Z", ".000000Z")


def test_attach_without_optional_fields() -> None:
    w = World().cast()
    w.bag("BAG-1")
    assert w.state("BAG-1").origin == {
        "site": "site-a",
        "mineral": "cobalt",
        "ore": None,
        "pit": "pit-1",
        "gps": None,
        "attached_at": w.log[-1][0]["time"],
        "price_paid": None,
    }


def test_dispatch_and_receive() -> None:
    w = World().cast()
    w.bag("BAG-1", mass_g=1000)
    origin = w.state("BAG-1").origin
    h = w.record(w.dispatch("BAG-1", "trader", mass_g=990))
    s = w.state("BAG-1")
    assert view(s, "status", "holder", "pending_recipient", "mass_g", "events") == {
        "status": "in_transit",
        "holder": "site-a",  # the dispatcher holds it until it is received
        "pending_recipient": "trader",
        "mass_g": 1000,  # the dispatched mass does not change the tag's mass
        "events": 3,
    }
    assert s.dispatched_mass_g == 990
    assert head_of(w, "BAG-1") == (h, w.seq - 1)
    h = w.record(w.receive("BAG-1", mass_g=985))
    s = w.state("BAG-1")
    assert view(s, "status", "holder", "pending_recipient", "mass_g", "events") == {
        "status": "in_custody",
        "holder": "trader",
        "pending_recipient": None,
        "mass_g": 985,
        "events": 4,
    }
    assert s.dispatched_mass_g is None
    assert s.origin == origin  # custody moves, the origin stays
    assert head_of(w, "BAG-1") == (h, w.seq - 1)


def test_dispatch_without_mass() -> None:
    w = World().cast()
    w.bag("BAG-1", mass_g=1000)
    w.record(w.dispatch("BAG-1", "trader"))
    assert w.state("BAG-1").dispatched_mass_g is None
    w.record(w.receive("BAG-1", mass_g=1000))
    assert w.state("BAG-1").mass_g == 1000


def test_merge() -> None:
    w = World().cast()
    w.bag("BAG-1", mass_g=600)
    w.bag("BAG-2", mass_g=400)
    w.issue_tags("site-a", "LOT-1")
    h = w.record(w.merge("LOT-1", ["BAG-1", "BAG-2"], mass_g=995))
    for tag in ("BAG-1", "BAG-2"):
        assert view(w.state(tag), "status", "lot", "holder", "mass_g", "events") == {
            "status": "merged",
            "lot": "LOT-1",
            "holder": "site-a",
            "mass_g": 600 if tag == "BAG-1" else 400,  # the input keeps the mass it had when merged
            "events": 3,
        }
        assert head_of(w, tag) == (h, w.seq - 1)
    assert view(w.state("LOT-1"), "status", "holder", "mass_g", "inputs", "lot", "parent", "events") == {
        "status": "in_custody",
        "holder": "site-a",
        "mass_g": 995,
        "inputs": ["BAG-1", "BAG-2"],
        "lot": None,
        "parent": None,
        "events": 2,
    }
    assert w.state("LOT-1").origin is None
    assert head_of(w, "LOT-1") == (h, w.seq - 1)


def test_split() -> None:
    w = World().cast()
    w.bag_at("LOT-1", "refiner", mass_g=1000)
    w.issue_tags("refiner", "OUT-1", "OUT-2", "OUT-3")
    h = w.record(w.split("LOT-1", [("OUT-1", 500), ("OUT-2", 300), ("OUT-3", 195)]))
    assert view(w.state("LOT-1"), "status", "holder", "mass_g", "outputs") == {
        "status": "split",
        "holder": "refiner",
        "mass_g": 1000,
        "outputs": ["OUT-1", "OUT-2", "OUT-3"],
    }
    for tag, mass in (("OUT-1", 500), ("OUT-2", 300), ("OUT-3", 195)):
        assert view(w.state(tag), "status", "holder", "mass_g", "parent", "issued_to", "events") == {
            "status": "in_custody",
            "holder": "refiner",
            "mass_g": mass,
            "parent": "LOT-1",
            "issued_to": "refiner",
            "events": 2,
        }
        assert head_of(w, tag) == (h, w.seq - 1)
    # a split output moves on like any bag
    w.record(w.consume("OUT-1"))
    assert w.state("OUT-1").status == Status.CONSUMED


def test_consume_with_and_without_mass() -> None:
    w = World().cast()
    w.bag_at("BAG-1", "refiner", mass_g=1000)
    w.bag_at("BAG-2", "refiner", mass_g=1000)
    w.record(w.consume("BAG-1", mass_g=990, product="cathode"))
    w.record(w.consume("BAG-2"))
    assert view(w.state("BAG-1"), "status", "holder", "mass_g") == {"status": "consumed", "holder": "refiner", "mass_g": 990}
    assert view(w.state("BAG-2"), "status", "holder", "mass_g") == {"status": "consumed", "holder": "refiner", "mass_g": 1000}


def test_void() -> None:
    w = World().cast()
    w.bag("BAG-1")
    w.bag("BAG-2")
    w.issue_tags("site-a", "NEW-1")
    w.record(w.void("BAG-1", reason="damaged"))
    w.record(w.dispatch("BAG-2", "trader"))
    w.record(w.void("BAG-2", reason="stolen", note="ambushed on the road"))
    w.record(w.void("NEW-1", actor="operator", reason="lost"))
    assert view(w.state("BAG-1"), "status", "holder", "void_reason", "mass_g") == {
        "status": "voided",
        "holder": "site-a",
        "void_reason": "damaged",
        "mass_g": 1000,
    }
    assert view(w.state("BAG-2"), "status", "holder", "pending_recipient", "void_reason") == {
        "status": "voided",
        "holder": "site-a",
        "pending_recipient": None,
        "void_reason": "stolen",
    }
    assert view(w.state("NEW-1"), "status", "holder", "void_reason", "events") == {
        "status": "voided",
        "holder": None,
        "void_reason": "lost",
        "events": 2,
    }
    assert all(w.state(t).finished for t in ("BAG-1", "BAG-2", "NEW-1"))


def test_finished_is_exactly_the_final_statuses() -> None:
    assert FINISHED == {Status.MERGED, Status.SPLIT, Status.CONSUMED, Status.VOIDED}


def test_registry_events_leave_tags_alone_and_tag_events_leave_org_heads_alone() -> None:
    w = World().cast()
    w.bag("BAG-1")
    before = w.state("BAG-1").to_json()
    w.record(w.add_key("site-a"))
    w.record(w.register("newcomer", "trader"))
    w.record(w.revoke_key("site-a", w.kid("site-a")))
    assert w.state("BAG-1").to_json() == before
    org_head = w.registry.head_of("org:site-a")
    w.record(w.dispatch("BAG-1", "trader", key=w.kids("site-a")[1]))
    assert w.registry.head_of("org:site-a") == org_head


def test_an_event_of_a_tag_outside_the_view_is_ignored() -> None:
    w = World().cast()
    w.bag("BAG-1")
    body, h, seq = w.log[-1]
    tags: dict[str, TagState] = {}
    custody.apply(tags, body, h, seq)
    assert tags == {}


# --------------------------------------------------------------------------------------------------
# partial views and replay
# --------------------------------------------------------------------------------------------------


def _busy_world() -> World:
    """Bags, hand-overs, a lot of lots, a split, consumption and voids."""
    w = World().cast()
    w.bag("BAG-1", mass_g=600)
    w.bag("BAG-2", mass_g=400)
    w.bag("BAG-3", "site-b", mass_g=700)
    w.issue_tags("coop", "LOT-1", "LOT-2", "SPARE-1")
    w.hand_over("BAG-1", "coop")
    w.hand_over("BAG-2", "coop", mass_g=395)
    w.hand_over("BAG-3", "coop")
    w.record(w.merge("LOT-1", ["BAG-1", "BAG-2"]))
    w.record(w.merge("LOT-2", ["LOT-1", "BAG-3"], mass_g=1690))
    w.hand_over("LOT-2", "trader")
    w.hand_over("LOT-2", "refiner", mass_g=1680)
    w.issue_tags("refiner", "OUT-1", "OUT-2")
    w.record(w.split("LOT-2", [("OUT-1", 1000), ("OUT-2", 680)]))
    w.record(w.consume("OUT-1", mass_g=990))
    w.record(w.dispatch("OUT-2", "exporter"))
    w.record(w.void("OUT-2", reason="stolen"))
    w.record(w.void("SPARE-1", actor="coop"))
    return w


def test_replaying_the_log_gives_the_same_state() -> None:
    w = _busy_world()
    registry, tags = fold(w.log)
    assert {t: s.to_json() for t, s in tags.items()} == {t: s.to_json() for t, s in w.tags.items()}
    assert {o: r.to_json() for o, r in registry.orgs.items()} == {o: r.to_json() for o, r in w.registry.orgs.items()}
    assert {k: r.to_json() for k, r in registry.keys.items()} == {k: r.to_json() for k, r in w.registry.keys.items()}


def test_folding_one_tag_alone_gives_the_same_state() -> None:
    w = _busy_world()
    for tag, full in w.tags.items():
        _, alone = fold(history_of(w, tag), only={tag})
        assert list(alone) == [tag]
        assert alone[tag].to_json() == full.to_json(), tag


def test_folding_a_few_tags_together_gives_the_same_states() -> None:
    w = _busy_world()
    wanted = {"LOT-2", "BAG-3", "OUT-2"}
    log = [e for e in w.log if any(f"tag:{t}" in streams_of(e[0]) for t in wanted)]
    _, some = fold(log, only=wanted)
    assert set(some) == wanted
    for tag in wanted:
        assert some[tag].to_json() == w.state(tag).to_json()


def test_a_partial_view_is_enough_for_check() -> None:
    """The writer hands `check` only the touched tags; decisions must not depend on the rest."""
    w = _busy_world()
    w.bag_at("BAG-9", "refiner")
    w.issue_tags("refiner", "LOT-9")
    for body in (w.merge("LOT-9", ["BAG-9"]), w.consume("BAG-9"), w.dispatch("BAG-9", "trader")):
        touched = {s.removeprefix("tag:") for s in streams_of(body) if s.startswith("tag:")}
        _, view_tags = fold([e for e in w.log if any(f"tag:{t}" in streams_of(e[0]) for t in touched)], only=touched)
        full = check(body, registry=w.registry, tags=w.tags, now=w.now)
        partial = check(body, registry=w.registry, tags=view_tags, now=w.now)
        assert full == partial


# --------------------------------------------------------------------------------------------------
# property: random valid custody histories
# --------------------------------------------------------------------------------------------------

TAGS = [f"T-{i:02d}" for i in range(12)]
HOLDERS = ["site-a", "site-b", "coop", "trader", "refiner"]
ACTORS = [*HOLDERS, "auditor", "monitor", "operator"]
KINDS = ["attach", "dispatch", "receive", "merge", "split", "consume", "void"]


def _scaled(mass: int | None, per_mille: int) -> int:
    base = mass or 1000
    return max(1, base + base * per_mille // 1000)


# Strategies are built once: building them inside the loop dominates the runtime.
KIND = st.sampled_from(KINDS)
WHO = st.sampled_from([None] * 16 + ACTORS)  # mostly the builder's default actor
INDEX = st.integers(0, 2**10)
SENSIBLE = st.integers(0, 9)  # 0: any tag, 1..9: a tag for which the action makes sense
DELTA = st.integers(-30, 25)  # per mille of the reference mass; the tolerance is 20 per mille
MASS = st.integers(1, 100_000)
MAYBE = st.booleans()
INDICES = {n: st.lists(INDEX, min_size=n, max_size=3) for n in (1, 2)}
REASON = st.sampled_from(["lost", "stolen", "damaged", "other"])


def _pick(data: st.DataObject, candidates: list[str]) -> str:
    """Mostly a tag for which the action makes sense; sometimes any tag (to exercise refusals)."""
    pool = candidates if candidates and data.draw(SENSIBLE) else TAGS
    return pool[data.draw(INDEX) % len(pool)]


def _pick_some(data: st.DataObject, candidates: list[str], at_least: int) -> list[str]:
    pool = candidates if len(candidates) >= at_least and data.draw(SENSIBLE) else TAGS
    return list(dict.fromkeys(pool[i % len(pool)] for i in data.draw(INDICES[at_least])))


def _draw_body(w: World, data: st.DataObject) -> dict[str, Any]:
    """One random event, biased toward events that `check` accepts (default actor, plausible tag)."""
    tags = w.tags
    by_status = {status: [t for t in TAGS if tags[t].status == status] for status in Status}
    kind = data.draw(KIND)
    who = data.draw(WHO)
    mass_delta = data.draw(DELTA)
    if kind == "attach":
        return w.attach(_pick(data, by_status[Status.ISSUED]), actor=who, mass_g=data.draw(MASS))
    if kind == "dispatch":
        tag = _pick(data, by_status[Status.IN_CUSTODY])
        others = [o for o in HOLDERS if o != tags[tag].holder]
        recipients = others if data.draw(SENSIBLE) else ACTORS
        to = recipients[data.draw(INDEX) % len(recipients)]
        mass = _scaled(tags[tag].mass_g, mass_delta) if data.draw(MAYBE) else None
        return w.dispatch(tag, to, actor=who, mass_g=mass)
    if kind == "receive":
        tag = _pick(data, by_status[Status.IN_TRANSIT])
        reference = tags[tag].dispatched_mass_g or tags[tag].mass_g
        return w.receive(tag, actor=who, mass_g=_scaled(reference, mass_delta))
    if kind == "merge":
        held_by = {o: [t for t in by_status[Status.IN_CUSTODY] if tags[t].holder == o] for o in HOLDERS}
        lot = _pick(data, [t for t in by_status[Status.ISSUED] if held_by.get(tags[t].issued_to)])
        held = held_by.get(tags[lot].issued_to, [])
        inputs = _pick_some(data, held, 1)
        total = sum(tags[t].mass_g or 0 for t in inputs)
        return w.merge(lot, inputs, actor=who, mass_g=_scaled(total, mass_delta))
    if kind == "split":
        fresh_of = {o: [t for t in by_status[Status.ISSUED] if tags[t].issued_to == o] for o in HOLDERS}
        lot = _pick(data, [t for t in by_status[Status.IN_CUSTODY] if len(fresh_of[tags[t].holder]) >= 2])
        fresh = fresh_of.get(tags[lot].holder or "", [])
        outputs = _pick_some(data, fresh, 2)
        total = _scaled(tags[lot].mass_g, mass_delta)
        share = max(1, total // len(outputs))
        masses = [share] * (len(outputs) - 1) + [max(1, total - share * (len(outputs) - 1))]
        return w.split(lot, list(zip(outputs, masses)), actor=who)
    if kind == "consume":
        tag = _pick(data, [t for t in by_status[Status.IN_CUSTODY] if tags[t].holder == "refiner"])
        mass = _scaled(tags[tag].mass_g, mass_delta) if data.draw(MAYBE) else None
        return w.consume(tag, actor=who, mass_g=mass)
    return w.void(TAGS[data.draw(INDEX) % len(TAGS)], actor=who, reason=data.draw(REASON))


def _snapshot(w: World) -> dict[str, dict[str, Any]]:
    return {t: s.to_json() for t, s in w.tags.items()}


def _within(a: int, b: int, ppm: int) -> bool:
    return abs(a - b) * 1_000_000 <= b * ppm


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    issued_to=st.lists(st.sampled_from(HOLDERS), min_size=len(TAGS), max_size=len(TAGS)),
    steps=st.integers(5, 60),
    data=st.data(),
)
def test_random_custody_histories_keep_the_invariants(issued_to: list[str], steps: int, data: st.DataObject) -> None:
    w = World().cast()
    for org in HOLDERS:
        mine = [t for t, o in zip(TAGS, issued_to) if o == org]
        if mine:
            w.issue_tags(org, *mine)
    tolerance = w.tolerance_ppm
    accepted = 0

    for _ in range(steps):
        body = _draw_body(w, data)
        before = _snapshot(w)
        try:
            w.admit(body)
        except RuleViolation as violation:
            event(f"rejected {violation.rule}")
            assert _snapshot(w) == before  # check never changes the state
            continue
        w.record(body)
        accepted += 1
        event(f"accepted {body['type']}")
        after = _snapshot(w)

        # a tag that is finished never changes again
        for tag, old in before.items():
            if old["status"] in FINISHED:
                assert after[tag] == old, (tag, body)

        for tag, state in w.tags.items():
            # the holder is always a custody organisation once the tag is attached
            if state.status not in (Status.ISSUED, Status.VOIDED) or state.holder is not None:
                assert state.holder is not None, tag
                assert w.role(state.holder) in CUSTODY_ROLES, (tag, state.holder)
            if state.status == Status.IN_TRANSIT:
                assert w.role(state.pending_recipient) in CUSTODY_ROLES
                assert state.pending_recipient != state.holder
            else:
                assert state.pending_recipient is None
            if state.status == Status.ISSUED:
                assert state.holder is None and state.mass_g is None
            else:
                assert state.mass_g is None or state.mass_g > 0
            if state.status == Status.MERGED:
                assert w.tags[state.lot].inputs and tag in w.tags[state.lot].inputs
            if state.parent is not None:
                assert tag in w.tags[state.parent].outputs

        if body["type"] == "lot_formed":  # a lot's mass is within tolerance of its inputs' sum
            lot = w.tags[body["stream"].removeprefix("tag:")]
            total = sum(w.tags[t].mass_g for t in lot.inputs)
            assert _within(lot.mass_g, total, tolerance)
            assert all(w.tags[t].status == Status.MERGED for t in lot.inputs)
        if body["type"] == "lot_split":  # and a split's outputs within tolerance of the lot
            lot = w.tags[body["stream"].removeprefix("tag:")]
            assert _within(sum(w.tags[t].mass_g for t in lot.outputs), lot.mass_g, tolerance)

    event(f"accepted events: {'>= 10' if accepted >= 10 else accepted}")

    # determinism: folding the accepted events from scratch, twice, gives the same states
    first = {t: s.to_json() for t, s in fold(w.log)[1].items()}
    second = {t: s.to_json() for t, s in fold(w.log)[1].items()}
    assert first == second == _snapshot(w)

    # partial views: one tag's own events give the same state for that tag
    for tag in w.tags:
        _, alone = fold(history_of(w, tag), only={tag})
        assert alone[tag].to_json() == w.tags[tag].to_json(), tag
