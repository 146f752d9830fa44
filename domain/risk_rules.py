"""The admission rules of the risk and remediation events (protocol section 7, "Risk and remediation").

Called by `domain.rules.check` after the generic rules (actor, key, role, stream heads, time), with the
incident's folded state from `domain.risk.RiskBook`. Each function raises `RuleViolation` or returns.
"""

from __future__ import annotations

from typing import Any

from domain.errors import RuleViolation
from domain.payloads import (
    ActionAssigned,
    ActionProgress,
    ActionVerified,
    IncidentReported,
    Strict,
)
from domain.registry import Registry
from domain.risk import IncidentState, RiskBook, month_of
from domain.roles import Role
from verification.encoding import parse_time


def check_risk_event(body: dict[str, Any], payload: Strict, registry: Registry, book: RiskBook) -> None:
    kind = body["type"]
    if kind == "incident_reported":
        _incident_reported(body, payload, registry)  # type: ignore[arg-type]
    elif kind == "site_monitored":
        return  # the stream's existence (a registered site) is all: checked with the heads
    else:
        incident = book.incidents[body["stream"].removeprefix("incident:")]
        if incident.finished:
            raise RuleViolation("incident.finished", "/body/stream", f"{incident.incident} is {incident.status}")
        _INCIDENT_RULES[kind](body, payload, registry, incident)


def _incident_reported(body: dict[str, Any], payload: IncidentReported, registry: Registry) -> None:
    if payload.worst_forms is not None and payload.category != "child_labour":
        raise RuleViolation("envelope.malformed", "/body/data/worst_forms", "worst_forms is for child_labour only")
    if parse_time(payload.occurred_at) > parse_time(body["time"]):
        raise RuleViolation("envelope.malformed", "/body/data/occurred_at", "an incident is reported after it occurred")
    if registry.role_of(payload.site) != Role.SITE:
        raise RuleViolation("site.invalid", "/body/data/site", f"{payload.site} is not a registered mine site")
    if payload.referred_to is not None and payload.referred_to not in registry.orgs:
        raise RuleViolation("stream.unknown", "/body/data/referred_to", "no such organisation")


def _confirmed_or_dismissed(body, payload, registry, incident: IncidentState) -> None:
    if incident.status != "reported":
        raise RuleViolation("incident.not_reported", "/body/stream", f"{incident.incident} is {incident.status}")


def _closed(body, payload, registry, incident: IncidentState) -> None:
    if incident.status != "confirmed":
        raise RuleViolation("incident.not_confirmed", "/body/stream", f"{incident.incident} is {incident.status}")
    pending = [a.action for a in incident.actions.values() if a.status != "implemented"]
    if pending:
        raise RuleViolation(
            "incident.actions_open", "/body/stream", f"actions not verified implemented: {', '.join(pending)}"
        )


def _action_assigned(body, payload: ActionAssigned, registry: Registry, incident: IncidentState) -> None:
    if payload.owner not in registry.orgs:
        raise RuleViolation("stream.unknown", "/body/data/owner", "no such organisation")
    if payload.action in incident.actions:
        raise RuleViolation("action.duplicate", "/body/data/action", f"{incident.incident} already has {payload.action}")
    if payload.cycle < month_of(parse_time(body["time"])):
        raise RuleViolation("action.cycle", "/body/data/cycle", "an action cannot be due in a month already past")


def _action_progress(body, payload: ActionProgress, registry, incident: IncidentState) -> None:
    action = _open_action(incident, payload.action)
    if body["actor"] != action.owner:
        raise RuleViolation("action.not_owner", "/body/actor", f"{payload.action} is owned by {action.owner}")


def _action_verified(body, payload: ActionVerified, registry, incident: IncidentState) -> None:
    _open_action(incident, payload.action)


def _open_action(incident: IncidentState, action_id: str):  # noqa: ANN202 - ActionState
    action = incident.actions.get(action_id)
    if action is None:
        raise RuleViolation("action.unknown", "/body/data/action", f"{incident.incident} has no action {action_id}")
    if action.status == "implemented":
        raise RuleViolation("action.done", "/body/data/action", f"{action_id} was verified implemented already")
    return action


_INCIDENT_RULES = {
    "incident_confirmed": _confirmed_or_dismissed,
    "incident_dismissed": _confirmed_or_dismissed,
    "incident_closed": _closed,
    "action_assigned": _action_assigned,
    "action_progress": _action_progress,
    "action_verified": _action_verified,
}
