"""Incidents, corrective actions and site monitoring, folded from their events (protocol section 16).

`RiskBook.apply` folds a risk event (an `incident:` or `site:` stream event) into the state that the admission
rules (`domain.risk_rules`) and the risk views (`domain.site_risk`) read. It is pure: no clock, no I/O; the
time a view is made for ("overdue at T") is always passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from domain.registry import StreamHead
from domain.roles import INCIDENT_EVENT_TYPES, SITE_EVENT_TYPES
from verification.encoding import parse_time

# --- OECD Annex II (protocol 16.1) ----------------------------------------------------------------

ANNEX_II_PARAGRAPHS: dict[str, str] = {
    "serious_abuses": "1-2",
    "non_state_armed_groups": "3-4",
    "security_forces": "5-6",
    "bribery_misrepresentation": "7-8",
    "money_laundering": "9-10",
    "taxes_fees_royalties": "11-13",
}
"""Each Annex II risk code and the paragraphs of the OECD Guidance's Annex II that state it."""

_ANNEX_II_OF_CATEGORY: dict[str, tuple[str, ...]] = {
    "child_labour": (),  # the worst forms only: see annex_ii()
    "health_safety": (),
    "forced_labour": ("serious_abuses",),
    "armed_groups": ("non_state_armed_groups",),
    "security_forces": ("security_forces",),
    "chain_of_custody": ("bribery_misrepresentation",),
    "environment": (),
    "governance": ("bribery_misrepresentation", "money_laundering", "taxes_fees_royalties"),
}

DISENGAGE_RISKS = frozenset({"serious_abuses", "non_state_armed_groups"})
"""Annex II risks for which the Guidance calls for immediate suspension or disengagement: always a red flag."""

RED_FLAG_SEVERITIES = frozenset({"high", "critical"})


def annex_ii(category: str, worst_forms: bool | None) -> tuple[str, ...]:
    """The Annex II risks an incident of `category` concerns (protocol 16.1)."""
    if category == "child_labour" and worst_forms:
        return ("serious_abuses",)
    return _ANNEX_II_OF_CATEGORY[category]


def is_red_flag(severity: str, risks: tuple[str, ...]) -> bool:
    return severity in RED_FLAG_SEVERITIES or any(r in DISENGAGE_RISKS for r in risks)


def cycle_due(cycle: str) -> datetime:
    """An action of cycle `YYYY-MM` is due at the first instant of the next month (UTC)."""
    year, month = int(cycle[:4]), int(cycle[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc)


def month_of(when: datetime) -> str:
    return f"{when.year:04d}-{when.month:02d}"


# --- state ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRef:
    """One event of an incident or site stream, as the views list it."""

    seq: int
    hash: str
    type: str
    actor: str
    time: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "type": self.type, "actor": self.actor, "time": self.time}


@dataclass
class ActionState:
    action: str
    owner: str
    description: str
    cycle: str
    due: datetime
    assigned_seq: int
    status: str = "open"  # "implemented", or "cancelled" when its incident was dismissed
    progress: int | None = None
    reports: int = 0
    last_verification: str | None = None
    implemented_at: str | None = None
    cancelled_at: str | None = None

    def overdue_at(self, at: datetime) -> bool:
        return self.status == "open" and self.due <= at

    def implemented_by(self, at: datetime) -> bool:
        return self.implemented_at is not None and parse_time(self.implemented_at) <= at

    def settled_by(self, at: datetime) -> bool:
        """Implemented, or cancelled with its incident, at or before `at`."""
        done = self.implemented_at or self.cancelled_at
        return done is not None and parse_time(done) <= at

    def to_json(self, at: datetime) -> dict[str, Any]:
        return {
            "action": self.action,
            "owner": self.owner,
            "description": self.description,
            "cycle": self.cycle,
            "due": self.due.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": self.status,
            "overdue": self.overdue_at(at),
            "progress": self.progress,
            "reports": self.reports,
            "last_verification": self.last_verification,
            "implemented_at": self.implemented_at,
        }


@dataclass
class IncidentState:
    incident: str
    site: str
    reporter: str
    category: str
    severity: str
    worst_forms: bool | None
    occurred_at: str
    reported_at: str
    reported_seq: int
    details_sha256: str
    head: StreamHead
    summary: str | None = None
    people_affected: int | None = None
    referred_to: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """Every evidence file any event of the incident names (report, confirmation, progress, verification): its
    sha256 -> media type. Only these may be uploaded as sealed evidence (protocol 16.2)."""
    status: str = "reported"  # confirmed, dismissed, closed
    resolved_at: str | None = None
    actions: dict[str, ActionState] = field(default_factory=dict)
    events: list[EventRef] = field(default_factory=list)

    @property
    def annex_ii(self) -> tuple[str, ...]:
        return annex_ii(self.category, self.worst_forms)

    @property
    def red_flag(self) -> bool:
        return is_red_flag(self.severity, self.annex_ii)

    @property
    def is_open(self) -> bool:
        return self.status in ("reported", "confirmed")

    @property
    def finished(self) -> bool:
        return self.status in ("dismissed", "closed")

    def open_at(self, at: datetime) -> bool:
        """Was the risk present and unresolved at `at`? From when it occurred until it was resolved."""
        if parse_time(self.occurred_at) > at:
            return False
        return self.resolved_at is None or parse_time(self.resolved_at) > at

    @property
    def remediated(self) -> bool:
        """Closed, with every corrective action verified implemented."""
        return self.status == "closed" and all(a.status == "implemented" for a in self.actions.values())

    def public_json(self, at: datetime) -> dict[str, Any]:
        """Everything the signed events say (all of it is public in the log, section 16.4)."""
        return {
            "id": self.incident,
            "site": self.site,
            "reporter": self.reporter,
            "category": self.category,
            "worst_forms": self.worst_forms,
            "annex_ii": [{"risk": r, "paragraphs": ANNEX_II_PARAGRAPHS[r]} for r in self.annex_ii],
            "severity": self.severity,
            "red_flag": self.red_flag,
            "status": self.status,
            "remediated": self.remediated,
            "occurred_at": self.occurred_at,
            "reported_at": self.reported_at,
            "resolved_at": self.resolved_at,
            "summary": self.summary,
            "people_affected": self.people_affected,
            "referred_to": self.referred_to,
            "evidence": list(self.evidence),
            "details_sha256": self.details_sha256,
            "actions": [a.to_json(at) for a in self.actions.values()],
            "events": [e.to_json() for e in self.events],
        }


@dataclass(frozen=True)
class SiteVisit:
    """One `site_monitored` event: what the monitor saw and what the miners said, for a month."""

    site: str
    period: str
    data: dict[str, Any]
    ref: EventRef


@dataclass
class RiskBook:
    """The incidents and site monitoring records folded so far (all of them, or those a caller needs)."""

    incidents: dict[str, IncidentState] = field(default_factory=dict)
    site_heads: dict[str, StreamHead] = field(default_factory=dict)
    visits: dict[str, list[SiteVisit]] = field(default_factory=dict)

    def head_of(self, stream: str) -> StreamHead | None:
        if stream.startswith("incident:"):
            state = self.incidents.get(stream.removeprefix("incident:"))
            return state.head if state else None
        return self.site_heads.get(stream.removeprefix("site:"))

    def apply(self, body: dict[str, Any], envelope_hash: str, seq: int) -> None:
        """Fold one accepted event; events of other kinds are ignored."""
        kind = body["type"]
        if kind not in INCIDENT_EVENT_TYPES and kind not in SITE_EVENT_TYPES:
            return
        data = body["data"]
        head = StreamHead(envelope_hash, seq, parse_time(body["time"]))
        ref = EventRef(seq, envelope_hash, kind, body["actor"], body["time"])
        if kind == "site_monitored":
            site = body["stream"].removeprefix("site:")
            self.site_heads[site] = head
            self.visits.setdefault(site, []).append(SiteVisit(site, data["period"], dict(data), ref))
            return
        incident_id = body["stream"].removeprefix("incident:")
        if kind == "incident_reported":
            self.incidents[incident_id] = IncidentState(
                incident=incident_id,
                site=data["site"],
                reporter=body["actor"],
                category=data["category"],
                severity=data["severity"],
                worst_forms=data.get("worst_forms"),
                occurred_at=data["occurred_at"],
                reported_at=body["time"],
                reported_seq=seq,
                details_sha256=data["details"]["sha256"],
                head=head,
                summary=data.get("summary"),
                people_affected=data.get("people_affected"),
                referred_to=data.get("referred_to"),
                evidence=list(data.get("evidence") or []),
                files=_files(data),
                events=[ref],
            )
            return
        state = self.incidents.get(incident_id)
        if state is None:  # not among the incidents this book follows
            return
        state.head = head
        state.events.append(ref)
        for digest, media_type in _files(data).items():
            state.files.setdefault(digest, media_type)
        if kind == "incident_confirmed":
            state.status = "confirmed"
            if data.get("severity") is not None:
                state.severity = data["severity"]
            state.evidence.extend(data.get("evidence") or [])
        elif kind in ("incident_dismissed", "incident_closed"):
            state.status = "dismissed" if kind == "incident_dismissed" else "closed"
            state.resolved_at = body["time"]
            for action in state.actions.values():  # a dismissed incident needs no remedy: nothing left is due
                if action.status == "open":
                    action.status = "cancelled"
                    action.cancelled_at = body["time"]
        elif kind == "action_assigned":
            state.actions[data["action"]] = ActionState(
                action=data["action"],
                owner=data["owner"],
                description=data["description"],
                cycle=data["cycle"],
                due=cycle_due(data["cycle"]),
                assigned_seq=seq,
            )
        elif kind == "action_progress":
            action = state.actions[data["action"]]
            action.reports += 1
            if data.get("percent") is not None:
                action.progress = data["percent"]
        elif kind == "action_verified":
            action = state.actions[data["action"]]
            action.last_verification = data["outcome"]
            if data["outcome"] == "implemented":
                action.status = "implemented"
                action.implemented_at = body["time"]


def _files(data: dict[str, Any]) -> dict[str, str]:
    """The evidence files an event's data names: sha256 -> media type."""
    return {item["sha256"]: item["media_type"] for item in data.get("evidence") or []}
