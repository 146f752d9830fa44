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
    }
)
EVENT_TYPES = REGISTRY_EVENT_TYPES | TAG_EVENT_TYPES

_OPERATOR_ONLY = frozenset({Role.OPERATOR})

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
}
"""The roles whose members may act (sign) for each event type. Finer rules (holder, recipient) live in `rules`."""
