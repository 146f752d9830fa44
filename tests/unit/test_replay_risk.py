"""The auditor's replay of `tag_scanned` and the risk events agrees with the ledger, verdict for verdict.

Every event below is signed by the organisation's own key and submitted to the real ledger (domain.rules,
ledger.writer). The `Judge` then asks the auditor's replay (verification.replay, .risk_replay, .event_data)
the same question:

- accepted by the ledger: the ledger's log, replayed from its bytes, replays without error;
- refused by the ledger with (rule, field): a forged log, the ledger's log plus the refused envelope as if the
  ledger had accepted it (the next seq, a later `received`), fails at that entry with the same rule and field.

On top of that: the lifecycle's log replays to the server's custody digest (section 10: `tag_scanned` moves
only the head); the incidents' states folded by the replay equal the server's; the payload shapes of the new
types are refused at the same field by the ledger's schema and the auditor's `check_event_shape`; and
random sequences of risk operations, valid or not, get the same verdict from both (hypothesis).
"""

from __future__ import annotations

import copy
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import RuleViolation
from domain.payloads import parse_data
from ledger.client import LocalTransport
from ledger.projection import CustodyProjection
from tests.ledger.world import World, make_world
from verification.canonical import jcs
from verification.encoding import format_time, parse_time
from verification.entry import decode_entry
from verification.envelope import sign_body
from verification.event_data import DataError, check_event_shape
from verification.parallel import replay_entries
from verification.replay import ALLOWED_ROLES, Replayer, replay_sequential
from verification.replay_errors import ReplayError
from verification.sealed_details import commitment, new_details

HEAD = object()  # "the stream's current head", the default `prev`
H1, H2, H3 = ("1" * 64, "2" * 64, "3" * 64)
PHOTO = {"sha256": H1, "media_type": "image/jpeg", "name": "pit 3"}
STATEMENT = {"sha256": H2, "media_type": "application/pdf"}
GPS = {"lat": "-1.5012345", "lon": "28.9"}


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    rule: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        return "accepted" if self.accepted else f"{self.rule} at {self.field}"


class Judge:
    """Submits signed envelopes to the ledger and checks that the auditor's replay judges each the same way."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.transport = LocalTransport(world.ledger)
        self.judged: list[tuple[str, Verdict]] = []

    # -- the two verdicts ---------------------------------------------------------------------------------

    def entries(self) -> list[bytes]:
        return [stored.data for stored in self.world.ledger.store.iter_all()]

    def envelope(self, actor: str, kind: str, stream: str, data: dict[str, Any], *, prev: Any = HEAD,
                 time: datetime | str | None = None, **changes: Any) -> dict[str, Any]:
        when = time if time is not None else self.world.tick()
        head = self.transport.head(stream) if prev is HEAD else prev
        envelope = self.world.signer(actor).envelope(kind, stream, head, data, time=when)
        if changes:  # other body members (links...), signed again
            body = {**envelope["body"], **changes}
            envelope = sign_body(self.world.keys[actor].private_key, body, check=False).to_json()
        return envelope

    def ledger_verdict(self, envelope: dict[str, Any]) -> Verdict:
        try:
            self.world.ledger.submit(copy.deepcopy(envelope))
        except RuleViolation as violation:
            return Verdict(False, violation.rule, violation.field)
        return Verdict(True)

    def replay_verdict(self, envelope: dict[str, Any], ledger: Verdict) -> Verdict:
        entries = self.entries()
        if not ledger.accepted:  # forge the log in which the ledger accepted it anyway
            last = parse_time(decode_entry(entries[-1]).received)
            received = format_time(max(datetime.now(timezone.utc), last))
            entries.append(jcs({"v": 1, "seq": len(entries), "received": received, "envelope": envelope}))
        try:
            replay_sequential(entries)
        except ReplayError as error:
            assert error.seq == len(entries) - 1, f"the replay failed at an earlier entry: {error}"
            return Verdict(False, error.rule, error.field)
        return Verdict(True)

    def attempt(self, actor: str, kind: str, stream: str, data: dict[str, Any], *, expect: Any = None,
                field: str | None = None, **options: Any) -> Verdict:
        """Submit; the replay must agree with the ledger; and the ledger must answer `expect` (None: accepted;
        a rule name: refused with it, at `field` if given; `any`: whatever it says)."""
        envelope = self.envelope(actor, kind, stream, data, **options)
        ledger = self.ledger_verdict(envelope)
        replay = self.replay_verdict(envelope, ledger)
        label = f"{kind} by {actor} on {stream}"
        assert replay == ledger, f"{label}: the ledger says {ledger}, the replay says {replay}"
        if expect is None:
            assert ledger.accepted, f"{label}: refused with {ledger}"
        elif expect is not any:
            assert (ledger.rule, ledger.field if field is not None else None) == (expect, field), (
                f"{label}: expected {expect} at {field}, got {ledger}")
        self.judged.append((label, ledger))
        return ledger

    def refused(self, expect: str, field: str, actor: str, kind: str, stream: str, data: dict[str, Any],
                **options: Any) -> None:
        self.attempt(actor, kind, stream, data, expect=expect, field=field, **options)


# --- the world --------------------------------------------------------------------------------------------


def risk_world(url: str, *, tags: int = 6) -> World:
    """make_world (a site `kalimbi`, custody orgs, a `monitor`), plus an authority, a partner, a second site."""
    world = make_world(url, tags=tags)
    transport = LocalTransport(world.ledger)
    from ledger.client import LedgerClient
    from ledger.keys import KeyPair

    for org, role in (("customs", "authority"), ("ngo", "partner"), ("mine2", "site")):
        world.keys[org] = KeyPair.generate()
        world.operator.register_org(org, org.title(), role, "CD", [world.keys[org].public_key], time=world.tick())
        world.clients[org] = LedgerClient(transport, world.signer(org))
    return world


def month(moment: datetime, shift: int = 0) -> str:
    index = moment.year * 12 + moment.month - 1 + shift
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def report_data(judge: Judge, **changes: Any) -> dict[str, Any]:
    details = new_details("Two children seen carrying sacks at pit 3.", gps=GPS, notes="seen twice")
    data = {"site": "kalimbi", "category": "health_safety", "severity": "medium",
            "occurred_at": format_time(judge.world.clock - timedelta(days=2)),
            "details": {"sha256": commitment(details)}}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


# --- the lifecycle, with a refusal of every rule along the way ------------------------------------------------


def play_lifecycle(judge: Judge) -> None:
    """Scans, three incidents (closed after remediation, dismissed, left open), site monitoring; and, at the
    point where each can happen, an attempt breaking each rule of `tag_scanned` and of the risk events."""
    w = judge.world
    ok, no = judge.attempt, judge.refused

    # -- tags: one in custody, one consumed, one never attached; scans in any status, by any role -----------
    w.clients["kalimbi"].attach("KAL-000001", mineral="tin", mass_g=40_000, pit="P3", time=w.tick())
    w.clients["kalimbi"].dispatch("KAL-000001", "trader", time=w.tick())
    w.clients["trader"].receive("KAL-000001", mass_g=39_900, time=w.tick())
    w.clients["kalimbi"].attach("KAL-000002", mineral="tin", mass_g=30_000, pit="P1", time=w.tick())
    w.clients["kalimbi"].dispatch("KAL-000002", "refiner", time=w.tick())
    w.clients["refiner"].receive("KAL-000002", mass_g=30_000, time=w.tick())
    w.clients["refiner"].consume("KAL-000002", time=w.tick())

    ok("customs", "tag_scanned", "tag:KAL-000001", {"gps": GPS, "location": "Bukavu border post", "purpose": "customs"})
    ok("monitor", "tag_scanned", "tag:KAL-000003", {"gps": GPS, "purpose": "monitoring"})  # still `issued`
    ok("ngo", "tag_scanned", "tag:KAL-000001", {"gps": GPS, "purpose": "inspection"})  # a partner
    ok("trader", "tag_scanned", "tag:KAL-000003", {"gps": GPS, "location": "Goma"})
    ok("itsci", "tag_scanned", "tag:LOT-0001", {"gps": GPS, "purpose": "other"})
    ok("trader", "tag_scanned", "tag:KAL-000001", {"gps": GPS, "purpose": "purchase"})
    w.clients["trader"].dispatch("KAL-000001", "refiner", time=w.tick())  # custody goes on after a scan
    ok("customs", "tag_scanned", "tag:KAL-000001", {"gps": GPS})  # in transit
    no("tag.finished", "/body/stream", "refiner", "tag_consumed", "tag:KAL-000002", {})
    no("stream.unknown", "/body/stream", "customs", "tag_scanned", "tag:KAL-999999", {"gps": GPS})
    no("envelope.malformed", "/body/data/gps", "customs", "tag_scanned", "tag:KAL-000001", {"purpose": "customs"})
    no("envelope.malformed", "/body/data/purpose", "customs", "tag_scanned", "tag:KAL-000001",
       {"gps": GPS, "purpose": "sightseeing"})
    no("envelope.malformed", "/body/data/gps/lat", "customs", "tag_scanned", "tag:KAL-000001",
       {"gps": {"lat": "91", "lon": "0"}})
    no("stream.conflict", "/body/prev", "customs", "tag_scanned", "tag:KAL-000001", {"gps": GPS}, prev=H3)
    no("time.before_previous", "/body/time", "customs", "tag_scanned", "tag:KAL-000001", {"gps": GPS},
       time=w.clock - timedelta(minutes=65))  # the last event of KAL-000001 was 60 minutes ago
    no("envelope.malformed", "/body/links", "customs", "tag_scanned", "tag:KAL-000001", {"gps": GPS},
       links={"tag:KAL-000003": judge.transport.head("tag:KAL-000003")})
    no("envelope.malformed", "/body/stream", "customs", "tag_scanned", "org:customs", {"gps": GPS})
    # the ledger checks the data (its schema) before the kind of stream and the links: so does the replay
    no("envelope.malformed", "/body/data/gps", "customs", "tag_scanned", "org:customs", {})
    no("envelope.malformed", "/body/data/purpose", "customs", "tag_scanned", "tag:KAL-000001",
       {"gps": GPS, "purpose": "x"}, links={"tag:KAL-000003": judge.transport.head("tag:KAL-000003")})

    # -- INC-1: child labour, worst forms, referred to a partner; remediated and closed -----------------------
    inc1 = "incident:INC-2026-0001"
    no("actor.role", "/body/actor", "itsci", "incident_reported", inc1, report_data(judge), prev=None)
    no("actor.role", "/body/actor", "kalimbi", "incident_reported", inc1, report_data(judge), prev=None)
    no("stream.unknown", "/body/stream", "monitor", "incident_reported", inc1, report_data(judge), prev=H1)
    no("envelope.malformed", "/body/data/worst_forms", "monitor", "incident_reported", inc1,
       report_data(judge, worst_forms=False), prev=None)
    no("envelope.malformed", "/body/data/worst_forms", "monitor", "incident_reported", inc1,  # before occurred_at
       report_data(judge, worst_forms=True, occurred_at=format_time(w.clock + timedelta(days=1))), prev=None)
    no("envelope.malformed", "/body/data/occurred_at", "monitor", "incident_reported", inc1,
       report_data(judge, occurred_at=format_time(w.clock + timedelta(days=1)), site="trader"), prev=None)
    no("site.invalid", "/body/data/site", "monitor", "incident_reported", inc1, report_data(judge, site="trader"),
       prev=None)
    no("site.invalid", "/body/data/site", "monitor", "incident_reported", inc1,
       report_data(judge, site="nowhere", referred_to="ghost"), prev=None)
    no("stream.unknown", "/body/data/referred_to", "monitor", "incident_reported", inc1,
       report_data(judge, referred_to="ghost"), prev=None)
    no("envelope.malformed", "/body/data/evidence", "monitor", "incident_reported", inc1,
       report_data(judge, evidence=[PHOTO, {**STATEMENT, "sha256": H1}]), prev=None)
    no("envelope.malformed", "/body/data/summary", "monitor", "incident_reported", inc1,
       report_data(judge, summary="x" * 201), prev=None)
    no("envelope.malformed", "/body/data/details/salt", "monitor", "incident_reported", inc1,
       report_data(judge, details={"sha256": H1, "salt": "abc"}), prev=None)
    no("envelope.malformed", "/body/data/category", "monitor", "incident_reported", inc1,
       report_data(judge, category="noise"), prev=None)
    no("envelope.malformed", "/body/stream", "monitor", "incident_reported", "site:kalimbi", report_data(judge),
       prev=None)
    ok("monitor", "incident_reported", inc1, report_data(
        judge, category="child_labour", worst_forms=True, severity="high", summary="Children carrying sacks",
        people_affected=4, referred_to="ngo", evidence=[PHOTO, STATEMENT]), prev=None)
    no("stream.conflict", "/body/prev", "monitor", "incident_reported", inc1, report_data(judge), prev=None)
    no("actor.role", "/body/actor", "itsci", "incident_reported", inc1, report_data(judge), prev=None)
    no("incident.not_confirmed", "/body/stream", "monitor", "incident_closed", inc1, {"resolution": "done"})

    now = w.tick()  # actions can be assigned while the incident is only reported
    ok("itsci", "action_assigned", inc1,
       {"action": "A1", "owner": "ngo", "description": "Remove children, school places", "cycle": month(now)}, time=now)
    no("incident.not_confirmed", "/body/stream", "itsci", "incident_closed", inc1, {"resolution": "done"})
    ok("monitor", "incident_confirmed", inc1, {"severity": "critical", "note": "seen again", "evidence": [
        {"sha256": H3, "media_type": "image/png"}]})
    no("incident.not_reported", "/body/stream", "monitor", "incident_confirmed", inc1, {})
    no("incident.not_reported", "/body/stream", "itsci", "incident_dismissed", inc1, {"reason": "changed mind"})
    no("actor.role", "/body/actor", "itsci", "incident_confirmed", inc1, {})

    now = w.tick()
    ok("itsci", "action_assigned", inc1,
       {"action": "A2", "owner": "kalimbi", "description": "Fence pit 3", "cycle": month(now, 2)}, time=now)
    assign = {"action": "A3", "owner": "trader", "description": "x", "cycle": month(w.clock)}
    no("action.duplicate", "/body/data/action", "itsci", "action_assigned", inc1, {**assign, "action": "A1"})
    no("stream.unknown", "/body/data/owner", "itsci", "action_assigned", inc1, {**assign, "owner": "ghost"})
    no("stream.unknown", "/body/data/owner", "itsci", "action_assigned", inc1,
       {**assign, "owner": "ghost", "action": "A1"})
    now = w.tick()
    no("action.cycle", "/body/data/cycle", "itsci", "action_assigned", inc1, {**assign, "cycle": month(now, -1)},
       time=now)
    no("action.duplicate", "/body/data/action", "itsci", "action_assigned", inc1,
       {**assign, "action": "A2", "cycle": month(now, -1)}, time=now)
    no("actor.role", "/body/actor", "monitor", "action_assigned", inc1, assign)
    no("envelope.malformed", "/body/data/cycle", "itsci", "action_assigned", inc1, {**assign, "cycle": "2026-13"})
    no("envelope.malformed", "/body/data/action", "itsci", "action_assigned", inc1, {**assign, "action": "a3"})
    no("envelope.malformed", "/body/data/owner", "itsci", "action_assigned", inc1, {**assign, "owner": None})

    ok("ngo", "action_progress", inc1, {"action": "A1", "note": "12 children in school", "percent": 40,
                                        "evidence": [{"sha256": H2, "media_type": "text/csv"}]})
    ok("kalimbi", "action_progress", inc1, {"action": "A2", "note": "posts ordered"})
    no("action.not_owner", "/body/actor", "trader", "action_progress", inc1, {"action": "A1", "note": "me too"})
    no("action.unknown", "/body/data/action", "ngo", "action_progress", inc1, {"action": "A9", "note": "?"})
    no("action.unknown", "/body/data/action", "trader", "action_progress", inc1, {"action": "A9", "note": "?"})
    no("envelope.malformed", "/body/data/percent", "ngo", "action_progress", inc1,
       {"action": "A1", "note": "x", "percent": 101})
    no("envelope.malformed", "/body/data/evidence", "ngo", "action_progress", inc1,
       {"action": "A1", "note": "x", "evidence": []})
    no("incident.actions_open", "/body/stream", "monitor", "incident_closed", inc1, {"resolution": "done"})

    ok("monitor", "action_verified", inc1, {"action": "A1", "outcome": "not_implemented", "note": "2 still there"})
    ok("ngo", "action_progress", inc1, {"action": "A1", "note": "all in school", "percent": 100})
    ok("monitor", "action_verified", inc1, {"action": "A1", "outcome": "implemented", "evidence": [PHOTO]})
    no("action.done", "/body/data/action", "ngo", "action_progress", inc1, {"action": "A1", "note": "again"})
    no("action.done", "/body/data/action", "trader", "action_progress", inc1, {"action": "A1", "note": "again"})
    no("action.done", "/body/data/action", "monitor", "action_verified", inc1,
       {"action": "A1", "outcome": "implemented"})
    no("action.unknown", "/body/data/action", "monitor", "action_verified", inc1,
       {"action": "A9", "outcome": "implemented"})
    no("actor.role", "/body/actor", "itsci", "action_verified", inc1, {"action": "A2", "outcome": "implemented"})
    no("envelope.malformed", "/body/data/outcome", "monitor", "action_verified", inc1,
       {"action": "A2", "outcome": "partly"})
    no("incident.actions_open", "/body/stream", "itsci", "incident_closed", inc1, {"resolution": "done"})
    ok("monitor", "action_verified", inc1, {"action": "A2", "outcome": "implemented"})
    no("actor.role", "/body/actor", "ngo", "incident_closed", inc1, {"resolution": "done"})
    ok("itsci", "incident_closed", inc1, {"resolution": "Children in school, pit fenced"})
    no("incident.finished", "/body/stream", "monitor", "incident_closed", inc1, {"resolution": "again"})
    no("incident.finished", "/body/stream", "monitor", "incident_confirmed", inc1, {})
    no("incident.finished", "/body/stream", "itsci", "action_assigned", inc1,
       {"action": "A1", "owner": "ghost", "description": "x", "cycle": "2000-01"})  # finished comes first
    no("incident.finished", "/body/stream", "trader", "action_progress", inc1, {"action": "A9", "note": "x"})
    no("stream.conflict", "/body/prev", "monitor", "incident_confirmed", inc1, {}, prev=None)

    # -- INC-2: armed groups, dismissed by the operator; INC-3: left open ------------------------------------
    inc2 = "incident:INC-2026-0002"
    no("stream.unknown", "/body/stream", "monitor", "incident_confirmed", inc2, {})
    ok("monitor", "incident_reported", inc2, report_data(judge, category="armed_groups", severity="low"), prev=None)
    no("time.before_previous", "/body/time", "itsci", "incident_dismissed", inc2, {"reason": "x"},
       time=w.clock - timedelta(minutes=1))
    ok("itsci", "incident_dismissed", inc2, {"reason": "The group had left before the report"})
    no("incident.finished", "/body/stream", "monitor", "incident_confirmed", inc2, {})
    no("incident.finished", "/body/stream", "monitor", "incident_dismissed", inc2, {"reason": "again"})
    ok("monitor", "incident_reported", "incident:INC-2026-0003",
       report_data(judge, site="mine2", category="governance", severity="low"), prev=None)
    ok("monitor", "incident_confirmed", "incident:INC-2026-0003", {})

    # -- site monitoring ----------------------------------------------------------------------------------
    visit = {"period": month(w.clock), "price_paid": {"currency": "USD", "minor_per_kg": 1100},
             "reference_price": {"currency": "USD", "minor_per_kg": 1500}, "reference_source": "LME cash less 30%",
             "workforce": {"women": 12, "men": 40}, "minors_observed": 0, "concerns": ["price", "water"],
             "note": "Paid late"}
    no("stream.conflict", "/body/prev", "monitor", "site_monitored", "site:kalimbi", visit, prev=H1)
    no("stream.unknown", "/body/stream", "monitor", "site_monitored", "site:trader", visit, prev=None)
    no("stream.unknown", "/body/stream", "monitor", "site_monitored", "site:nowhere", visit, prev=None)
    no("actor.role", "/body/actor", "kalimbi", "site_monitored", "site:kalimbi", visit, prev=None)
    no("envelope.malformed", "/body/data/concerns", "monitor", "site_monitored", "site:kalimbi",
       {**visit, "concerns": ["price", "price"]}, prev=None)
    no("envelope.malformed", "/body/data/workforce/men", "monitor", "site_monitored", "site:kalimbi",
       {**visit, "workforce": {"women": 1}}, prev=None)
    no("envelope.malformed", "/body/data/period", "monitor", "site_monitored", "site:kalimbi",
       {**visit, "period": "2026-1"}, prev=None)
    no("envelope.malformed", "/body/stream", "monitor", "site_monitored", inc1, visit)
    no("envelope.malformed", "/body/data/period", "monitor", "site_monitored", inc1, {**visit, "period": "x"})
    ok("monitor", "site_monitored", "site:kalimbi", visit, prev=None)
    no("stream.conflict", "/body/prev", "monitor", "site_monitored", "site:kalimbi", visit, prev=None)
    no("stream.conflict", "/body/prev", "monitor", "site_monitored", "site:mine2", visit, prev=H2)
    no("time.before_previous", "/body/time", "monitor", "site_monitored", "site:kalimbi", {"period": month(w.clock)},
       time=w.clock - timedelta(minutes=45))  # the last event of site:kalimbi was 20 minutes ago
    ok("monitor", "site_monitored", "site:kalimbi", {"period": month(w.clock, 1), "concerns": ["safety"]})
    ok("monitor", "site_monitored", "site:mine2", {"period": month(w.clock)}, prev=None)

    # -- the roles of section 6 for tag events still hold (a partner is not a custody role) ---------------
    no("actor.role", "/body/actor", "ngo", "tag_attached", "tag:KAL-000004",
       {"site": "ngo", "mineral": "tin", "mass_g": 1, "pit": "P"})


# --- tests -----------------------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Any) -> Any:
    built = risk_world(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield built
    built.ledger.close()


def test_roles_and_types_of_the_replay() -> None:
    assert ALLOWED_ROLES["tag_scanned"] >= {"authority", "partner", "monitor", "operator", "auditor", "site"}
    assert ALLOWED_ROLES["incident_reported"] == {"monitor"}
    assert ALLOWED_ROLES["incident_dismissed"] == ALLOWED_ROLES["incident_closed"] == {"monitor", "operator"}
    assert ALLOWED_ROLES["action_assigned"] == {"operator"}
    assert ALLOWED_ROLES["action_progress"] == ALLOWED_ROLES["tag_scanned"]
    assert ALLOWED_ROLES["action_verified"] == ALLOWED_ROLES["site_monitored"] == {"monitor"}
    from domain.roles import ALLOWED_ROLES as LEDGER_ROLES

    assert {kind: {str(r) for r in roles} for kind, roles in LEDGER_ROLES.items()} == {
        kind: set(roles) for kind, roles in ALLOWED_ROLES.items()}


def test_lifecycle_and_every_refusal_agree_with_the_ledger(world: World) -> None:
    judge = Judge(world)
    play_lifecycle(judge)
    refused = [v for _, v in judge.judged if not v.accepted]
    rules = {v.rule for v in refused}
    assert {"incident.finished", "incident.not_reported", "incident.not_confirmed", "incident.actions_open",
            "action.duplicate", "action.cycle", "action.unknown", "action.done", "action.not_owner", "site.invalid",
            "stream.unknown", "stream.conflict", "actor.role", "envelope.malformed", "time.before_previous",
            "tag.finished"} <= rules
    assert len(refused) >= 70

    entries = judge.entries()
    replayed = replay_sequential(entries)
    assert replayed.size == len(entries)

    # the custody digest: the same as the server's projection; scans moved heads only
    projection = CustodyProjection(world.ledger.store)
    projection.catch_up()
    assert list(replayed.rows()) == projection.rows()
    assert replayed.digest == projection.digest()
    in_transit = replayed.state("KAL-000001")
    assert (in_transit.status, in_transit.events) == ("in_transit", 1 + 4 + 4)  # issued, 4 custody events, 4 scans
    assert body_type(entries[in_transit.head_seq]) == "tag_scanned"
    issued = replayed.state("KAL-000003")
    assert (issued.status, issued.events, issued.holder) == ("issued", 3, None)

    # the incidents as the replay folded them = as the server folds them (section 16.3)
    risk = replayed.replayer.risk
    book = world.ledger.risk_book([f"incident:{i}" for i in risk.incidents] + ["site:kalimbi", "site:mine2"])
    assert set(risk.incidents) == set(book.incidents) == {"INC-2026-0001", "INC-2026-0002", "INC-2026-0003"}
    for incident_id, mine in risk.incidents.items():
        theirs = book.incidents[incident_id]
        assert (mine.status, mine.severity, mine.site, mine.head.hash.hex(), mine.head.seq) == (
            theirs.status, theirs.severity, theirs.site, theirs.head.hash, theirs.head.seq)
        def actions(state: Any) -> dict[str, tuple[Any, ...]]:
            return {a: (r.owner, r.status, r.reports, r.progress, r.last_verification)
                    for a, r in state.actions.items()}

        assert actions(mine) == actions(theirs)
    assert [risk.incidents[i].status for i in sorted(risk.incidents)] == ["closed", "dismissed", "confirmed"]
    assert risk.incidents["INC-2026-0001"].severity == "critical"
    for site in ("kalimbi", "mine2"):
        assert risk.site_heads[site].hash.hex() == book.site_heads[site].hash

    # several processes: the same verdict and the same digest
    multi = replay_entries(entries, workers=2, chunk_size=7, mp_context="fork")
    assert (multi.size, multi.digest, multi.root) == (replayed.size, replayed.digest, replayed.root)


def body_type(raw: bytes) -> str:
    return decode_entry(raw).envelope.body["type"]


def test_a_log_without_risk_events_keeps_its_digest_and_scans_change_only_heads(world: World) -> None:
    judge = Judge(world)
    world.clients["kalimbi"].attach("KAL-000001", mineral="tin", mass_g=40_000, pit="P3", time=world.tick())
    before = replay_sequential(judge.entries()).state("KAL-000001").to_json()
    judge.attempt("customs", "tag_scanned", "tag:KAL-000001", {"gps": GPS})
    after = replay_sequential(judge.entries()).state("KAL-000001").to_json()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"events", "head", "last_time"}
    assert after["events"] == before["events"] + 1


def test_refused_attempts_leave_no_trace(world: World) -> None:
    """The replay's risk state is only folded from accepted entries: a refused close changes nothing."""
    judge = Judge(world)
    inc = "incident:INC-7"
    judge.attempt("monitor", "incident_reported", inc, report_data(judge), prev=None)
    judge.refused("incident.not_confirmed", "/body/stream", "monitor", "incident_closed", inc, {"resolution": "x"})
    replayer = Replayer()
    for raw in judge.entries():
        replayer.feed(raw)
    assert replayer.risk.incidents["INC-7"].status == "reported"
    assert replayer.risk.head(inc).seq == len(judge.entries()) - 1
    assert replayer.risk.head("site:kalimbi") is None


# --- the payload shapes: the ledger's schema and the auditor's checker refuse the same field ------------------

VALID_DATA: dict[str, dict[str, Any]] = {
    "tag_scanned": {"gps": GPS, "location": "Goma", "purpose": "customs"},
    "incident_reported": {"site": "kalimbi", "category": "child_labour", "severity": "high",
                          "occurred_at": "2026-11-02T10:00:00Z", "details": {"sha256": H1}, "worst_forms": True,
                          "summary": "s", "people_affected": 3, "referred_to": "ngo", "evidence": [PHOTO, STATEMENT]},
    "incident_confirmed": {"severity": "low", "note": "n", "evidence": [PHOTO]},
    "incident_dismissed": {"reason": "r"},
    "incident_closed": {"resolution": "r"},
    "action_assigned": {"action": "A-1", "owner": "ngo", "description": "d", "cycle": "2026-12"},
    "action_progress": {"action": "A-1", "note": "n", "percent": 0, "evidence": [STATEMENT]},
    "action_verified": {"action": "A-1", "outcome": "not_implemented", "note": "n", "evidence": [PHOTO]},
    "site_monitored": {"period": "2026-12", "price_paid": {"currency": "USD", "minor_per_kg": 1},
                       "reference_price": {"currency": "EUR", "minor_per_kg": 0}, "reference_source": "LME",
                       "workforce": {"women": 0, "men": 1}, "minors_observed": 2,
                       "concerns": sorted(["price", "payment_delay", "safety", "health", "water", "harassment",
                                           "illegal_taxation", "land_access", "equipment", "finance", "childcare",
                                           "other"]),
                       "note": "n"},
    # the custody and registry events, for their string limits and shapes (section 6)
    "tag_attached": {"site": "kalimbi", "mineral": "tin", "ore": "cassiterite", "mass_g": 1, "pit": "P",
                     "gps": GPS, "price_paid": {"currency": "USD", "minor_per_kg": 0}},
    "custody_dispatched": {"to": "ngo", "mass_g": 1, "location": "L", "gps": GPS},
    "custody_received": {"mass_g": 1, "location": "L", "gps": GPS},
    "tag_consumed": {"mass_g": 1, "product": "tin ingot"},
    "tag_voided": {"reason": "lost", "note": "n"},
    "key_revoked": {"key": "0123456789abcdef", "reason": "r", "effective": "2026-11-02T10:00:00Z"},
}
STREAMS = {"tag_scanned": "tag:KAL-000001", "site_monitored": "site:kalimbi", "tag_attached": "tag:KAL-000001",
           "custody_dispatched": "tag:KAL-000001", "custody_received": "tag:KAL-000001",
           "tag_consumed": "tag:KAL-000001", "tag_voided": "tag:KAL-000001", "key_revoked": "org:kalimbi"}
ODD_VALUES = [None, 0, -1, 1, 100, 101, True, False, "", "x", "A1", "a1", "2026-13", "2026-12", "low", "image/jpeg",
              "Image/JPEG", "ngo", "NGO", H1, "2026-11-02T10:00:00Z", "2026-11-02 10:00:00", [], {}, [PHOTO],
              [PHOTO, PHOTO], ["price"], ["price", "price"], {"lat": "0", "lon": "0"}, {"sha256": H1},
              {"currency": "USD", "minor_per_kg": 5}, {"women": 1, "men": 2}, "x" * 120, "x" * 121, "x" * 200,
              "x" * 201, "x" * 500, "x" * 501]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, member in value.items():
            found += _paths(member, (*path, key))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            found += _paths(member, (*path, index))
    return found


def _mutate(data: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "extra" and isinstance(parent, dict):
        parent["zz_extra"] = value
    else:
        parent[last] = value
    return data


def _shape_verdicts(kind: str, data: dict[str, Any]) -> tuple[str | None, str | None]:
    try:
        parse_data(kind, data)
        ledger = None
    except RuleViolation as violation:
        assert violation.rule == "envelope.malformed"
        ledger = violation.field
    body = {"type": kind, "stream": STREAMS.get(kind, "incident:INC-1"), "data": data}
    try:
        check_event_shape(body)
        auditor = None
    except DataError as error:
        auditor = error.field
    return ledger, auditor


def test_valid_payloads_pass_both() -> None:
    for kind, data in VALID_DATA.items():
        assert _shape_verdicts(kind, data) == (None, None), kind
        # each member left out: both still accept it (optional) or both refuse it at that member (required)
        required = []
        for name in data:
            ledger, auditor = _shape_verdicts(kind, {k: v for k, v in data.items() if k != name})
            assert ledger == auditor in (None, f"/body/data/{name}"), (kind, name, ledger, auditor)
            if ledger is not None:
                required.append(name)
        assert _shape_verdicts(kind, {k: data[k] for k in required}) == (None, None), kind


@pytest.mark.parametrize("kind", sorted(VALID_DATA))
def test_payload_shapes_are_refused_at_the_same_field(kind: str) -> None:
    """Every member (nested ones too) of a valid payload replaced by each odd value, deleted, or joined by an
    unknown member: the ledger's schema (domain.payloads) and the auditor's checker refuse at the same field."""
    data = VALID_DATA[kind]
    refused = 0
    for path in _paths(data):
        for how, values in (("set", ODD_VALUES), ("delete", [None]), ("extra", [1])):
            for value in values:
                ledger, auditor = _shape_verdicts(kind, _mutate(data, path, how, value))
                assert ledger == auditor, f"{kind} {path} {how} {value!r}: ledger {ledger}, auditor {auditor}"
                refused += ledger is not None
    assert refused >= 10 * len(_paths(data))


# --- random sequences of risk operations: the ledger's verdict is the replay's --------------------------------

ORGS = ["itsci", "monitor", "kalimbi", "trader", "ngo", "customs"]
KINDS = ["report", "report", "confirm", "dismiss", "close", "assign", "assign", "progress", "progress", "verify",
         "verify", "monitor", "scan"]
OPS = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 1),  # which incident (or site, or tag)
        st.integers(0, 1),  # which action (or category)
        st.integers(0, 3 * len(ORGS) - 1),  # the actor: beyond ORGS (2 times in 3), the plausible one
        st.sampled_from(["plain"] * 5 + ["stale", "odd", "early"]),  # a way to go wrong, or none
    ),
    min_size=4,
    max_size=30,
)


def _plausible(judge: Judge, kind: str, incident: str, action: str) -> str:
    if kind == "assign":
        return "itsci"
    if kind == "scan":
        return "customs"
    if kind in ("dismiss", "close"):
        return random.Random(incident + action).choice(["monitor", "itsci"])
    if kind == "progress":
        book = judge.world.ledger.risk_book([f"incident:{incident}"])
        state = book.incidents.get(incident)
        return state.actions[action].owner if state is not None and action in state.actions else "ngo"
    return "monitor"


def play_random(judge: Judge, ops: list[tuple[str, int, int, int, str]]) -> None:
    w = judge.world
    for kind, which, action_index, actor_index, twist in ops:
        incident = f"INC-{which}"
        stream = f"incident:{incident}"
        action = f"A{action_index}"
        actor = ORGS[actor_index] if actor_index < len(ORGS) else _plausible(judge, kind, incident, action)
        now = w.tick()
        options: dict[str, Any] = {"time": now}
        if twist == "stale":
            options["prev"] = None if kind != "report" else H1
        if twist == "early":
            options["time"] = now - timedelta(minutes=15)  # before the stream's last event, if it was the last
        if kind == "report":
            options.setdefault("prev", None)
            data = report_data(judge, category=["child_labour", "armed_groups", "environment"][action_index],
                               severity="high", worst_forms=True if action_index == 0 else None)
            if twist == "odd":
                data = report_data(judge, worst_forms=False, site="trader",
                                   occurred_at=format_time(now + timedelta(days=1)))
            judge.attempt(actor, "incident_reported", stream, data, expect=any, **options)
        elif kind == "confirm":
            judge.attempt(actor, "incident_confirmed", stream, {"severity": "critical"} if twist == "odd" else {},
                          expect=any, **options)
        elif kind == "dismiss":
            judge.attempt(actor, "incident_dismissed", stream, {"reason": "r"}, expect=any, **options)
        elif kind == "close":
            judge.attempt(actor, "incident_closed", stream, {"resolution": "r"}, expect=any, **options)
        elif kind == "assign":
            owner = ["ngo", "kalimbi", "customs"][action_index] if twist != "odd" else "ghost"
            cycle = month(now, -1 if twist == "early" else action_index)
            judge.attempt(actor, "action_assigned", stream,
                          {"action": action, "owner": owner, "description": "d", "cycle": cycle}, expect=any, **options)
        elif kind == "progress":
            judge.attempt(actor, "action_progress", stream, {"action": action, "note": "n", "percent": 50},
                          expect=any, **options)
        elif kind == "verify":
            outcome = "not_implemented" if twist == "odd" else "implemented"
            judge.attempt(actor, "action_verified", stream, {"action": action, "outcome": outcome},
                          expect=any, **options)
        elif kind == "monitor":
            site = ["kalimbi", "mine2", "trader"][which] if twist != "odd" else "nowhere"
            judge.attempt(actor, "site_monitored", f"site:{site}", {"period": month(now)}, expect=any, **options)
        elif kind == "scan":
            tag = ["KAL-000001", "KAL-000002", "KAL-000404"][which] if twist != "odd" else "LOT-0001"
            judge.attempt(actor, "tag_scanned", f"tag:{tag}", {"gps": GPS}, expect=any, **options)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_risk_operations_get_the_same_verdict(ops: list[tuple[str, int, int, int, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = risk_world(f"sqlite:///{tmp}/ledger.db", tags=2)
        try:
            judge = Judge(world)
            world.clients["kalimbi"].attach("KAL-000001", mineral="tin", mass_g=40_000, pit="P3", time=world.tick())
            judge.attempt("monitor", "incident_reported", "incident:INC-0", report_data(judge), prev=None)
            now = world.tick()
            judge.attempt("itsci", "action_assigned", "incident:INC-0",
                          {"action": "A0", "owner": "ngo", "description": "d", "cycle": month(now)}, time=now)
            play_random(judge, ops)
            entries = judge.entries()
            projection = CustodyProjection(world.ledger.store)
            projection.catch_up()
            replayed = replay_sequential(entries)
            assert replayed.digest == projection.digest()
            risk = replayed.replayer.risk
            book = world.ledger.risk_book([f"incident:INC-{i}" for i in range(2)])
            assert {i: s.status for i, s in risk.incidents.items()} == {i: s.status for i, s in book.incidents.items()}
        finally:
            world.ledger.close()


# --- last: scans of finished tags -------------------------------------------------------------------------


def test_a_finished_tag_can_still_be_scanned(world: World) -> None:
    """Section 6: `tag_scanned` is accepted whatever the tag's status, including consumed, voided, merged and
    split tags (evidence of reuse); section 10.2: it moves only the head, `last_time` and `events`. Nothing
    else can follow a finished tag: a scan revives nothing."""
    judge = Judge(world)
    c = world.clients
    for tag in ("KAL-000001", "KAL-000002", "KAL-000003", "KAL-000004"):
        c["kalimbi"].attach(tag, mineral="tin", mass_g=40_000, pit="P3", time=world.tick())
    c["kalimbi"].void("KAL-000004", "stolen", time=world.tick())
    for tag in ("KAL-000001", "KAL-000002", "KAL-000003"):
        c["kalimbi"].dispatch(tag, "depot", time=world.tick())
        c["depot"].receive(tag, mass_g=40_000, time=world.tick())
    c["depot"].merge("LOT-0001", ["KAL-000001", "KAL-000002"], mass_g=80_000, time=world.tick())
    c["depot"].split("LOT-0001", {"LOT-0002": 50_000, "LOT-0003": 30_000}, time=world.tick())
    c["depot"].dispatch("KAL-000003", "refiner", time=world.tick())
    c["refiner"].receive("KAL-000003", mass_g=40_000, time=world.tick())
    c["refiner"].consume("KAL-000003", time=world.tick())
    finished = {"KAL-000001": "merged", "LOT-0001": "split", "KAL-000003": "consumed", "KAL-000004": "voided"}
    before = {tag: replay_sequential(judge.entries()).state(tag).to_json() for tag in finished}

    for tag, scanner in zip(finished, ("customs", "ngo", "monitor", "trader")):
        judge.attempt(scanner, "tag_scanned", f"tag:{tag}", {"gps": GPS, "purpose": "inspection"})
    judge.attempt("customs", "tag_scanned", "tag:KAL-000003", {"gps": GPS, "location": "Kigali"})  # again
    judge.refused("tag.finished", "/body/stream", "refiner", "tag_consumed", "tag:KAL-000003", {})
    judge.refused("tag.finished", "/body/stream", "kalimbi", "tag_voided", "tag:KAL-000004", {"reason": "lost"})
    judge.refused("stream.conflict", "/body/prev", "customs", "tag_scanned", "tag:KAL-000003", {"gps": GPS},
                  prev=before["KAL-000003"]["head"]["hash"])  # the head moved with the scans

    entries = judge.entries()
    replayed = replay_sequential(entries)
    for tag, status in finished.items():
        after = replayed.state(tag).to_json()
        scans = 2 if tag == "KAL-000003" else 1
        assert after["status"] == status
        assert after["events"] == before[tag]["events"] + scans
        assert {k for k in after if after[k] != before[tag][k]} == {"events", "head", "last_time"}
        assert body_type(entries[after["head"]["seq"]]) == "tag_scanned"
    projection = CustodyProjection(world.ledger.store)
    projection.catch_up()
    assert list(replayed.rows()) == projection.rows()
    assert replayed.digest == projection.digest()
    multi = replay_entries(entries, workers=2, chunk_size=5, mp_context="fork")
    assert multi.digest == replayed.digest
