"""Incidents, corrective actions and site monitoring in a replay -- docs/protocol.md sections 3, 6, 7 and 16.

Two kinds of stream carry the risk events (section 6, "Risk and remediation"):

- ``incident:<id>`` -- created by ``incident_reported`` (``prev`` null), then ``incident_confirmed``,
  ``incident_dismissed``, ``incident_closed``, ``action_assigned``, ``action_progress``, ``action_verified``;
- ``site:<site org id>`` -- exists for every registered organisation of role ``site``, empty (its head is
  null) until its first ``site_monitored``.

:class:`RiskStreams` holds what the replay needs of them: each stream's head (for ``stream.conflict`` and
``time.before_previous``) and, per incident, its status and its actions (owner, implemented or not), folded
in log order (section 16.3). Its :meth:`~RiskStreams.check_event` applies the rules of section 7
"Risk and remediation", in the order that section gives:

1. on an existing incident: ``incident.finished`` -- the incident is ``dismissed`` or ``closed``;
2. ``incident_reported``: ``envelope.malformed`` -- ``worst_forms`` with a category other than
   ``child_labour`` (``/body/data/worst_forms``), then ``occurred_at`` after the body's ``time``
   (``/body/data/occurred_at``); ``site.invalid`` -- ``site`` is not a registered organisation of role
   ``site``; ``stream.unknown`` -- ``referred_to`` is not a registered organisation;
3. ``incident_confirmed``, ``incident_dismissed``: ``incident.not_reported`` -- the incident is not in status
   ``reported``;
4. ``incident_closed``: ``incident.not_confirmed``, then ``incident.actions_open`` -- an action is not verified
   ``implemented`` (both at ``/body/stream``);
5. ``action_assigned``: ``stream.unknown`` -- ``owner`` is not a registered organisation; ``action.duplicate``
   -- the incident has that action id already; ``action.cycle`` -- ``cycle`` is before the month (UTC) of the
   body's ``time``;
6. ``action_progress``: ``action.unknown``, ``action.done`` (the action was verified ``implemented``), then
   ``action.not_owner`` (``/body/actor``: only the action's ``owner`` reports progress);
7. ``action_verified``: ``action.unknown``, ``action.done``;
8. ``site_monitored``: no rule of its own (its stream exists: the site is registered, checked with the heads).

The roles that may record each risk event (rule ``actor.role``) are :data:`ALLOWED_ROLES`. The streams
themselves (``stream.unknown``, ``stream.conflict``) are checked by the replay with :meth:`RiskStreams.head`
and :func:`check_empty_site_stream`.

Memory: a few hundred bytes per incident and one head per monitored site; every incident is kept (a
finished one still has a head, and any later event on it is ``incident.finished``).
"""

from __future__ import annotations

from collections.abc import Callable

from verification.entry_checks import CheckedEntry, normalize_time
from verification.event_data import INCIDENT_EVENT_TYPES, ROLES, SITE_EVENT_TYPES
from verification.registry_replay import Head
from verification.replay_errors import RuleBroken

__all__ = [
    "ALLOWED_ROLES",
    "CREATING_TYPES",
    "RISK_STREAM_PREFIXES",
    "ActionRecord",
    "IncidentRecord",
    "RiskStreams",
    "check_empty_site_stream",
]

RISK_STREAM_PREFIXES = ("incident:", "site:")
"""The kinds of stream the risk events are written to."""

CREATING_TYPES = frozenset({"org_registered", "incident_reported"})
"""Event types that start their stream: on an existing one they are ``stream.conflict`` (section 7)."""

_MONITOR = frozenset({"monitor"})
_OPERATOR = frozenset({"operator"})
ALLOWED_ROLES: dict[str, frozenset[str]] = {
    "incident_reported": _MONITOR,
    "incident_confirmed": _MONITOR,
    "incident_dismissed": _MONITOR | _OPERATOR,
    "incident_closed": _MONITOR | _OPERATOR,
    "action_assigned": _OPERATOR,
    "action_progress": ROLES,  # any role: whether the actor owns the action is rule action.not_owner
    "action_verified": _MONITOR,
    "site_monitored": _MONITOR,
}
"""Rule ``actor.role`` for the risk events: section 6's table, "actor (role)"."""

REPORTED = "reported"
CONFIRMED = "confirmed"
DISMISSED = "dismissed"
CLOSED = "closed"
FINISHED = frozenset({DISMISSED, CLOSED})
OPEN = "open"
IMPLEMENTED = "implemented"

RoleOf = Callable[[str], "str | None"]


class ActionRecord:
    """A corrective action of an incident (section 16.3): who owns it, and whether it was verified done."""

    __slots__ = ("action", "owner", "cycle", "status", "reports", "progress", "last_verification")

    def __init__(self, action: str, owner: str, cycle: str) -> None:
        self.action = action
        self.owner = owner
        self.cycle = cycle
        self.status = OPEN  # or IMPLEMENTED, after action_verified with outcome implemented
        self.reports = 0
        self.progress: int | None = None
        self.last_verification: str | None = None

    def __repr__(self) -> str:
        return f"ActionRecord({self.action!r}, owner={self.owner!r}, status={self.status!r})"


class IncidentRecord:
    """An incident folded from its stream (section 16.3): status, current severity, actions, head."""

    __slots__ = ("incident", "site", "category", "severity", "status", "head", "actions")

    def __init__(self, incident: str, site: str, category: str, severity: str, head: Head) -> None:
        self.incident = incident
        self.site = site
        self.category = category
        self.severity = severity
        self.status = REPORTED
        self.head = head
        self.actions: dict[str, ActionRecord] = {}  # in assignment order

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def __repr__(self) -> str:
        return f"IncidentRecord({self.incident!r}, {self.status!r}, actions={list(self.actions)})"


def check_empty_site_stream(stream: str, declared: bytes | None, pointer: str, role_of: RoleOf) -> None:
    """Section 7: ``site:<id>`` exists when ``<id>`` is a registered organisation of role ``site``, with a
    null head until its first event. For such a stream with no event yet: ``stream.unknown`` if ``<id>`` is
    not a registered site, ``stream.conflict`` if the event names a previous event."""
    site = stream[len("site:"):]
    if role_of(site) != "site":
        raise RuleBroken("stream.unknown", "/body/stream", f"{stream}: {site} is not a registered mine site")
    if declared is not None:
        raise RuleBroken("stream.conflict", pointer, f"{stream} has no event yet, but the event names "
                         f"{declared.hex()} as the previous one")


class RiskStreams:
    """The ``incident:`` and ``site:`` streams of the log so far (see the module docstring)."""

    def __init__(self) -> None:
        self.incidents: dict[str, IncidentRecord] = {}
        self.site_heads: dict[str, Head] = {}

    # -- streams ----------------------------------------------------------------------------------------

    def head(self, stream: str) -> Head | None:
        """The last event of ``incident:<id>`` or ``site:<id>``; None if the stream has no event."""
        if stream.startswith("incident:"):
            incident = self.incidents.get(stream[len("incident:"):])
            return None if incident is None else incident.head
        return self.site_heads.get(stream[len("site:"):])

    # -- the rules (section 7, "Risk and remediation") ---------------------------------------------------

    def check_event(self, entry: CheckedEntry, role_of: RoleOf) -> None:
        """Raise :class:`RuleBroken` if the risk event ``entry``, past the generic checks (its streams
        exist, heads and time are right), breaks a rule of its type (the module docstring's order)."""
        kind = entry.type
        if kind == "incident_reported":
            _incident_reported(entry, role_of)
            return
        if kind in SITE_EVENT_TYPES:
            return
        incident = self.incidents[entry.stream[len("incident:"):]]
        if incident.finished:
            raise RuleBroken("incident.finished", "/body/stream", f"{incident.incident} is {incident.status}")
        _INCIDENT_RULES[kind](entry, incident, role_of)

    # -- folding (section 16.3) --------------------------------------------------------------------------

    def apply(self, entry: CheckedEntry, seq: int) -> None:
        """Fold an accepted event (other than a risk event: nothing to do)."""
        kind = entry.type
        head = Head(entry.hash, seq, entry.time)
        data = entry.data
        if kind in SITE_EVENT_TYPES:
            self.site_heads[entry.stream[len("site:"):]] = head
            return
        if kind not in INCIDENT_EVENT_TYPES:
            return
        incident_id = entry.stream[len("incident:"):]
        if kind == "incident_reported":
            self.incidents[incident_id] = IncidentRecord(incident_id, data["site"], data["category"],
                                                         data["severity"], head)
            return
        incident = self.incidents[incident_id]
        incident.head = head
        if kind == "incident_confirmed":
            incident.status = CONFIRMED
            if data.get("severity") is not None:
                incident.severity = data["severity"]
        elif kind == "incident_dismissed":
            incident.status = DISMISSED
        elif kind == "incident_closed":
            incident.status = CLOSED
        elif kind == "action_assigned":
            incident.actions[data["action"]] = ActionRecord(data["action"], data["owner"], data["cycle"])
        elif kind == "action_progress":
            action = incident.actions[data["action"]]
            action.reports += 1
            if data.get("percent") is not None:
                action.progress = data["percent"]
        elif kind == "action_verified":
            action = incident.actions[data["action"]]
            action.last_verification = data["outcome"]
            if data["outcome"] == IMPLEMENTED:
                action.status = IMPLEMENTED


# --- the rules of each incident event type ------------------------------------------------------------


def _incident_reported(entry: CheckedEntry, role_of: RoleOf) -> None:
    data = entry.data
    if data.get("worst_forms") is not None and data["category"] != "child_labour":
        raise RuleBroken("envelope.malformed", "/body/data/worst_forms", "worst_forms is for child_labour only")
    if normalize_time(data["occurred_at"]) > entry.time:  # normalised times: string order is instant order
        raise RuleBroken("envelope.malformed", "/body/data/occurred_at",
                         "the incident is reported as occurring after the event's time")
    if role_of(data["site"]) != "site":
        raise RuleBroken("site.invalid", "/body/data/site", f"{data['site']} is not a registered mine site")
    referred_to = data.get("referred_to")
    if referred_to is not None and role_of(referred_to) is None:
        raise RuleBroken("stream.unknown", "/body/data/referred_to", f"no organisation {referred_to!r}")


def _confirmed_or_dismissed(entry: CheckedEntry, incident: IncidentRecord, role_of: RoleOf) -> None:
    if incident.status != REPORTED:
        raise RuleBroken("incident.not_reported", "/body/stream", f"{incident.incident} is {incident.status}")


def _closed(entry: CheckedEntry, incident: IncidentRecord, role_of: RoleOf) -> None:
    if incident.status != CONFIRMED:
        raise RuleBroken("incident.not_confirmed", "/body/stream", f"{incident.incident} is {incident.status}")
    pending = [a.action for a in incident.actions.values() if a.status != IMPLEMENTED]
    if pending:
        raise RuleBroken("incident.actions_open", "/body/stream",
                         f"actions not verified implemented: {', '.join(pending)}")


def _action_assigned(entry: CheckedEntry, incident: IncidentRecord, role_of: RoleOf) -> None:
    data = entry.data
    if role_of(data["owner"]) is None:
        raise RuleBroken("stream.unknown", "/body/data/owner", f"no organisation {data['owner']!r}")
    if data["action"] in incident.actions:
        raise RuleBroken("action.duplicate", "/body/data/action",
                         f"{incident.incident} already has an action {data['action']}")
    if data["cycle"] < entry.time[:7]:  # YYYY-MM of the (UTC) time; both compare as strings
        raise RuleBroken("action.cycle", "/body/data/cycle",
                         f"cycle {data['cycle']} is before the month of the event ({entry.time[:7]})")


def _open_action(entry: CheckedEntry, incident: IncidentRecord) -> ActionRecord:
    action_id = entry.data["action"]
    action = incident.actions.get(action_id)
    if action is None:
        raise RuleBroken("action.unknown", "/body/data/action", f"{incident.incident} has no action {action_id}")
    if action.status == IMPLEMENTED:
        raise RuleBroken("action.done", "/body/data/action", f"{action_id} was verified implemented already")
    return action


def _action_progress(entry: CheckedEntry, incident: IncidentRecord, role_of: RoleOf) -> None:
    action = _open_action(entry, incident)
    if entry.actor != action.owner:
        raise RuleBroken("action.not_owner", "/body/actor", f"{action.action} is owned by {action.owner}")


def _action_verified(entry: CheckedEntry, incident: IncidentRecord, role_of: RoleOf) -> None:
    _open_action(entry, incident)


_INCIDENT_RULES: dict[str, Callable[[CheckedEntry, IncidentRecord, RoleOf], None]] = {
    "incident_confirmed": _confirmed_or_dismissed,
    "incident_dismissed": _confirmed_or_dismissed,
    "incident_closed": _closed,
    "action_assigned": _action_assigned,
    "action_progress": _action_progress,
    "action_verified": _action_verified,
}
