"""What OECD Due Diligence Guidance Step 3 asks of a buyer, from the risk facts of a due-diligence report.

Pure: no clock, no I/O. The facts are the incidents that were open at some point while the ore was at their
site (protocol 16.6: the report's `risk.sites[].incidents`), in their public form; "now" is the time the report
was made for, already folded into each action's `overdue` (protocol 16.3).

The rule follows the OECD Due Diligence Guidance for Responsible Supply Chains of Minerals from
Conflict-Affected and High-Risk Areas (third edition, 2016):

- Annex II, paragraphs 2 and 4: where there is a reasonable risk of serious abuses (paragraph 1: among them the
  worst forms of child labour and forced labour) or of direct or indirect support to non-state armed groups
  (paragraph 3), the buyer immediately suspends or discontinues engagement with the upstream supplier. Here: an
  unresolved incident with one of these risks gives `suspend`; `disengage` when mitigation has been tried and
  failed (an action verified not implemented, or overdue).
- Step 3 (and Annex II, for the other Annex II risks: security forces, bribery and misrepresentation, money
  laundering, taxes): the buyer adopts a risk management plan and either continues trade throughout measurable
  risk mitigation, temporarily suspends trade while pursuing it, or disengages after failed attempts at
  mitigation. Here: an unresolved red flag of another kind gives `continue_mitigating` while its corrective
  actions are on time, `suspend` when one failed (not implemented, or overdue).
- Unresolved incidents that are not red flags, with corrective actions still open: `continue_mitigating`.
- Otherwise (nothing open, or everything resolved: closed or dismissed): `continue`.

Each recommendation comes with its reasons (one per incident that decided it) and the corrective actions to
follow, with their due dates: the buyer's risk management plan starts from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONTINUE = "continue"
CONTINUE_MITIGATING = "continue_mitigating"
SUSPEND = "suspend"
DISENGAGE = "disengage"
RECOMMENDATIONS = (CONTINUE, CONTINUE_MITIGATING, SUSPEND, DISENGAGE)
"""From the mildest to the strictest."""

IMMEDIATE_RISKS = frozenset({"serious_abuses", "non_state_armed_groups"})
"""Annex II paragraphs 2 and 4: immediately suspend or discontinue engagement."""

OPEN_STATUSES = frozenset({"reported", "confirmed"})


@dataclass(frozen=True)
class Reason:
    """Why: `code` (a catalogue key suffix), the incident and the Annex II risks concerned."""

    code: str
    incident: str
    site: str
    risks: tuple[str, ...]
    recommendation: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "incident": self.incident, "site": self.site, "risks": list(self.risks),
                "recommendation": self.recommendation}


@dataclass(frozen=True)
class Step3:
    recommendation: str
    reasons: tuple[Reason, ...]
    actions: tuple[dict[str, Any], ...]
    """The corrective actions still open on unresolved incidents: incident, action, owner, description, due,
    overdue, last_verification."""

    def to_json(self) -> dict[str, Any]:
        return {"recommendation": self.recommendation, "reasons": [r.to_json() for r in self.reasons],
                "actions": [dict(a) for a in self.actions]}


def _failed(action: Mapping[str, Any]) -> bool:
    return action.get("status") == "open" and (bool(action.get("overdue"))
                                               or action.get("last_verification") == "not_implemented")


def _assess(incident: Mapping[str, Any]) -> Reason | None:
    if incident.get("status") not in OPEN_STATUSES:
        return None  # closed (remediated or not) or dismissed: nothing left to act on
    risks = tuple(sorted(str(a.get("risk")) for a in incident.get("annex_ii") or [] if isinstance(a, Mapping)))
    actions = [a for a in incident.get("actions") or [] if isinstance(a, Mapping)]
    failed = any(_failed(a) for a in actions)
    ident, site = str(incident.get("id") or ""), str(incident.get("site") or "")
    if IMMEDIATE_RISKS.intersection(risks):
        if failed:
            return Reason("immediate_risk_mitigation_failed", ident, site, risks, DISENGAGE)
        return Reason("immediate_risk_open", ident, site, risks, SUSPEND)
    if incident.get("red_flag"):
        if failed:
            return Reason("red_flag_mitigation_failed", ident, site, risks, SUSPEND)
        return Reason("red_flag_mitigating", ident, site, risks, CONTINUE_MITIGATING)
    if any(a.get("status") == "open" for a in actions) or failed:
        return Reason("open_incident_mitigating", ident, site, risks, CONTINUE_MITIGATING)
    return Reason("open_incident_no_action", ident, site, risks, CONTINUE_MITIGATING)


def recommend(incidents: Iterable[Mapping[str, Any]]) -> Step3:
    """The Step 3 recommendation for the incidents open while the ore was at their sites (any order)."""
    reasons: list[Reason] = []
    actions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for incident in incidents:
        ident = str(incident.get("id") or "")
        if ident in seen:
            continue  # a site listed twice (a lot's bags from one site) lists its incidents once
        seen.add(ident)
        reason = _assess(incident)
        if reason is None:
            continue
        reasons.append(reason)
        for a in incident.get("actions") or []:
            if isinstance(a, Mapping) and a.get("status") == "open":
                actions.append({"incident": ident, "action": a.get("action"), "owner": a.get("owner"),
                                "description": a.get("description"), "due": a.get("due"),
                                "overdue": bool(a.get("overdue")), "last_verification": a.get("last_verification")})
    rank = {r: n for n, r in enumerate(RECOMMENDATIONS)}
    recommendation = max((r.recommendation for r in reasons), key=rank.__getitem__, default=CONTINUE)
    reasons.sort(key=lambda r: (-rank[r.recommendation], r.incident))
    actions.sort(key=lambda a: (str(a["due"]), a["incident"], str(a["action"])))
    return Step3(recommendation, tuple(reasons), tuple(actions))
