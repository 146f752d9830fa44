"""domain.risk and domain.site_risk: the folded state of incidents (protocol 16.1, 16.3) and the pure views of a
site's risk (16.5) and of a tag's window (16.6), at a given time T. No rules, no database: bodies are folded
into a `RiskBook` directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from domain.risk import ANNEX_II_PARAGRAPHS, RiskBook, annex_ii, cycle_due, is_red_flag, month_of
from domain.site_risk import incidents_in_window, monthly_trend, price_ratio, status_at, visit_json, women_share
from verification.encoding import format_time

UTC = timezone.utc


def t(text: str) -> datetime:
    """`2026-11-03` or `2026-11-03T10:00` (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Book:
    """Folds hand-made bodies of risk events into a `RiskBook`, in order, with made-up hashes."""

    def __init__(self) -> None:
        self.book = RiskBook()
        self.seq = 0

    def event(self, kind: str, stream: str, when: str, data: dict[str, Any], actor: str = "monitor") -> None:
        body = {"type": kind, "stream": stream, "actor": actor, "time": format_time(t(when)), "data": data}
        self.book.apply(body, f"{self.seq:064x}", self.seq)
        self.seq += 1

    def report(self, incident: str, when: str, *, occurred: str | None = None, severity: str = "medium",
               category: str = "health_safety", **data: Any) -> None:
        self.event("incident_reported", f"incident:{incident}", when, {
            "site": "site-a", "category": category, "severity": severity,
            "occurred_at": format_time(t(occurred or when)), "details": {"sha256": "d" * 64}, **data})

    def on(self, kind: str, incident: str, when: str, actor: str = "monitor", **data: Any) -> None:
        self.event(kind, f"incident:{incident}", when, data, actor)

    def assign(self, incident: str, action: str, when: str, cycle: str, owner: str = "coop") -> None:
        self.on("action_assigned", incident, when, "operator", action=action, owner=owner, description="fix",
                cycle=cycle)

    def verify(self, incident: str, action: str, when: str, outcome: str = "implemented") -> None:
        self.on("action_verified", incident, when, action=action, outcome=outcome)

    def visit(self, period: str, when: str, **data: Any) -> None:
        self.event("site_monitored", "site:site-a", when, {"period": period, **data})

    @property
    def incidents(self) -> list:  # noqa: ANN201 - list[IncidentState]
        return list(self.book.incidents.values())

    @property
    def visits(self) -> list:  # noqa: ANN201 - list[SiteVisit]
        return self.book.visits.get("site-a", [])


USD = lambda minor: {"currency": "USD", "minor_per_kg": minor}  # noqa: E731


# --- 16.1: Annex II and red flags --------------------------------------------------------------------------


@pytest.mark.parametrize("category, worst_forms, risks", [
    ("child_labour", None, ()),
    ("child_labour", False, ()),
    ("child_labour", True, ("serious_abuses",)),
    ("health_safety", None, ()),
    ("forced_labour", None, ("serious_abuses",)),
    ("armed_groups", None, ("non_state_armed_groups",)),
    ("security_forces", None, ("security_forces",)),
    ("chain_of_custody", None, ("bribery_misrepresentation",)),
    ("environment", None, ()),
    ("governance", None, ("bribery_misrepresentation", "money_laundering", "taxes_fees_royalties")),
])
def test_annex_ii_of_each_category(category: str, worst_forms: bool | None, risks: tuple[str, ...]) -> None:
    assert annex_ii(category, worst_forms) == risks
    assert all(r in ANNEX_II_PARAGRAPHS for r in risks)


@pytest.mark.parametrize("severity, risks, red", [
    ("low", (), False), ("medium", (), False), ("high", (), True), ("critical", (), True),
    ("low", ("serious_abuses",), True), ("low", ("non_state_armed_groups",), True),
    ("medium", ("security_forces",), False),
    ("medium", ("bribery_misrepresentation", "money_laundering", "taxes_fees_royalties"), False),
])
def test_red_flag(severity: str, risks: tuple[str, ...], red: bool) -> None:
    assert is_red_flag(severity, risks) is red


def test_a_confirmation_regrades_the_severity_and_the_red_flag() -> None:
    b = Book()
    b.report("INC-1", "2026-11-03", severity="medium", category="environment")
    assert not b.book.incidents["INC-1"].red_flag
    b.on("incident_confirmed", "INC-1", "2026-11-04", severity="critical", evidence=[{"sha256": "1" * 64,
                                                                                      "media_type": "image/png"}])
    state = b.book.incidents["INC-1"]
    assert (state.severity, state.red_flag, state.status, len(state.evidence)) == ("critical", True, "confirmed", 1)
    b.report("INC-2", "2026-11-05", severity="high")
    b.on("incident_confirmed", "INC-2", "2026-11-06")  # no severity: the reported one stays
    assert b.book.incidents["INC-2"].severity == "high"


# --- 16.3: dates, actions, overdue at T ----------------------------------------------------------------------


@pytest.mark.parametrize("cycle, due", [("2026-01", "2026-02-01"), ("2026-11", "2026-12-01"),
                                        ("2026-12", "2027-01-01"), ("9998-12", "9999-01-01")])
def test_an_action_is_due_at_the_first_instant_of_the_next_month(cycle: str, due: str) -> None:
    assert cycle_due(cycle) == t(due)
    assert month_of(t(due) - timedelta(microseconds=1)) == cycle


def test_actions_fold_and_are_overdue_from_their_due_instant_while_open() -> None:
    b = Book()
    b.report("INC-1", "2026-11-03")
    b.assign("INC-1", "A1", "2026-11-04", "2026-11")
    b.assign("INC-1", "A2", "2026-11-04", "2026-11")
    b.on("action_progress", "INC-1", "2026-11-10", "coop", action="A1", note="n", percent=30)
    b.on("action_progress", "INC-1", "2026-11-11", "coop", action="A1", note="n")  # no percent: stays 30
    b.verify("INC-1", "A2", "2026-11-20", "not_implemented")
    b.verify("INC-1", "A2", "2026-11-25")
    a1, a2 = b.book.incidents["INC-1"].actions.values()
    assert (a1.progress, a1.reports, a1.status, a1.last_verification) == (30, 2, "open", None)
    assert (a2.status, a2.last_verification, a2.implemented_at) == ("implemented", "implemented",
                                                                    format_time(t("2026-11-25")))
    due = t("2026-12-01")
    assert not a1.overdue_at(due - timedelta(microseconds=1))
    assert a1.overdue_at(due) and a1.overdue_at(t("2027-05-01"))
    assert not a2.overdue_at(t("2027-05-01"))  # implemented: never overdue
    doc = a1.to_json(due)
    assert doc == {"action": "A1", "owner": "coop", "description": "fix", "cycle": "2026-11",
                   "due": "2026-12-01T00:00:00Z", "status": "open", "overdue": True, "progress": 30, "reports": 2,
                   "last_verification": None, "implemented_at": None}


def test_status_and_resolution_of_an_incident() -> None:
    b = Book()
    b.report("INC-1", "2026-11-03", occurred="2026-11-01")
    b.report("INC-2", "2026-11-03")
    b.on("incident_dismissed", "INC-2", "2026-11-04", reason="r")
    one, two = b.book.incidents["INC-1"], b.book.incidents["INC-2"]
    assert (one.status, one.is_open, one.resolved_at) == ("reported", True, None)
    assert (two.status, two.is_open, two.finished, two.resolved_at) == ("dismissed", False, True,
                                                                        format_time(t("2026-11-04")))
    assert [e.type for e in two.events] == ["incident_reported", "incident_dismissed"]
    assert not one.open_at(t("2026-10-31")) and one.open_at(t("2026-11-01"))
    assert two.open_at(t("2026-11-03T23:00")) and not two.open_at(t("2026-11-04"))
    public = one.public_json(t("2026-11-05"))
    assert "details" not in public and public["details_sha256"] == "d" * 64
    assert public["events"][0] == {"seq": 0, "hash": "0" * 64, "type": "incident_reported", "actor": "monitor",
                                   "time": format_time(t("2026-11-03"))}


# --- 16.5: the site's status -------------------------------------------------------------------------------


def test_status_green_with_nothing() -> None:
    status = status_at([], t("2026-11-01"))
    assert (status.status, status.open_red_flags, status.open_incidents, status.overdue_actions) == ("green", 0, 0, 0)


def test_status_amber_red_green() -> None:
    b = Book()
    b.report("INC-1", "2026-11-03", severity="low")
    at = t("2026-11-10")
    assert status_at(b.incidents, at).status == "amber"  # an open incident, no red flag
    b.report("INC-2", "2026-11-04", category="armed_groups", severity="low")
    status = status_at(b.incidents, at)
    assert (status.status, status.open_red_flags, status.open_incidents) == ("red", 1, 2)
    b.on("incident_dismissed", "INC-2", "2026-11-05", reason="r")
    b.on("incident_dismissed", "INC-1", "2026-11-05", reason="r")
    status = status_at(b.incidents, at)
    assert (status.status, status.open_red_flags, status.open_incidents) == ("green", 0, 0)


def test_status_counts_overdue_actions_at_t() -> None:
    b = Book()
    b.report("INC-1", "2026-11-03", severity="low")
    b.on("incident_confirmed", "INC-1", "2026-11-03")
    b.assign("INC-1", "A1", "2026-11-04", "2026-11")
    b.assign("INC-1", "A2", "2026-11-04", "2026-12")
    before, at_due = t("2026-11-30T23:59:59"), t("2026-12-01")
    assert status_at(b.incidents, before).overdue_actions == 0
    status = status_at(b.incidents, at_due)
    assert (status.status, status.overdue_actions) == ("amber", 1)
    assert status_at(b.incidents, t("2027-01-01")).overdue_actions == 2
    b.verify("INC-1", "A1", "2026-12-02")
    b.verify("INC-1", "A2", "2026-12-03")
    b.on("incident_closed", "INC-1", "2026-12-04", resolution="done")
    assert status_at(b.incidents, t("2027-01-01")).status == "green"
    assert b.book.incidents["INC-1"].remediated


# --- 16.5: the monthly trend -------------------------------------------------------------------------------


def test_monthly_trend_across_a_year_boundary() -> None:
    b = Book()
    b.visit("2026-11", "2026-11-20", price_paid=USD(900), reference_price=USD(1500), workforce={"women": 1, "men": 2})
    b.report("INC-1", "2026-11-25", severity="high")  # red
    b.on("incident_confirmed", "INC-1", "2026-11-26")
    b.assign("INC-1", "A1", "2026-11-27", "2026-11")  # due 2026-12-01, implemented 2027-01-15
    b.assign("INC-1", "A2", "2026-11-27", "2026-12")  # due 2027-01-01, implemented 2026-12-20
    b.verify("INC-1", "A2", "2026-12-20")
    b.report("INC-2", "2026-12-05", severity="low")  # amber only
    b.assign("INC-2", "A1", "2026-12-06", "2027-01")  # due 2027-02-01, never implemented
    b.verify("INC-1", "A1", "2027-01-15")
    b.on("incident_closed", "INC-1", "2027-01-16", resolution="r")
    b.visit("2027-01", "2027-01-31", price_paid=USD(1000), reference_price=USD(1500))
    at = t("2027-02-10")
    rows = monthly_trend(b.incidents, b.visits, at)
    assert [r["month"] for r in rows] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    table = {r["month"]: (r["incidents_reported"], r["red_flags_reported"], r["red_flags_open"], r["actions_due"],
                          r["actions_implemented"], r["actions_overdue"], r["price_ratio"], r["women_share"])
             for r in rows}
    assert table == {
        "2026-11": (1, 1, 1, 1, 0, 0, "0.600", "0.333"),
        "2026-12": (1, 0, 1, 1, 1, 1, None, None),  # A1 (INC-1) overdue from 12-01; A2 implemented in December
        "2027-01": (0, 0, 0, 1, 1, 0, "0.667", None),  # INC-1 closed, A1 implemented on 01-15
        "2027-02": (0, 0, 0, 0, 0, 1, None, None),  # at T: INC-2's A1 due 02-01, open
    }


def test_monthly_trend_rows_are_read_at_the_month_end_or_at_t() -> None:
    b = Book()
    b.report("INC-1", "2026-11-10", severity="critical")
    b.assign("INC-1", "A1", "2026-11-10", "2026-11")
    # T in the middle of December: December's row is read at T
    rows = monthly_trend(b.incidents, b.visits, t("2026-12-15"))
    assert [(r["month"], r["red_flags_open"], r["actions_overdue"]) for r in rows] == [
        ("2026-11", 1, 0), ("2026-12", 1, 1)]
    # T at the first instant of a month: that month has a row
    assert [r["month"] for r in monthly_trend(b.incidents, b.visits, t("2027-01-01"))] == [
        "2026-11", "2026-12", "2027-01"]
    # T in the incident's own month: one row, read at T
    (only,) = monthly_trend(b.incidents, b.visits, t("2026-11-20"))
    assert (only["month"], only["incidents_reported"], only["actions_due"], only["actions_overdue"]) == (
        "2026-11", 1, 1, 0)


def test_monthly_trend_starts_at_the_earliest_occurrence_and_the_last_visit_of_a_period_wins() -> None:
    b = Book()
    b.visit("2026-10", "2026-10-05", price_paid=USD(500), reference_price=USD(1000))
    b.visit("2026-10", "2026-10-25", price_paid=USD(700), reference_price=USD(1000))
    b.report("INC-1", "2026-11-02", occurred="2026-08-20")  # reported late, about August
    rows = monthly_trend(b.incidents, b.visits, t("2026-11-03"))
    assert [r["month"] for r in rows] == ["2026-08", "2026-09", "2026-10", "2026-11"]
    assert [r["price_ratio"] for r in rows] == [None, None, "0.700", None]
    assert [r["incidents_reported"] for r in rows] == [0, 0, 0, 1]
    assert monthly_trend([], [], t("2026-11-03")) == []


# --- 16.5: prices and workforce ----------------------------------------------------------------------------


@pytest.mark.parametrize("paid, reference, ratio", [
    (900, 1500, "0.600"),
    (1, 3, "0.333"),
    (2, 3, "0.667"),
    (1, 8, "0.125"),
    (1, 16, "0.063"),  # 0.0625: half up
    (1, 2000, "0.001"),  # 0.0005: half up
    (1, 2001, "0.000"),
    (1999, 2000, "1.000"),  # 0.9995: half up
    (1500, 1000, "1.500"),
    (0, 1000, "0.000"),
])
def test_price_ratio_rounds_half_up_to_three_decimals(paid: int, reference: int, ratio: str) -> None:
    assert price_ratio({"price_paid": USD(paid), "reference_price": USD(reference)}) == ratio


@pytest.mark.parametrize("data", [
    {},
    {"price_paid": USD(900)},
    {"reference_price": USD(900)},
    {"price_paid": USD(900), "reference_price": {"currency": "EUR", "minor_per_kg": 900}},
    {"price_paid": USD(900), "reference_price": USD(0)},
])
def test_price_ratio_needs_both_prices_in_one_currency(data: dict[str, Any]) -> None:
    assert price_ratio(data) is None


@pytest.mark.parametrize("women, men, share", [
    (40, 160, "0.200"), (1, 2, "0.333"), (2, 1, "0.667"), (1, 15, "0.063"), (1, 1999, "0.001"),
    (0, 5, "0.000"), (5, 0, "1.000"), (0, 0, None),
])
def test_women_share(women: int, men: int, share: str | None) -> None:
    assert women_share({"workforce": {"women": women, "men": men}}) == share
    assert women_share({}) is None


def test_visit_json() -> None:
    b = Book()
    b.visit("2026-11", "2026-11-20", price_paid=USD(900), reference_price=USD(1200), reference_source="LME",
            workforce={"women": 1, "men": 3}, minors_observed=0, concerns=["price"], note="n")
    doc = visit_json(b.visits[0])
    assert doc == {"period": "2026-11", "price_paid": USD(900), "reference_price": USD(1200),
                   "reference_source": "LME", "price_ratio": "0.750", "workforce": {"women": 1, "men": 3},
                   "women_share": "0.250", "minors_observed": 0, "concerns": ["price"], "note": "n",
                   "monitor": "monitor", "time": format_time(t("2026-11-20")), "seq": 0, "hash": "0" * 64}
    b.visit("2026-12", "2026-12-20")
    bare = visit_json(b.visits[1])
    assert (bare["price_ratio"], bare["women_share"], bare["concerns"], bare["note"]) == (None, None, [], None)


# --- 16.6: incidents open during a window ------------------------------------------------------------------


def test_incidents_in_window_edges() -> None:
    b = Book()
    start, end = t("2026-11-10"), t("2026-11-20")
    b.report("AT-END", "2026-11-25", occurred="2026-11-20")  # occurred exactly at `to`: listed
    b.report("AFTER", "2026-11-25", occurred="2026-11-20T00:00:01")  # occurred after `to`: not listed
    b.report("RESOLVED-AT-START", "2026-11-01")
    b.on("incident_dismissed", "RESOLVED-AT-START", "2026-11-10", reason="r")  # resolved at `from`: listed
    b.report("RESOLVED-BEFORE", "2026-11-01")
    b.on("incident_dismissed", "RESOLVED-BEFORE", "2026-11-09T23:59:59", reason="r")  # not listed
    b.report("SPANNING", "2026-11-01")
    b.on("incident_confirmed", "SPANNING", "2026-11-02")
    b.on("incident_closed", "SPANNING", "2026-11-30", resolution="r")  # open across the window: listed
    b.report("STILL-OPEN", "2026-10-01")  # never resolved: listed
    b.report("LATE-REPORT", "2026-12-15", occurred="2026-11-15")  # reported after the window, about it: listed
    listed = {i.incident for i in incidents_in_window(b.incidents, start, end)}
    assert listed == {"AT-END", "RESOLVED-AT-START", "SPANNING", "STILL-OPEN", "LATE-REPORT"}
    # a window of one instant
    assert {i.incident for i in incidents_in_window(b.incidents, end, end)} == {
        "AT-END", "SPANNING", "STILL-OPEN", "LATE-REPORT"}


def test_a_dismissed_incident_cancels_its_open_actions_which_are_never_overdue() -> None:
    b = Book()
    b.report("INC-1", "2026-01-05")
    b.assign("INC-1", "A1", "2026-01-06", "2026-01")
    b.assign("INC-1", "A2", "2026-01-06", "2026-01")
    b.verify("INC-1", "A2", "2026-01-20")
    assert status_at(b.incidents, t("2026-02-10")).overdue_actions == 1  # A1 is past due, still open
    b.on("incident_dismissed", "INC-1", "2026-02-15", reason="the monitor was misinformed")
    actions = b.book.incidents["INC-1"].actions
    assert (actions["A1"].status, actions["A2"].status) == ("cancelled", "implemented")
    assert status_at(b.incidents, t("2026-06-01")) == status_at([], t("2026-06-01"))  # green, nothing overdue
    rows = {r["month"]: r for r in monthly_trend(b.incidents, [], t("2026-04-01"))}
    # overdue at the end of February? It was cancelled on the 15th: no; at the end of January it was (due 1 Feb)
    assert [rows[m]["actions_overdue"] for m in ("2026-01", "2026-02", "2026-03")] == [0, 0, 0]
