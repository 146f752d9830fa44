"""Who may read an incident's sealed details (docs/protocol.md section 16.4): pure rules, no I/O.

Everything signed is public; the sealed details (16.2) are shown only to an authorised reader: an
organisation of role operator, monitor or auditor; the incident's site; the owner of one of its actions; the
organisation it was referred to. How a reader proves who it is (a signed request) is `api.read_auth`.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.risk import IncidentState
from domain.roles import Role

EVERY_INCIDENT = frozenset({Role.OPERATOR, Role.MONITOR, Role.AUDITOR})
"""Roles that see every incident's sealed details (bound by the programme's confidentiality rules)."""


@dataclass(frozen=True)
class Reader:
    """An organisation that proved who it is by signing the request."""

    org: str
    role: Role


def sees_every_incident_of(reader: Reader | None, site: str) -> bool:
    """Whether `reader` may see the sealed details of every incident of `site`."""
    return reader is not None and (reader.role in EVERY_INCIDENT or reader.org == site)


def may_read_details(reader: Reader | None, incident: IncidentState) -> bool:
    """Whether `reader` is an authorised reader of `incident`'s sealed details (protocol 16.4)."""
    if reader is None:
        return False
    return (
        sees_every_incident_of(reader, incident.site)
        or reader.org == incident.referred_to
        or any(action.owner == reader.org for action in incident.actions.values())
    )
