"""The fraud flag rules of `domain.flags`, one by one, and the fold over an in-memory store."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest

from domain import flags
from domain.custody import Status, TagState
from domain.flags import (
    Attempt,
    ChainState,
    Evidence,
    Fix,
    Flag,
    KeyUse,
    MonthTotal,
)
from domain.registry import StreamHead
from verification.encoding import parse_time

KOLWEZI = ("-10.7148", "25.4667")
LUBUMBASHI = ("-11.6609", "27.4794")  # about 240 km from Kolwezi
NEARBY = ("-10.7150", "25.4670")  # a few tens of metres away


def fix(seq: int, where: tuple[str, str], time: str, tag: str = "BAG-1") -> Fix:
    return Fix(tag, seq, f"{seq:064x}", flags.normalised_time(time), where[0], where[1], "custody_received")


# --- distances and speed ---------------------------------------------------------------------------------


def test_haversine_matches_known_distances() -> None:
    assert flags.haversine_km("0", "0", "0", "1") == pytest.approx(111.19, abs=0.01)
    # Kolwezi to Lubumbashi, against the spherical law of cosines (an independent formula)
    p1, p2, dl = (math.radians(float(x)) for x in (KOLWEZI[0], LUBUMBASHI[0], float(LUBUMBASHI[1]) - float(KOLWEZI[1])))
    cosine = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    expected = flags.EARTH_RADIUS_KM * math.acos(cosine)
    assert flags.haversine_km(*KOLWEZI, *LUBUMBASHI) == pytest.approx(expected, rel=1e-9)
    assert 230 < expected < 250
    assert flags.haversine_km(*KOLWEZI, *KOLWEZI) == 0
    assert flags.haversine_km("90", "0", "-90", "0") == pytest.approx(20015.1, abs=0.5)  # antipodes, no domain error


def test_speed_rule_allows_a_plausible_trip_and_gps_error() -> None:
    assert not flags.too_fast(100, 3600)  # 100 km in an hour
    assert flags.too_fast(200, 3600)  # 200 km/h
    assert not flags.too_fast(0.9, 0)  # GPS error at the same moment
    assert flags.too_fast(5, 0)
    assert flags.too_fast(5, -10) and not flags.too_fast(0.5, -10)  # a negative interval counts as zero


def test_travel_flag_names_both_events() -> None:
    earlier = fix(3, KOLWEZI, "2026-01-01T08:00:00Z")
    assert flags.travel_flag(earlier, fix(5, LUBUMBASHI, "2026-01-01T12:00:00Z")) is None  # 4 h for 240 km
    flag = flags.travel_flag(earlier, fix(5, LUBUMBASHI, "2026-01-01T08:30:00Z"))
    assert flag is not None and flag.code == "tag.reuse" and flag.raised_at == 5
    assert [e.seq for e in flag.evidence] == [3, 5]
    assert "km/h" in flag.summary and "#3" in flag.summary and "#5" in flag.summary
    assert flags.travel_flag(earlier, fix(5, NEARBY, "2026-01-01T08:00:00Z")) is None


def test_merge_fixes_keeps_the_latest_per_position_and_at_most_max(monkeypatch) -> None:
    a1 = fix(1, KOLWEZI, "2026-01-01T08:00:00Z", "A")
    a2 = fix(4, KOLWEZI, "2026-01-01T09:00:00Z", "B")
    b = fix(2, LUBUMBASHI, "2026-01-01T07:00:00Z", "C")
    assert flags.merge_fixes([[a1], [a2, b]]) == [b, a2]
    monkeypatch.setattr(flags, "MAX_FIXES", 1)
    assert flags.merge_fixes([[a1], [a2, b]]) == [a2]


# --- mass --------------------------------------------------------------------------------------------------


def test_exceeds_is_the_protocol_comparison() -> None:
    assert not flags.exceeds(102_000, 100_000, 20_000)
    assert flags.exceeds(102_001, 100_000, 20_000)
    assert flags.exceeds(Fraction(201, 2), 100, 0)


def test_mass_gain_is_cumulative_against_the_chain_start() -> None:
    chain = ChainState("BAG-1", mass=50_000, start=Fraction(50_000), start_seq=4, start_hash="a" * 64)
    assert flags.mass_gain_flag(chain, 51_000, 9, "b" * 64, "received", 20_000) is None  # +2.0 %: within
    flag = flags.mass_gain_flag(chain, 51_001, 9, "b" * 64, "received", 20_000)
    assert flag is not None and flag.code == "mass.gain" and flag.raised_at == 9
    assert [e.seq for e in flag.evidence] == [4, 9]
    assert "51.001 kg" in flag.summary and "50.000 kg" in flag.summary and "2.00%" in flag.summary
    assert flags.mass_gain_flag(ChainState("X"), 10**9, 1, "c" * 64, "received", 0) is None  # no start yet


def test_a_lot_heavier_than_its_inputs_is_flagged_even_within_tolerance() -> None:
    assert flags.lot_heavier_flag("LOT-1", 100_000, 100_000, 7, "d" * 64) is None
    flag = flags.lot_heavier_flag("LOT-1", 100_001, 100_000, 7, "d" * 64)
    assert flag is not None and flag.code == "lot.heavier_than_inputs" and flag.evidence[0].seq == 7
    split = flags.lot_heavier_flag("LOT-1", 100_500, 100_000, 8, "e" * 64, split=True)
    assert split is not None and "split" in split.summary


def test_kilograms_is_exact() -> None:
    assert flags.kilograms(49_800) == "49.800"
    assert flags.kilograms(1_234_567) == "1,234.567"
    assert flags.kilograms(Fraction(2001, 2)) == "1.000"  # 1000.5 g rounds to even


# --- site capacity -----------------------------------------------------------------------------------------


def test_month_of_is_the_utc_calendar_month() -> None:
    assert flags.month_of("2026-03-31T23:59:59Z") == "2026-03"
    assert flags.month_of("2026-04-01T00:00:00.000001Z") == "2026-04"


def test_site_capacity_flags_the_crossing_attachment_and_the_later_ones() -> None:
    total = MonthTotal("kalimbi", "2026-03")
    assert flags.add_to_month(total, 60_000, 100, "A", 1, "1" * 64) is None
    assert flags.add_to_month(total, 40_000, 100, "B", 2, "2" * 64) is None  # exactly at capacity: fine
    crossing = flags.add_to_month(total, 1, 100, "C", 3, "3" * 64)
    assert crossing is not None and crossing.code == "site.over_capacity"
    assert [e.seq for e in crossing.evidence] == [3] and total.crossed.seq == 3 and total.crossed_tag == "C"
    later = flags.add_to_month(total, 5_000, 100, "D", 4, "4" * 64)
    assert later is not None and [e.seq for e in later.evidence] == [3, 4]
    assert "100 kg per month" in later.summary and total.total_g == 105_001


# --- revoked keys ------------------------------------------------------------------------------------------


def test_revoked_key_flag_names_the_event_and_the_revocation() -> None:
    use = KeyUse(5, "5" * 64, {"type": "custody_received", "actor": "trader", "time": "2026-01-02T00:00:00Z",
                               "stream": "tag:BAG-1"})
    revocation = {"type": "key_revoked", "stream": "org:trader", "time": "2026-01-05T00:00:00Z",
                  "data": {"key": "0123456789abcdef", "reason": "phone stolen", "effective": "2026-01-01T00:00:00Z"}}
    flag = flags.revoked_key_flag(use, 9, "9" * 64, revocation)
    assert flag.code == "custody.revoked_key" and flag.raised_at == 9
    assert [e.seq for e in flag.evidence] == [5, 9]
    assert "phone stolen" in flag.summary and "2026-01-01T00:00:00Z" in flag.summary


def test_tags_of_an_entry() -> None:
    assert flags.tags_of({"type": "lot_formed", "stream": "tag:LOT-1", "links": {"tag:A": None, "tag:B": None},
                          "data": {}}) == ["LOT-1", "A", "B"]
    issued = {"type": "tags_issued", "stream": "org:x",
              "data": {"ranges": [{"prefix": "K-", "start": 1, "count": 2, "width": 2}]}}
    assert flags.tags_of(issued) == ["K-01", "K-02"]


# --- refused attempts --------------------------------------------------------------------------------------


def state(tag: str, status: Status, **kw: Any) -> TagState:
    return TagState(tag=tag, issued_to="kalimbi", head=StreamHead("f" * 64, 12, parse_time("2026-01-01T00:00:00Z")),
                    status=status, **kw)


@pytest.mark.parametrize(
    ("rule", "pointer", "status", "kept"),
    [
        ("tag.finished", "/body/stream", Status.VOIDED, "BAG-1"),
        ("tag.finished", "/body/stream", Status.CONSUMED, "BAG-1"),
        ("tag.finished", "/body/stream", Status.MERGED, "BAG-1"),
        ("tag.already_attached", "/body/stream", Status.VOIDED, "BAG-1"),
        ("tag.already_attached", "/body/stream", Status.IN_CUSTODY, None),  # attached twice: not a reuse
        ("tag.not_attached", "/body/stream", Status.VOIDED, None),
        ("custody.not_holder", "/body/actor", Status.VOIDED, None),
        ("tag.finished", "/body/stream", Status.IN_CUSTODY, None),  # inconsistent: keep nothing
    ],
)
def test_attempt_tag_decides_what_is_kept(rule: str, pointer: str, status: Status, kept: str | None) -> None:
    body = {"type": "custody_dispatched", "stream": "tag:BAG-1", "data": {"to": "trader"}}
    assert flags.attempt_tag(body, rule, pointer, {"BAG-1": state("BAG-1", status)}) == kept


def test_attempt_tag_finds_the_input_or_output_named_by_the_pointer() -> None:
    body = {"type": "lot_formed", "stream": "tag:LOT-1", "data": {"inputs": ["A", "B"], "mass_g": 1}}
    tags = {"A": state("A", Status.IN_CUSTODY), "B": state("B", Status.CONSUMED),
            "LOT-1": state("LOT-1", Status.ISSUED)}
    assert flags.attempt_tag(body, "tag.finished", "/body/data/inputs/1", tags) == "B"
    assert flags.attempt_tag(body, "tag.finished", "/body/data/inputs/7", tags) is None
    split = {"type": "lot_split", "stream": "tag:LOT-1", "data": {"outputs": [{"tag": "V", "mass_g": 1}]}}
    assert flags.attempt_tag(split, "tag.already_attached", "/body/data/outputs/0/tag",
                             {"V": state("V", Status.VOIDED)}) == "V"


def test_attempts_flag_lists_the_end_and_every_attempt() -> None:
    voided = state("BAG-1", Status.VOIDED, void_reason="stolen")
    body = {"type": "custody_dispatched", "actor": "trader", "time": "2026-01-03T00:00:00Z"}
    attempts = [Attempt("BAG-1", "tag.finished", "2026-01-03T00:00:01.000000Z", 20, "a" * 64, body),
                Attempt("BAG-1", "tag.already_attached", "2026-01-04T00:00:01.000000Z", 22, "b" * 64,
                        {**body, "type": "tag_attached", "actor": "kalimbi"})]
    flag = flags.attempts_flag(attempts, voided, "f" * 64)
    assert flag is not None and flag.code == "tag.reuse" and flag.raised_at is None
    assert [(e.seq, e.hash) for e in flag.evidence] == [(12, "f" * 64), (None, "a" * 64), (None, "b" * 64)]
    assert "voided (stolen)" in flag.summary and "kalimbi, trader" in flag.summary
    assert flags.attempts_flag([], voided, "f" * 64) is None


# --- flags on a tag, inheritance, as_of, verdict -----------------------------------------------------------


def test_add_flag_keeps_one_flag_per_code_and_gathers_evidence() -> None:
    found: list[Flag] = []
    assert flags.add_flag(found, Flag("tag.reuse", "first", [Evidence(1, "a", "x")], 1))
    assert flags.add_flag(found, Flag("tag.reuse", "second", [Evidence(1, "a", "x"), Evidence(2, "b", "y")], 2))
    assert not flags.add_flag(found, Flag("tag.reuse", "third", [Evidence(2, "b", "y")], 3))
    assert not flags.add_flag(found, None)
    assert len(found) == 1 and found[0].summary == "first" and [e.seq for e in found[0].evidence] == [1, 2]


def test_visible_as_of_hides_later_flags_and_evidence() -> None:
    flag = Flag("mass.gain", "s", [Evidence(3, "a", "x"), Evidence(9, "b", "y")], 9)
    assert flags.visible(flag, None) is flag
    assert flags.visible(flag, 9) is None
    assert [e.seq for e in flags.visible(flag, 10).evidence] == [3, 9]
    assert flags.visible(Flag("tag.reuse", "s", [Evidence(None, "c", "z")], None), 100) is None


def test_tag_flags_inherits_and_groups_by_code() -> None:
    own = [Flag("mass.gain", "own gain", [Evidence(8, "h8", "n")], 8)]
    upstream = [
        ("A", "a tag that went into this lot", [Flag("site.over_capacity", "A over", [Evidence(1, "h1", "n")], 1)]),
        ("B", "a tag that went into this lot", [Flag("site.over_capacity", "B over", [Evidence(2, "h2", "n")], 2),
                                                 Flag("tag.reuse", "B cloned", [Evidence(3, "h3", "n")], 3)]),
    ]
    shown = flags.tag_flags("LOT-1", own, upstream)
    assert [(f["code"], f["inherited"]) for f in shown] == [
        ("mass.gain", False), ("tag.reuse", True), ("site.over_capacity", True)]
    assert shown[0]["tag"] == "LOT-1"
    reuse, capacity = shown[1], shown[2]
    assert reuse["summary"].startswith("Inherited from B, a tag that went into this lot: B cloned")
    assert capacity["from"] == ["A", "B"] and capacity["summary"].startswith("Inherited from 2 tags")
    assert [e["seq"] for e in capacity["evidence"]] == [1, 2]
    assert flags.tag_flags("X", [], []) == []


def test_verdict_summary_lists_the_reasons() -> None:
    shown = [{"code": "mass.gain", "inherited": False}, {"code": "tag.reuse", "inherited": True}]
    text = flags.verdict_summary(shown, "In the custody of Trader.")
    assert text.startswith("Flagged: mass gained along the chain; tag reuse (inherited).")
    assert text.endswith("Custody: In the custody of Trader.")


def test_chain_state_round_trips() -> None:
    chain = ChainState("LOT-1", mass=10, start=Fraction(7, 3), start_seq=1, start_hash="a",
                       fixes=[fix(2, KOLWEZI, "2026-01-01T00:00:00Z")],
                       flags=[Flag("tag.reuse", "s", [Evidence(None, "h", "n")], None)])
    assert ChainState.from_json(chain.to_json()) == chain
    assert ChainState("X").empty and not chain.empty


# --- the fold ----------------------------------------------------------------------------------------------


class MemoryStore:
    """`FlagsStore` in memory: what `ledger.flags` keeps in tables."""

    def __init__(self) -> None:
        self.chains: dict[str, ChainState] = {}
        self.capacities: dict[str, int] = {}
        self.months: dict[tuple[str, str], MonthTotal] = {}
        self.uses: list[tuple[int, str, str]] = []
        self.bodies: dict[int, dict[str, Any]] = {}
        self.roles: dict[str, str] = {"customs": "authority", "monitor": "monitor", "operator": "operator"}

    def chain(self, tag: str) -> ChainState:
        return self.chains.setdefault(tag, ChainState(tag))

    def capacity(self, site: str) -> int | None:
        return self.capacities.get(site)

    def set_capacity(self, site: str, kg: int) -> None:
        self.capacities[site] = kg

    def month(self, site: str, month: str) -> MonthTotal:
        return self.months.setdefault((site, month), MonthTotal(site, month))

    def record_use(self, seq: int, kid: str, time: str) -> None:
        self.uses.append((seq, kid, time))

    def uses_since(self, kid: str, time: str) -> list[KeyUse]:
        return [KeyUse(s, f"{s:064x}", self.bodies[s]) for s, k, t in self.uses if k == kid and t >= time]

    def role_of(self, org: str) -> str | None:
        return self.roles.get(org)


class Fold:
    def __init__(self, tolerance: int = 20_000) -> None:
        self.store = MemoryStore()
        self.seq = 0
        self.tolerance = tolerance

    def __call__(self, kind: str, stream: str, data: dict[str, Any], *, time: str = "2026-01-01T00:00:00Z",
                 actor: str = "x", key: str = "k1", links: list[str] | None = None,
                 received: str | None = None) -> int:
        self.seq += 1
        body = {"type": kind, "stream": stream, "data": data, "time": time, "actor": actor, "key": key}
        if links:
            body["links"] = {f"tag:{t}": None for t in links}
        self.store.bodies[self.seq] = body
        flags.apply(self.store, body, f"{self.seq:064x}", self.seq, self.tolerance, received)
        return self.seq

    def codes(self, tag: str) -> list[str]:
        return [f.code for f in self.store.chain(tag).flags]


def test_fold_mass_creep_over_hops_a_lot_and_a_split() -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "s", "mass_g": 50_000})
    f("custody_received", "tag:A", {"mass_g": 51_000})  # +2 %
    assert f.codes("A") == []
    f("custody_received", "tag:A", {"mass_g": 51_500})  # +3 % in all
    assert f.codes("A") == ["mass.gain"]
    f("tag_attached", "tag:B", {"site": "s", "mass_g": 50_000})
    f("custody_received", "tag:B", {"mass_g": 50_900})
    f("lot_formed", "tag:L", {"inputs": ["B"], "mass_g": 51_500}, links=["B"])  # +1.2 % on 50,900, +3 % on start
    assert f.codes("L") == ["lot.heavier_than_inputs", "mass.gain"]
    assert f.store.chain("L").start == 50_000
    f("lot_split", "tag:L", {"outputs": [{"tag": "O1", "mass_g": 25_000}, {"tag": "O2", "mass_g": 26_500}]},
      links=["O1", "O2"])
    assert f.store.chain("O1").start == Fraction(50_000 * 25_000, 51_500)
    f("custody_received", "tag:O1", {"mass_g": 25_000})
    assert f.codes("O1") == ["mass.gain"]  # 25,000 g against a share of 24,272 g of the original start


def test_fold_gps_chain_through_a_lot() -> None:
    f = Fold()
    gps = lambda where: {"lat": where[0], "lon": where[1]}  # noqa: E731
    f("tag_attached", "tag:A", {"site": "s", "mass_g": 1000, "gps": gps(KOLWEZI)}, time="2026-01-01T08:00:00Z")
    f("custody_received", "tag:A", {"mass_g": 1000, "gps": gps(NEARBY)}, time="2026-01-01T09:00:00Z")
    f("lot_formed", "tag:L", {"inputs": ["A"], "mass_g": 1000}, links=["A"], time="2026-01-01T09:10:00Z")
    assert [x.seq for x in f.store.chain("L").fixes] == [2]
    f("custody_dispatched", "tag:L", {"to": "y", "gps": gps(LUBUMBASHI)}, time="2026-01-01T09:20:00Z")
    assert f.codes("L") == ["tag.reuse"] and f.codes("A") == []
    assert [e.seq for e in f.store.chain("L").flags[0].evidence] == [2, 4]


def test_fold_capacity_and_backdated_revocation() -> None:
    f = Fold()
    f("org_registered", "org:s", {"role": "site", "capacity_kg_per_month": 1})
    f("tag_attached", "tag:A", {"site": "s", "mass_g": 800}, time="2026-01-10T00:00:00Z")
    f("tag_attached", "tag:B", {"site": "s", "mass_g": 800}, time="2026-01-20T00:00:00Z", key="k2")
    f("tag_attached", "tag:C", {"site": "s", "mass_g": 800}, time="2026-02-01T00:00:00Z", key="k2")
    assert (f.codes("A"), f.codes("B"), f.codes("C")) == ([], ["site.over_capacity"], [])
    f("key_revoked", "org:s", {"key": "k2", "reason": "stolen", "effective": "2026-01-25T00:00:00Z"},
      time="2026-02-02T00:00:00Z")
    assert "custody.revoked_key" not in f.codes("B")  # signed before the effective time
    assert f.codes("C") == ["custody.revoked_key"]


# --- signed scans (tag_scanned): positions, and a tag seen after its end -------------------------------------

KIGALI = ("-1.9441", "30.0619")  # about 1,170 km from Lubumbashi
LUBUMBASHI_NEAR = ("-11.6612", "27.4790")  # a few tens of metres from LUBUMBASHI


def gps(where: tuple[str, str]) -> dict[str, str]:
    return {"lat": where[0], "lon": where[1]}


def scan(f: Fold, tag: str, where: tuple[str, str], time: str, **data: Any) -> int:
    return f("tag_scanned", f"tag:{tag}", {"gps": gps(where), **data}, time=time, actor="customs")


def test_a_scan_far_away_shortly_after_a_custody_event_is_flagged() -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "s", "mass_g": 1000}, time="2026-01-01T07:00:00Z")
    received = f("custody_received", "tag:A", {"mass_g": 1000, "gps": gps(LUBUMBASHI)}, time="2026-01-01T08:00:00Z")
    scanned = scan(f, "A", KIGALI, "2026-01-01T08:10:00Z", location="Kigali airport", purpose="customs")
    [flag] = f.store.chain("A").flags
    assert flag.code == "tag.reuse" and flag.raised_at == scanned
    assert [(e.seq, e.hash) for e in flag.evidence] == [(received, f"{received:064x}"), (scanned, f"{scanned:064x}")]
    assert flag.evidence[1].note.startswith("tag_scanned of A at -1.9441,30.0619")
    assert "10 min apart" in flag.summary and f"#{received}" in flag.summary and f"#{scanned}" in flag.summary
    # the scan is now the tag's last position: a receipt back in Lubumbashi 20 minutes later is flagged too
    back = f("custody_received", "tag:A", {"mass_g": 1000, "gps": gps(LUBUMBASHI)}, time="2026-01-01T08:30:00Z")
    assert [e.seq for e in f.store.chain("A").flags[0].evidence] == [received, scanned, back]


def test_a_scan_nearby_or_long_after_is_not_flagged() -> None:
    f = Fold()
    f("custody_received", "tag:A", {"mass_g": 1000, "gps": gps(LUBUMBASHI)}, time="2026-01-01T08:00:00Z")
    scan(f, "A", LUBUMBASHI_NEAR, "2026-01-01T08:01:00Z", purpose="inspection")
    scan(f, "A", KIGALI, "2026-01-02T08:01:00Z")  # 1,170 km in a day: plausible
    assert f.codes("A") == []
    assert [x.type for x in f.store.chain("A").fixes] == ["tag_scanned"]
    # a scan without a tag position before it (nothing recorded a gps) has nothing to be compared with
    scan(f, "B", KIGALI, "2026-01-01T08:00:00Z")
    assert f.codes("B") == [] and f.store.chain("B").end is None


@pytest.mark.parametrize(
    ("kind", "data", "what"),
    [
        ("tag_consumed", {"mass_g": 1000}, "A consumed at refiner on 2026-01-01T09:00:00.000000Z"),
        ("tag_voided", {"reason": "stolen"}, "A voided (stolen) by refiner on 2026-01-01T09:00:00.000000Z"),
    ],
)
def test_a_scan_after_the_end_is_flagged_with_the_end_and_the_scan(kind: str, data: dict[str, Any],
                                                                   what: str) -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "s", "mass_g": 1000}, time="2026-01-01T07:00:00Z")
    ended = f(kind, "tag:A", data, time="2026-01-01T09:00:00Z", actor="refiner")
    assert f.codes("A") == [] and f.store.chain("A").end == Evidence(ended, f"{ended:064x}", what)
    # seen a week later, nearby and slowly enough for the travel rule: only its end makes it suspect
    scanned = scan(f, "A", KOLWEZI, "2026-01-08T09:00:00Z", location="Kolwezi market", purpose="purchase")
    [flag] = f.store.chain("A").flags
    assert flag.code == "tag.reuse" and flag.raised_at == scanned
    assert [(e.seq, e.hash) for e in flag.evidence] == [(ended, f"{ended:064x}"), (scanned, f"{scanned:064x}")]
    assert flag.evidence[0].note == what
    assert flag.evidence[1].note == (f"scanned by customs at Kolwezi market (purchase) at {KOLWEZI[0]},{KOLWEZI[1]} "
                                     f"on 2026-01-08T09:00:00.000000Z, after the tag's end (entry #{ended})")
    assert flag.summary.startswith("Tag A was scanned by customs at Kolwezi market (purchase) on "
                                   f"2026-01-08T09:00:00.000000Z (entry #{scanned}), after its life was over: {what}")
    # one flag per code: a second scan adds its evidence only (the end is not repeated)
    again = scan(f, "A", KOLWEZI, "2026-01-09T09:00:00Z")
    [flag] = f.store.chain("A").flags
    assert [e.seq for e in flag.evidence] == [ended, scanned, again] and flag.raised_at == scanned
    # as of before the second scan: the flag as it was then
    assert [e.seq for e in flags.visible(flag, again).evidence] == [ended, scanned]
    assert flags.visible(flag, scanned) is None


def test_a_scan_after_the_end_joins_an_earlier_travel_flag() -> None:
    f = Fold()
    first = f("custody_received", "tag:A", {"mass_g": 1000, "gps": gps(LUBUMBASHI)}, time="2026-01-01T08:00:00Z")
    second = scan(f, "A", KIGALI, "2026-01-01T08:10:00Z")  # travel
    ended = f("tag_consumed", "tag:A", {}, time="2026-01-01T09:00:00Z", actor="refiner")
    late = scan(f, "A", KIGALI, "2026-01-05T09:00:00Z")
    [flag] = f.store.chain("A").flags  # one flag per code and tag: the travel flag, with the new evidence
    assert "Possible cloned tag" in flag.summary and flag.raised_at == second
    assert [e.seq for e in flag.evidence] == [first, second, ended, late]
    assert "after the tag's end" in flag.evidence[3].note


def test_a_scan_of_a_merged_input_flags_the_input_and_names_the_lot() -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "s", "mass_g": 1000, "gps": gps(KOLWEZI)}, time="2026-01-01T08:00:00Z")
    f("tag_attached", "tag:B", {"site": "s", "mass_g": 1000}, time="2026-01-01T08:00:00Z")
    formed = f("lot_formed", "tag:L", {"inputs": ["A", "B"], "mass_g": 2000}, links=["A", "B"],
               time="2026-01-01T10:00:00Z", actor="depot")
    assert f.store.chain("A").end == Evidence(formed, f"{formed:064x}",
                                              "A merged into lot L by depot on 2026-01-01T10:00:00.000000Z")
    assert f.store.chain("L").end is None  # the lot lives on
    scanned = scan(f, "A", KOLWEZI, "2026-01-03T10:00:00Z", purpose="monitoring")
    assert f.codes("A") == ["tag.reuse"] and f.codes("L") == [] and f.codes("B") == []
    assert [e.seq for e in f.store.chain("A").flags[0].evidence] == [formed, scanned]
    assert "merged into lot L" in f.store.chain("A").flags[0].summary
    # a scan of the lot itself is an ordinary position (its inputs' last positions are its chain's)
    f("tag_scanned", "tag:L", {"gps": gps(LUBUMBASHI)}, time="2026-01-03T10:30:00Z", actor="customs")
    assert f.codes("L") == []  # 2 days after A's attachment at Kolwezi, 240 km: plausible
    split = f("lot_split", "tag:L", {"outputs": [{"tag": "O1", "mass_g": 1000}, {"tag": "O2", "mass_g": 1000}]},
              links=["O1", "O2"], time="2026-01-03T11:00:00Z", actor="depot")
    assert f.store.chain("L").end.seq == split and "split into 2 tags" in f.store.chain("L").end.note
    assert f.store.chain("O1").end is None
    scan(f, "L", LUBUMBASHI, "2026-01-03T12:00:00Z")
    assert f.codes("L") == ["tag.reuse"] and f.codes("O1") == []


def test_scans_before_the_end_and_risk_events_change_nothing_else() -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "s", "mass_g": 1000}, time="2026-01-01T07:00:00Z")
    scan(f, "A", KOLWEZI, "2026-01-01T08:00:00Z")
    chain = f.store.chain("A")
    assert chain.mass == 1000 and chain.start == 1000 and chain.end is None and chain.flags == []
    before = {tag: c.to_json() for tag, c in f.store.chains.items()}
    uses = list(f.store.uses)
    # risk and remediation events (incident: and site: streams) are no business of the flags
    f("incident_reported", "incident:INC-0001", {"site": "s", "category": "child_labour", "severity": "high"})
    f("action_assigned", "incident:INC-0001", {"action": "A1", "owner": "s"})
    f("site_monitored", "site:s", {"period": "2026-01"})
    assert {tag: c.to_json() for tag, c in f.store.chains.items()} == before and f.store.uses == uses


def test_chain_state_with_an_end_round_trips_and_old_rows_read() -> None:
    chain = ChainState("A", end=Evidence(4, "e" * 64, "A consumed at refiner on 2026-01-01T00:00:00.000000Z"))
    assert not chain.empty and ChainState.from_json(chain.to_json()) == chain
    old = ChainState("B", mass=5).to_json()
    assert "end" not in old  # a live tag's row is unchanged by this field
    assert ChainState.from_json(old).end is None


def test_attempts_flag_starts_with_the_end_entry_when_it_is_known() -> None:
    # the tag's head is a scan made after its end: the projection's end entry is the evidence, not the head
    voided = state("BAG-1", Status.VOIDED, void_reason="stolen")
    body = {"type": "custody_dispatched", "actor": "trader", "time": "2026-01-03T00:00:00Z"}
    attempts = [Attempt("BAG-1", "tag.finished", "2026-01-03T00:00:01.000000Z", 20, "a" * 64, body)]
    end = Evidence(9, "9" * 64, "BAG-1 voided (stolen) by kalimbi on 2026-01-02T00:00:00.000000Z")
    flag = flags.attempts_flag(attempts, voided, "f" * 64, end)
    assert [(e.seq, e.hash) for e in flag.evidence] == [(9, "9" * 64), (None, "a" * 64)]
    assert flag.evidence[0] == end and "voided (stolen)" in flag.summary


# --- standing and late records (protocol 9.1, since 1.7) ------------------------------------------------------


def test_custody_parties_are_the_actors_of_custody_events_and_the_named_recipients() -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "site", "mass_g": 10_000}, actor="site")
    f("custody_dispatched", "tag:A", {"to": "trader"}, actor="site")
    f("tag_scanned", "tag:A", {"gps": gps(LUBUMBASHI_NEAR)}, actor="customs")  # a scan makes nobody a party
    assert f.store.chain("A").parties == ["site", "trader"]
    f("custody_received", "tag:A", {"mass_g": 10_000}, actor="trader")
    f("lot_formed", "tag:L", {"inputs": ["A"], "mass_g": 10_000}, actor="trader", links=["A"])
    assert f.store.chain("A").parties == ["site", "trader"] and f.store.chain("L").parties == ["trader"]
    assert flags.standing("trader", "trader", f.store.chain("A").parties) == "custody"
    assert flags.standing("rival", "trader", f.store.chain("A").parties) is None
    assert flags.standing("customs", "authority", []) == "office"
    assert flags.standing("field", "monitor", []) == "office"


def test_a_scan_by_an_organisation_without_standing_is_nobodys_evidence() -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "site", "mass_g": 10_000, "gps": gps(LUBUMBASHI)}, actor="site",
      time="2026-01-01T08:00:00Z")
    f("tag_voided", "tag:A", {"reason": "lost"}, actor="site", time="2026-01-01T08:05:00Z")
    f.store.roles["rival"] = "trader"
    # after its end, and 1,170 km in ten minutes: both rules would fire, but a competitor said so
    f("tag_scanned", "tag:A", {"gps": gps(KIGALI)}, actor="rival", time="2026-01-01T08:10:00Z")
    assert f.codes("A") == [] and [x.type for x in f.store.chain("A").fixes] == ["tag_attached"]
    f("tag_scanned", "tag:A", {"gps": gps(KIGALI)}, actor="customs", time="2026-01-01T08:15:00Z")
    assert f.codes("A") == ["tag.reuse"]


def test_an_event_received_more_than_90_days_after_its_time_is_a_late_record() -> None:
    f = Fold()
    f("tag_attached", "tag:A", {"site": "site", "mass_g": 10_000}, actor="site", time="2026-01-01T08:00:00Z",
      received="2026-04-01T08:00:00Z")  # 90 days exactly: fine
    assert f.codes("A") == []
    late = f("custody_dispatched", "tag:A", {"to": "trader"}, actor="site", time="2026-01-02T08:00:00Z",
             received="2026-04-02T08:00:00.000001Z")
    [flag] = f.store.chain("A").flags
    assert flag.code == "time.late_record" and flag.raised_at == late and "90 days later" in flag.summary
    assert [e.seq for e in flag.evidence] == [late]
    f.store.roles["rival"] = "trader"
    f("tag_scanned", "tag:B", {"gps": gps(KIGALI)}, actor="rival", time="2026-01-01T08:00:00Z",
      received="2026-12-01T08:00:00Z")  # a stranger's scan: not even a late record
    assert f.codes("B") == []
    f("tag_attached", "tag:C", {"site": "site", "mass_g": 10_000}, actor="site", time="2026-01-01T08:00:00Z")
    assert f.codes("C") == []  # no receipt time given: the rule is not applied
