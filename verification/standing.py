"""Standing: whose word counts as evidence that a finished tag is in use again -- docs/protocol.md 9.1.

A refused attempt on a finished tag, or a signed scan of it, is evidence of reuse only from an organisation that
could hold the physical tag or whose office is to inspect tags. The **custody parties** of a tag are the
organisations its stream's custody events name: the actor of every attachment, dispatch, receipt, merge, split,
consumption and voiding, and the recipient every dispatch names. An organisation has standing on a tag if it is
one of them (``"custody"``), or else if its registered role is ``authority`` or ``monitor`` (``"office"``).

An auditor's own statement of the rule (the ledger has its own, in ``domain.flags``; tests compare the two).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["CUSTODY_TYPES", "OFFICE_ROLES", "parties_named", "standing"]

CUSTODY_TYPES = frozenset({"tag_attached", "custody_dispatched", "custody_received", "lot_formed", "lot_split",
                           "tag_consumed", "tag_voided"})
"""The events that make their actor a custody party of every tag whose stream they join."""

OFFICE_ROLES = frozenset({"authority", "monitor"})
"""Roles with standing on every tag: public bodies and the programme's field monitors inspect tags by office."""


def parties_named(event_type: str, actor: str, data: Mapping[str, Any]) -> tuple[str, ...]:
    """The custody parties an event makes of its actor (and of a dispatch's recipient)."""
    if event_type not in CUSTODY_TYPES:
        return ()
    if event_type == "custody_dispatched":
        return (actor, data["to"])
    return (actor,)


def standing(actor: str, role: str | None, parties: Collection[str]) -> str | None:
    """``"custody"``, ``"office"`` or None (no standing)."""
    if actor in parties:
        return "custody"
    if role in OFFICE_ROLES:
        return "office"
    return None
