"""The risk context of a tag's origin sites while its ore was in custody (protocol section 16.6).

For each origin site of the tag (its own attachment, or those of every bag merged into it), the incidents of
that site that were open at some point between the ore's tagging there and the end of the tag's custody, and
how they were remediated. Read from the site's incident streams (`Ledger.site_risk_book`), as of the same log
size as the tag view.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from domain import custody
from domain.risk import RiskBook
from domain.site_risk import incidents_in_window, status_at
from ledger.entries import Entry
from verification.encoding import format_time, parse_time

FINISHED = {custody.Status.MERGED, custody.Status.SPLIT, custody.Status.CONSUMED, custody.Status.VOIDED}


def custody_end(state: custody.TagState, entries: list[Entry], at: datetime) -> datetime:
    """When the tag's custody ended: the time of the event that finished it, else `at` (still going)."""
    if state.status not in FINISHED:
        return at
    custody_events = [e for e in entries if e.body["type"] != "tag_scanned"]  # a scan after the end is no custody
    return parse_time(custody_events[-1].body["time"])


def tag_risk(
    origins: list[dict[str, Any]],
    end: datetime,
    at: datetime,
    books: Callable[[str], RiskBook],
    site_name: Callable[[str], str | None],
) -> dict[str, Any]:
    starts: dict[str, datetime] = {}
    for origin in origins:
        when = parse_time(origin["attached_at"])
        site = origin["site"]
        starts[site] = min(starts.get(site, when), when)
    sites = []
    red = remediated = unremediated = 0
    for site in sorted(starts):
        incidents = list(books(site).incidents.values())
        start = starts[site]
        listed = sorted(incidents_in_window(incidents, start, max(end, start)),
                        key=lambda i: (i.occurred_at, i.incident), reverse=True)
        red += sum(1 for i in listed if i.red_flag)
        remediated += sum(1 for i in listed if i.red_flag and i.remediated)
        unremediated += sum(1 for i in listed if i.red_flag and i.is_open)
        sites.append({
            "site": site,
            "site_name": site_name(site),
            "status_now": status_at(incidents, at).status,
            "window": {"from": format_time(start), "to": format_time(max(end, start))},
            "incidents": [i.public_json(at) for i in listed],
        })
    return {
        "at": format_time(at),
        "sites": sites,
        "open_red_flags_in_window": red,
        "remediated": remediated,
        "unremediated": unremediated,
    }
