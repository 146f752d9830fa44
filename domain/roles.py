"""Organisation roles, and which roles may record which event types (protocol section 6)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"
    SITE = "site"
    COOPERATIVE = "cooperative"
    TRADER = "trader"
    PROCESSOR = "processor"
    EXPORTER = "exporter"
    REFINER = "refiner"
    AUDITOR = "auditor"
    MONITOR = "monitor"
    AUTHORITY = "authority"
    PARTNER = "partner"


CUSTODY_ROLES: frozenset[Role] = frozenset(
    {Role.SITE, Role.COOPERATIVE, Role.TRADER, Role.PROCESSOR, Role.EXPORTER, Role.REFINER}
)
"""Roles that can hold a bag or a lot."""

REGISTRY_EVENT_TYPES = frozenset(
    {"ledger_created", "org_registered", "key_added", "key_revoked", "tags_issued"}
)
TAG_EVENT_TYPES = frozenset(
    {
        "tag_attached",
        "custody_dispatched",
        "custody_received",
        "lot_formed",
        "lot_split",
        "tag_consumed",
        "tag_voided",
        "tag_scanned",
    }
)
INCIDENT_EVENT_TYPES = frozenset(
    {
        "incident_reported",
        "incident_confirmed",
        "incident_dismissed",
        "incident_closed",
        "action_assigned",
        "action_progress",
        "action_verified",
    }
)
SITE_EVENT_TYPES = frozenset({"site_monitored"})
RISK_EVENT_TYPES = INCIDENT_EVENT_TYPES | SITE_EVENT_TYPES
EVENT_TYPES = REGISTRY_EVENT_TYPES | TAG_EVENT_TYPES | RISK_EVENT_TYPES

STREAM_KIND: dict[str, str] = {
    **{t: "org:" for t in REGISTRY_EVENT_TYPES},
    **{t: "tag:" for t in TAG_EVENT_TYPES},
    **{t: "incident:" for t in INCIDENT_EVENT_TYPES},
    **{t: "site:" for t in SITE_EVENT_TYPES},
}
"""The kind of primary stream each event type belongs to (`ledger_created` is checked on its own)."""

_OPERATOR_ONLY = frozenset({Role.OPERATOR})
_MONITOR = frozenset({Role.MONITOR})
_ANY_ROLE = frozenset(Role)

ALLOWED_ROLES: dict[str, frozenset[Role]] = {
    "ledger_created": _OPERATOR_ONLY,
    "org_registered": _OPERATOR_ONLY,
    "key_added": _OPERATOR_ONLY,
    "key_revoked": _OPERATOR_ONLY,
    "tags_issued": _OPERATOR_ONLY,
    "tag_attached": CUSTODY_ROLES,
    "custody_dispatched": CUSTODY_ROLES,
    "custody_received": CUSTODY_ROLES,
    "lot_formed": CUSTODY_ROLES,
    "lot_split": CUSTODY_ROLES,
    "tag_consumed": frozenset({Role.REFINER}),
    "tag_voided": CUSTODY_ROLES | _OPERATOR_ONLY,
    "tag_scanned": _ANY_ROLE,
    "incident_reported": _MONITOR,
    "incident_confirmed": _MONITOR,
    "incident_dismissed": _MONITOR | _OPERATOR_ONLY,
    "incident_closed": _MONITOR | _OPERATOR_ONLY,
    "action_assigned": _OPERATOR_ONLY,
    "action_progress": _ANY_ROLE,
    "action_verified": _MONITOR,
    "site_monitored": _MONITOR,
}
"""The roles whose members may act (sign) for each event type. Finer rules (holder, recipient) live in `rules`."""
