"""domain.rules.check on the risk and remediation events: every rule of docs/protocol.md section 7, "Risk and
remediation", its JSON Pointer, and the order in which they are checked.

Pure: bodies are admitted by `RiskWorld` (tests/unit/domain_world.World plus a `domain.risk.RiskBook`) exactly as
the ledger writer admits them (check with the incident's folded state, then fold). No database, no signatures.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from domain.errors import RuleViolation
from domain.registry import StreamHead
from domain.risk import RiskBook
from domain.roles import ALLOWED_ROLES, RISK_EVENT_TYPES, Role
from domain.rules import Admitted, check
from domain_world import START, World, ts
from verification.encoding import parse_time

H = "d" * 64  # a details commitment
PHOTO = {"sha256": "1" * 64, "media_type": "image/jpeg"}


class RiskWorld(World):
    """`World` that also folds the incidents and site records, and hands them to `check` as the writer does."""

    def __init__(self, **kwargs: Any) -> None:
        self.book = RiskBook()
        super().__init__(**kwargs)

    def admit(self, body: dict[str, Any], *, now: datetime | None = None) -> Admitted:
        return check(body, registry=self.registry, tags=self.tags, now=now or self.now, risk=self.book)

    def record(self, body: dict[str, Any], *, now: datetime | None = None) -> str:
        envelope_hash = super().record(body, now=now)
        self.book.apply(body, envelope_hash, self.seq - 1)
        return envelope_hash

    def head(self, stream: str) -> StreamHead | None:
        if stream.startswith(("incident:", "site:")):
            return self.book.head_of(stream)
        return super().head(stream)

    # -- builders ---------------------------------------------------------------------------------

    def report(self, incident: str = "INC-1", *, actor: str = "monitor", **data: Any) -> dict[str, Any]:
        payload = {"site": "site-a", "category": "health_safety", "severity": "medium",
                   "occurred_at": ts(self.clock), "details": {"sha256": H}}
        payload.update(data)
        return self.event("incident_reported", f"incident:{incident}", payload, actor=actor,
                          **self._fields(payload))

    def _fields(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {k: payload.pop(k) for k in ("time", "prev", "key") if k in payload}

    def on(self, kind: str, incident: str = "INC-1", *, actor: str, **data: Any) -> dict[str, Any]:
        fields = self._fields(data)
        return self.event(kind, f"incident:{incident}", data, actor=actor, **fields)

    def confirm(self, incident: str = "INC-1", **data: Any) -> dict[str, Any]:
        return self.on("incident_confirmed", incident, actor=data.pop("actor", "monitor"), **data)

    def dismiss(self, incident: str = "INC-1", actor: str = "monitor") -> dict[str, Any]:
        return self.on("incident_dismissed", incident, actor=actor, reason="not confirmed on site")

    def close(self, incident: str = "INC-1", actor: str = "monitor") -> dict[str, Any]:
        return self.on("incident_closed", incident, actor=actor, resolution="remediated")

    def assign(self, action: str = "A1", incident: str = "INC-1", *, owner: str = "coop", cycle: str | None = None,
               actor: str = "operator", **fields: Any) -> dict[str, Any]:
        month = cycle or f"{self.clock.year:04d}-{self.clock.month:02d}"
        return self.on("action_assigned", incident, actor=actor, action=action, owner=owner,
                       description="do it", cycle=month, **fields)

    def progress(self, action: str = "A1", incident: str = "INC-1", *, actor: str = "coop",
                 **data: Any) -> dict[str, Any]:
        return self.on("action_progress", incident, actor=actor, action=action, note="working on it", **data)

    def verify(self, action: str = "A1", incident: str = "INC-1", outcome: str = "implemented",
               actor: str = "monitor") -> dict[str, Any]:
        return self.on("action_verified", incident, actor=actor, action=action, outcome=outcome)

    def monitored(self, site: str = "site-a", *, actor: str = "monitor", **data: Any) -> dict[str, Any]:
        payload = {"period": f"{self.clock.year:04d}-{self.clock.month:02d}", **data}
        return self.event("site_monitored", f"site:{site}", payload, actor=actor, **self._fields(payload))


def expect(violation: RuleViolation, rule: str, field: str) -> None:
    assert (violation.rule, violation.field) == (rule, field), str(violation)


@pytest.fixture
def w() -> RiskWorld:
    world = RiskWorld().cast()
    world.add_org("ngo", Role.PARTNER)
    world.add_org("customs", Role.AUTHORITY)
    return world


def reported(w: RiskWorld, incident: str = "INC-1", **data: Any) -> RiskWorld:
    w.record(w.report(incident, **data))
    return w


def confirmed(w: RiskWorld, incident: str = "INC-1") -> RiskWorld:
    reported(w, incident)
    w.record(w.confirm(incident))
    return w


# --- the positive path -----------------------------------------------------------------------------------


def test_a_whole_incident_lifecycle_is_accepted(w: RiskWorld) -> None:
    w.record(w.report(category="child_labour", worst_forms=True, severity="high", summary="minors at pit 3",
                      people_affected=3, referred_to="ngo", evidence=[PHOTO]))
    w.record(w.confirm(severity="critical", note="seen again", evidence=[{**PHOTO, "sha256": "2" * 64}]))
    w.record(w.assign("A1", owner="coop"))
    w.record(w.assign("A2", owner="ngo"))  # any registered organisation may own an action
    w.record(w.progress("A1", percent=40, evidence=[PHOTO]))
    w.record(w.verify("A1", outcome="not_implemented"))
    w.record(w.progress("A1", percent=100))  # still open after a negative verification
    w.record(w.verify("A1"))
    w.record(w.progress("A2", actor="ngo"))
    w.record(w.verify("A2"))
    w.record(w.close(actor="operator"))
    w.record(w.monitored(price_paid={"currency": "USD", "minor_per_kg": 900}, workforce={"women": 1, "men": 2},
                         concerns=["price", "water"], minors_observed=0))
    w.record(w.monitored())  # a second record of the same month is accepted
    state = w.book.incidents["INC-1"]
    assert state.status == "closed" and state.severity == "critical" and state.remediated
    assert [(a.action, a.status, a.reports, a.progress) for a in state.actions.values()] == [
        ("A1", "implemented", 2, 100), ("A2", "implemented", 1, None)]
    assert len(w.book.visits["site-a"]) == 2


@pytest.mark.parametrize("who", ["monitor", "operator"])
def test_a_reported_incident_may_be_dismissed_by_a_monitor_or_the_operator(w: RiskWorld, who: str) -> None:
    reported(w)
    w.record(w.dismiss(actor=who))
    assert w.book.incidents["INC-1"].status == "dismissed"


# --- streams and roles --------------------------------------------------------------------------------


def test_an_incident_id_is_used_once(w: RiskWorld) -> None:
    reported(w)
    expect(w.reject(w.report("INC-1", prev=None)), "stream.conflict", "/body/prev")


def test_an_event_on_an_unreported_incident_is_stream_unknown(w: RiskWorld) -> None:
    expect(w.reject(w.confirm("INC-404")), "stream.unknown", "/body/stream")


def test_a_site_stream_exists_only_for_a_registered_site(w: RiskWorld) -> None:
    expect(w.reject(w.monitored("coop")), "stream.unknown", "/body/stream")
    expect(w.reject(w.monitored("nowhere")), "stream.unknown", "/body/stream")
    expect(w.reject(w.monitored(prev="e" * 64)), "stream.conflict", "/body/prev")  # empty: its head is null
    w.record(w.monitored())
    expect(w.reject(w.monitored(prev=None)), "stream.conflict", "/body/prev")


@pytest.mark.parametrize("kind", sorted(RISK_EVENT_TYPES))
def test_actor_role(w: RiskWorld, kind: str) -> None:
    confirmed(w)
    w.record(w.assign("A1", owner="refiner"))
    build = {
        "incident_reported": lambda actor: w.report("INC-2", actor=actor),
        "incident_confirmed": lambda actor: w.confirm("INC-1", actor=actor),
        "incident_dismissed": lambda actor: w.dismiss(actor=actor),
        "incident_closed": lambda actor: w.close(actor=actor),
        "action_assigned": lambda actor: w.assign("A9", actor=actor),
        "action_progress": lambda actor: w.progress("A1", actor=actor),
        "action_verified": lambda actor: w.verify("A1", actor=actor),
        "site_monitored": lambda actor: w.monitored(actor=actor),
    }[kind]
    allowed = ALLOWED_ROLES[kind]
    for org, role in (("operator", Role.OPERATOR), ("monitor", Role.MONITOR), ("refiner", Role.REFINER),
                      ("auditor", Role.AUDITOR), ("site-a", Role.SITE), ("ngo", Role.PARTNER)):
        if role not in allowed:
            expect(w.reject(build(org)), "actor.role", "/body/actor")
    assert allowed == {"incident_reported": {Role.MONITOR}, "incident_confirmed": {Role.MONITOR},
                       "incident_dismissed": {Role.MONITOR, Role.OPERATOR},
                       "incident_closed": {Role.MONITOR, Role.OPERATOR}, "action_assigned": {Role.OPERATOR},
                       "action_progress": set(Role), "action_verified": {Role.MONITOR},
                       "site_monitored": {Role.MONITOR}}[kind]


def test_time_before_the_previous_event_of_the_incident(w: RiskWorld) -> None:
    reported(w)
    expect(w.reject(w.confirm(time=w.at(seconds=-1))), "time.before_previous", "/body/time")


# --- incident_reported ---------------------------------------------------------------------------------


def test_site_invalid(w: RiskWorld) -> None:
    expect(w.reject(w.report(site="coop")), "site.invalid", "/body/data/site")
    expect(w.reject(w.report(site="nowhere")), "site.invalid", "/body/data/site")


def test_referred_to_must_be_registered(w: RiskWorld) -> None:
    expect(w.reject(w.report(referred_to="no-such-ngo")), "stream.unknown", "/body/data/referred_to")
    w.record(w.report(referred_to="customs"))  # any registered organisation


def test_occurred_at_after_the_report_is_malformed(w: RiskWorld) -> None:
    body = w.report()
    body["data"]["occurred_at"] = ts(parse_time(body["time"]) + timedelta(microseconds=1))
    expect(w.reject(body), "envelope.malformed", "/body/data/occurred_at")
    body["data"]["occurred_at"] = body["time"]  # at the same instant: accepted
    w.record(body)


@pytest.mark.parametrize("impossible", ["2026-02-30T10:00:00Z", "0000-01-01T00:00:00Z", "2026-01-01T24:00:00Z",
                                        "2026-01-01T10:00:60Z"])
def test_an_impossible_occurred_at_is_malformed(w: RiskWorld, impossible: str) -> None:
    """It has the shape of a protocol time but names no instant: a 4xx naming the field, not a crash."""
    body = w.report()
    body["data"]["occurred_at"] = impossible
    expect(w.reject(body), "envelope.malformed", "/body/data/occurred_at")


@pytest.mark.parametrize("category", ["health_safety", "forced_labour", "armed_groups", "governance"])
def test_worst_forms_only_for_child_labour(w: RiskWorld, category: str) -> None:
    expect(w.reject(w.report(category=category, worst_forms=False)), "envelope.malformed", "/body/data/worst_forms")


def test_repeated_evidence_is_malformed(w: RiskWorld) -> None:
    expect(w.reject(w.report(evidence=[PHOTO, {**PHOTO, "name": "again"}])), "envelope.malformed",
           "/body/data/evidence")
    reported(w)
    expect(w.reject(w.progress("A1", evidence=[PHOTO, PHOTO])), "envelope.malformed", "/body/data/evidence")


def test_incident_reported_order(w: RiskWorld) -> None:
    """worst_forms, then occurred_at, then site.invalid, then referred_to."""
    late = ts(w.clock + timedelta(days=30))
    bad = dict(site="coop", referred_to="nobody")
    expect(w.reject(w.report(category="governance", worst_forms=True, occurred_at=late, **bad)),
           "envelope.malformed", "/body/data/worst_forms")
    expect(w.reject(w.report(occurred_at=late, **bad)), "envelope.malformed", "/body/data/occurred_at")
    expect(w.reject(w.report(**bad)), "site.invalid", "/body/data/site")


# --- the incident's status --------------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["dismissed", "closed"])
def test_incident_finished(w: RiskWorld, end: str) -> None:
    if end == "dismissed":
        reported(w)
        w.record(w.dismiss())
    else:
        confirmed(w)
        w.record(w.close())
    for body in (w.confirm(), w.dismiss(), w.close(), w.assign("A1"), w.progress("A1"), w.verify("A1")):
        expect(w.reject(body), "incident.finished", "/body/stream")
    w.record(w.monitored())  # the site's record goes on


def test_incident_not_reported(w: RiskWorld) -> None:
    confirmed(w)
    expect(w.reject(w.confirm()), "incident.not_reported", "/body/stream")
    expect(w.reject(w.dismiss()), "incident.not_reported", "/body/stream")


def test_incident_not_confirmed(w: RiskWorld) -> None:
    reported(w)
    expect(w.reject(w.close()), "incident.not_confirmed", "/body/stream")


def test_incident_actions_open(w: RiskWorld) -> None:
    confirmed(w)
    w.record(w.assign("A1"))
    w.record(w.assign("A2"))
    w.record(w.verify("A1"))
    expect(w.reject(w.close()), "incident.actions_open", "/body/stream")
    w.record(w.verify("A2", outcome="not_implemented"))
    expect(w.reject(w.close()), "incident.actions_open", "/body/stream")
    w.record(w.verify("A2"))
    w.record(w.close())


def test_incident_closed_order(w: RiskWorld) -> None:
    """not_confirmed before actions_open."""
    reported(w)
    w.record(w.assign("A1"))
    expect(w.reject(w.close()), "incident.not_confirmed", "/body/stream")


# --- actions --------------------------------------------------------------------------------------------


def test_action_owner_must_be_registered(w: RiskWorld) -> None:
    reported(w)
    expect(w.reject(w.assign(owner="ghost")), "stream.unknown", "/body/data/owner")


def test_action_duplicate(w: RiskWorld) -> None:
    reported(w)
    w.record(w.assign("A1"))
    expect(w.reject(w.assign("A1", owner="trader")), "action.duplicate", "/body/data/action")
    reported(w, "INC-2")
    w.record(w.assign("A1", "INC-2"))  # action ids are per incident


def test_action_cycle(w: RiskWorld) -> None:
    reported(w)
    month = f"{w.clock.year:04d}-{w.clock.month:02d}"  # 2026-01
    assert month == "2026-01"
    expect(w.reject(w.assign(cycle="2025-12")), "action.cycle", "/body/data/cycle")
    w.record(w.assign("A1", cycle=month))  # due at the end of this month
    w.record(w.assign("A2", cycle="2027-06"))
    # the last instant of January: January is still allowed; the first of February: it is not
    expect(w.reject(w.assign("A3", cycle="2026-01", time="2026-02-01T00:00:00Z")), "action.cycle", "/body/data/cycle")
    w.record(w.assign("A3", cycle="2026-01", time="2026-01-31T23:59:59.999999Z"))


def test_action_assigned_order(w: RiskWorld) -> None:
    """owner (stream.unknown), then action.duplicate, then action.cycle."""
    reported(w)
    w.record(w.assign("A1"))
    expect(w.reject(w.assign("A1", owner="ghost", cycle="2020-01")), "stream.unknown", "/body/data/owner")
    expect(w.reject(w.assign("A1", cycle="2020-01")), "action.duplicate", "/body/data/action")


def test_action_unknown(w: RiskWorld) -> None:
    reported(w)
    w.record(w.assign("A1"))
    expect(w.reject(w.progress("A2")), "action.unknown", "/body/data/action")
    expect(w.reject(w.verify("A2")), "action.unknown", "/body/data/action")


def test_action_done(w: RiskWorld) -> None:
    reported(w)
    w.record(w.assign("A1"))
    w.record(w.verify("A1"))
    expect(w.reject(w.progress("A1")), "action.done", "/body/data/action")
    expect(w.reject(w.verify("A1")), "action.done", "/body/data/action")
    expect(w.reject(w.verify("A1", outcome="not_implemented")), "action.done", "/body/data/action")


def test_action_not_owner(w: RiskWorld) -> None:
    reported(w)
    w.record(w.assign("A1", owner="coop"))
    expect(w.reject(w.progress("A1", actor="trader")), "action.not_owner", "/body/actor")
    expect(w.reject(w.progress("A1", actor="operator")), "action.not_owner", "/body/actor")
    w.record(w.progress("A1", actor="coop"))


def test_action_progress_order(w: RiskWorld) -> None:
    """action.unknown, then action.done, then action.not_owner; incident.finished before all of them."""
    confirmed(w)
    w.record(w.assign("A1", owner="coop"))
    expect(w.reject(w.progress("A9", actor="trader")), "action.unknown", "/body/data/action")
    w.record(w.verify("A1"))
    expect(w.reject(w.progress("A1", actor="trader")), "action.done", "/body/data/action")
    w.record(w.close())
    expect(w.reject(w.progress("A9", actor="trader")), "incident.finished", "/body/stream")


def test_check_is_pure(w: RiskWorld) -> None:
    reported(w)
    w.record(w.assign("A1"))
    before = w.book.incidents["INC-1"].public_json(START)
    for body in (w.confirm(), w.progress("A1"), w.verify("A1"), w.assign("A2"), w.dismiss()):
        w.admit(body)
    assert w.book.incidents["INC-1"].public_json(START) == before


def test_the_key_must_be_valid_for_risk_events(w: RiskWorld) -> None:
    kid = w.kid("monitor")
    w.record(w.revoke_key("monitor", kid))
    expect(w.reject(w.report(key=kid)), "key.revoked", "/body/key")
    expect(w.reject(w.report(key="f" * 16)), "key.unknown", "/body/key")
