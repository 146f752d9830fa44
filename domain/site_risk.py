"""A site's risk status and a tag's risk context, read from folded incidents (protocol 16.5 and 16.6).

Pure functions of a `domain.risk.RiskBook` and the time T the view is made for; the ledger reads the events
(`Ledger.site_risk_book`) and the API shows the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from domain.risk import IncidentState, SiteVisit, cycle_due, month_of
from verification.encoding import parse_time


def _month_end(month: str, at: datetime) -> datetime:
    """The instant a month's row is read at: the month's end, or T for T's own month."""
    return min(cycle_due(month) - timedelta(microseconds=1), at)


def _months(first: datetime, at: datetime) -> list[str]:
    months, year, month = [], first.year, first.month
    while (year, month) <= (at.year, at.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _decimal(value: Fraction) -> str:
    """A fraction as a decimal string with 3 decimals, rounded half up."""
    thousandths = (value * 1000 + Fraction(1, 2)).__floor__()
    return f"{thousandths // 1000}.{thousandths % 1000:03d}"


def price_ratio(data: dict[str, Any]) -> str | None:
    """Price paid to miners as a fraction of the reference price, when both are in one currency."""
    paid, reference = data.get("price_paid"), data.get("reference_price")
    if not paid or not reference or paid["currency"] != reference["currency"] or reference["minor_per_kg"] == 0:
        return None
    return _decimal(Fraction(paid["minor_per_kg"], reference["minor_per_kg"]))


def women_share(data: dict[str, Any]) -> str | None:
    workforce = data.get("workforce")
    if not workforce or workforce["women"] + workforce["men"] == 0:
        return None
    return _decimal(Fraction(workforce["women"], workforce["women"] + workforce["men"]))


@dataclass(frozen=True)
class SiteStatus:
    status: str  # red, amber, green
    open_red_flags: int
    open_incidents: int
    overdue_actions: int


def status_at(incidents: list[IncidentState], at: datetime) -> SiteStatus:
    """`red`: an open red flag; `amber`: an open incident or an overdue action; else `green` (16.5)."""
    open_incidents = [i for i in incidents if i.is_open]
    red = sum(1 for i in open_incidents if i.red_flag)
    overdue = sum(1 for i in incidents for a in i.actions.values() if a.overdue_at(at))
    status = "red" if red else "amber" if open_incidents or overdue else "green"
    return SiteStatus(status, red, len(open_incidents), overdue)


def _resolved_by(incident: IncidentState, when: datetime) -> bool:
    return incident.resolved_at is not None and parse_time(incident.resolved_at) <= when


def monthly_trend(incidents: list[IncidentState], visits: list[SiteVisit], at: datetime) -> list[dict[str, Any]]:
    """One row per month from the site's first risk event to T's month (16.5 `months`)."""
    starts = [parse_time(i.reported_at) for i in incidents] + [parse_time(v.ref.time) for v in visits]
    starts += [parse_time(i.occurred_at) for i in incidents]
    if not starts:
        return []
    visit_of = {v.period: v for v in visits}  # the latest record of a period wins
    rows = []
    for month in _months(min(starts), at):
        end = _month_end(month, at)
        reported = [i for i in incidents if month_of(parse_time(i.reported_at)) == month]
        actions = [a for i in incidents for a in i.actions.values()]
        known = [i for i in incidents if parse_time(i.reported_at) <= end]
        visit = visit_of.get(month)
        rows.append({
            "month": month,
            "incidents_reported": len(reported),
            "red_flags_reported": sum(1 for i in reported if i.red_flag),
            "red_flags_open": sum(1 for i in known if i.red_flag and not _resolved_by(i, end)),
            "actions_due": sum(1 for a in actions if a.cycle == month),
            "actions_implemented": sum(
                1 for a in actions if a.implemented_at and month_of(parse_time(a.implemented_at)) == month
            ),
            "actions_overdue": sum(1 for a in actions if a.due <= end and not a.settled_by(end)),
            "price_ratio": price_ratio(visit.data) if visit else None,
            "women_share": women_share(visit.data) if visit else None,
        })
    return rows


def visit_json(visit: SiteVisit) -> dict[str, Any]:
    data = visit.data
    return {
        "period": visit.period,
        "price_paid": data.get("price_paid"),
        "reference_price": data.get("reference_price"),
        "reference_source": data.get("reference_source"),
        "price_ratio": price_ratio(data),
        "workforce": data.get("workforce"),
        "women_share": women_share(data),
        "minors_observed": data.get("minors_observed"),
        "concerns": data.get("concerns") or [],
        "note": data.get("note"),
        "monitor": visit.ref.actor,
        "time": visit.ref.time,
        "seq": visit.ref.seq,
        "hash": visit.ref.hash,
    }


# --- a tag's risk context (16.6) -----------------------------------------------------------------


def incidents_in_window(incidents: list[IncidentState], start: datetime, end: datetime) -> list[IncidentState]:
    """Incidents open at some point of [start, end]: occurred at or before `end`, not resolved before `start`."""
    return [
        i for i in incidents
        if parse_time(i.occurred_at) <= end and (i.resolved_at is None or parse_time(i.resolved_at) >= start)
    ]
