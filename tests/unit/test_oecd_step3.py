"""verification.oecd_step3: the rule that maps the risk facts of a due-diligence report to OECD Step 3's answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from verification.oecd_step3 import (CONTINUE, CONTINUE_MITIGATING, DISENGAGE, RECOMMENDATIONS, SUSPEND, recommend)
from domain.risk import ANNEX_II_PARAGRAPHS, annex_ii, is_red_flag


def incident(ident: str = "INC-1", *, category: str = "armed_groups", severity: str = "high",
             worst_forms: bool | None = None, status: str = "confirmed",
             actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    risks = annex_ii(category, worst_forms)
    return {"id": ident, "site": "mine-a", "category": category, "worst_forms": worst_forms, "severity": severity,
            "annex_ii": [{"risk": r, "paragraphs": ANNEX_II_PARAGRAPHS[r]} for r in risks],
            "red_flag": is_red_flag(severity, risks), "status": status, "actions": actions or []}


def action(name: str = "A1", *, status: str = "open", overdue: bool = False, last: str | None = None,
           due: str = "2026-11-01T00:00:00Z") -> dict[str, Any]:
    return {"action": name, "owner": "mine-a", "description": "do it", "due": due, "status": status,
            "overdue": overdue, "last_verification": last}


def test_nothing_open_is_continue() -> None:
    assert recommend([]).recommendation == CONTINUE
    closed = incident(status="closed", actions=[action(status="implemented")])
    dismissed = incident("INC-2", category="child_labour", worst_forms=True, status="dismissed")
    result = recommend([closed, dismissed])
    assert result.recommendation == CONTINUE and result.reasons == () and result.actions == ()


def test_worst_forms_child_labour_open_is_suspend_at_once() -> None:
    result = recommend([incident(category="child_labour", worst_forms=True, severity="medium",
                                 actions=[action(due="2026-12-01T00:00:00Z")])])
    assert result.recommendation == SUSPEND
    assert [(r.code, r.risks) for r in result.reasons] == [("immediate_risk_open", ("serious_abuses",))]
    assert [a["due"] for a in result.actions] == ["2026-12-01T00:00:00Z"]


def test_armed_groups_with_failed_mitigation_is_disengage() -> None:
    overdue = incident(actions=[action(overdue=True)])
    not_done = incident("INC-2", actions=[action(last="not_implemented")])
    for case in (overdue, not_done):
        result = recommend([case])
        assert result.recommendation == DISENGAGE
        assert result.reasons[0].code == "immediate_risk_mitigation_failed"


def test_other_red_flags_continue_while_mitigating_then_suspend_when_mitigation_fails() -> None:
    on_time = incident(category="governance", severity="high", actions=[action()])
    assert recommend([on_time]).recommendation == CONTINUE_MITIGATING
    failed = incident(category="governance", severity="high", actions=[action(overdue=True)])
    assert recommend([failed]).recommendation == SUSPEND
    assert recommend([failed]).reasons[0].code == "red_flag_mitigation_failed"


def test_open_incident_that_is_not_a_red_flag_is_continue_mitigating() -> None:
    result = recommend([incident(category="environment", severity="low")])
    assert result.recommendation == CONTINUE_MITIGATING
    assert result.reasons[0].code == "open_incident_no_action"


def test_strictest_wins_and_reasons_are_ordered_strictest_first() -> None:
    result = recommend([incident("INC-1", category="environment", severity="low"),
                        incident("INC-2", actions=[action(overdue=True)])])
    assert result.recommendation == DISENGAGE
    assert [r.incident for r in result.reasons] == ["INC-2", "INC-1"]


def test_an_incident_listed_twice_counts_once() -> None:
    twice = incident(actions=[action()])
    result = recommend([twice, twice])
    assert len(result.reasons) == 1 and len(result.actions) == 1


CATEGORIES = ["child_labour", "health_safety", "forced_labour", "armed_groups", "security_forces",
              "chain_of_custody", "environment", "governance"]
incidents = st.builds(
    lambda n, cat, sev, wf, status, acts: incident(f"INC-{n}", category=cat, severity=sev, worst_forms=wf,
                                                   status=status, actions=acts),
    st.integers(0, 30), st.sampled_from(CATEGORIES), st.sampled_from(["low", "medium", "high", "critical"]),
    st.sampled_from([None, True, False]), st.sampled_from(["reported", "confirmed", "dismissed", "closed"]),
    st.lists(st.builds(lambda s, o, v: action(status=s, overdue=o and s == "open", last=v),
                       st.sampled_from(["open", "implemented", "cancelled"]), st.booleans(),
                       st.sampled_from([None, "implemented", "not_implemented"])), max_size=3),
)


@given(st.lists(incidents, max_size=8))
def test_properties(found: list[dict[str, Any]]) -> None:
    result = recommend(found)
    rank = RECOMMENDATIONS.index
    unique = {i["id"]: i for i in reversed(found)}  # the first of each id is the one assessed
    open_ = [i for i in unique.values() if i["status"] in ("reported", "confirmed")]
    # continue exactly when nothing is unresolved; every unresolved incident gives exactly one reason
    assert (result.recommendation == CONTINUE) == (not open_)
    assert sorted(r.incident for r in result.reasons) == sorted(i["id"] for i in open_)
    # the answer is the strictest of the reasons'
    assert all(rank(r.recommendation) <= rank(result.recommendation) for r in result.reasons)
    # an unresolved serious abuse or armed-group risk never lets trade simply continue
    immediate = [i for i in open_ if {a["risk"] for a in i["annex_ii"]} & {"serious_abuses", "non_state_armed_groups"}]
    if immediate:
        assert result.recommendation in (SUSPEND, DISENGAGE)
    # the actions listed are exactly the open ones of unresolved incidents
    assert len(result.actions) == sum(a["status"] == "open" for i in open_ for a in i["actions"])
    # adding a resolved incident never changes the answer (monotone in what is unresolved)
    closed = incident("INC-999", status="closed", actions=[action(status="implemented")])
    assert recommend([*found, closed]).recommendation == result.recommendation
