"""The refiner's RMAP input report (protocol section 21, `tagledger/rmap-input-report/v1`).

What a smelter or refiner shows its RMAP assessor (Responsible Minerals Initiative) about its inputs over a
period: every lot or bag it received or consumed, by mine of origin (site, country, Covered Country, red flags),
mineral and mass, how complete the signed chain of custody is, the mass balance, and the incidents of the origin
sites with their corrective actions. Built only from the custody projection (which tags the refiner holds) and
the signed log (each tag's verified view, each site's incidents); it says nothing the tag views do not say.

The CSV and XLSX renderings (`csv_text`, `xlsx_bytes`) flatten the JSON: one row per lot and mine of origin.
Their columns follow the RMI's Conflict Minerals Reporting Template (CMRT 6.4, tab "Smelter List") where the
template has the column (`CMRT_COLUMNS`); the others are tagledger's own (docs/protocol.md section 21).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

from domain.risk import IncidentState
from domain.roles import Role
from domain.site_risk import incidents_in_window
from ledger.entries import read_entry
from ledger.service import Ledger, TagView
from verification.encoding import format_time, parse_time

REPORT_FORMAT = "tagledger/rmap-input-report/v1"
MAX_PERIOD_DAYS = 3660
"""A report covers at most ten years."""
MAX_LOTS = 5000
"""Tags reported one by one; a longer period is reported truncated, and says so."""

COVERED_COUNTRIES = frozenset({"CD", "AO", "BI", "CF", "CG", "RW", "SS", "TZ", "UG", "ZM"})
"""The DRC and its adjoining countries: the "Covered Countries" of the CMRT's question 3 and of US Dodd-Frank
section 1502 (ISO 3166-1 alpha-2)."""

METALS = {"tin": "Tin", "tantalum": "Tantalum", "tungsten": "Tungsten", "cobalt": "Cobalt", "copper": "Copper"}
"""A mineral of the ledger as the CMRT's (and EMRT's) "Metal (*)" column names it."""

CSV_COLUMNS = (
    "metal", "smelter_name", "smelter_country", "smelter_identification", "source_of_smelter_identification_number",
    "lot_tag", "received_at", "received_from", "received_from_name", "received_mass_g", "consumed_at",
    "consumed_mass_g", "lot_mass_g", "lot_status", "mine_id", "mine_name", "mine_country", "covered_country",
    "cahra", "mineral", "bags", "bags_complete_chain", "attached_mass_g", "red_flags", "incidents_open",
    "incidents_closed", "actions_open", "actions_overdue", "actions_implemented", "actions_cancelled",
)
"""The CSV's columns, in order: stable machine names (lower case, `_`), whatever the reader's language."""

CMRT_COLUMNS = {
    "metal": "Metal (*)",
    "smelter_name": "Smelter Name (1)",
    "smelter_country": "Smelter Country (*)",
    "smelter_identification": "Smelter Identification",
    "source_of_smelter_identification_number": "Source of Smelter Identification Number",
    "mine_name": 'Name of Mine(s) or if recycled or scrap sourced, enter "recycled" or "scrap"',
    "mine_country": 'Location (Country) of Mine(s) or if recycled or scrap sourced, enter "recycled" or "scrap"',
}
"""Columns that are the CMRT 6.4 "Smelter List" columns of the same meaning (their English heading, verbatim)."""


class PeriodError(ValueError):
    """`from`/`to` do not make a period: `field` names the parameter."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Period:
    start: datetime
    """The first instant of the `from` day (UTC), included."""
    end: datetime
    """The first instant after the `to` day (UTC), excluded."""

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def parse_period(start: str, end: str) -> Period:
    """`from` and `to` as calendar days `YYYY-MM-DD` (UTC), both included. PeriodError if malformed or reversed."""
    days = []
    for field, text in (("from", start), ("to", end)):
        try:
            if len(text) != 10:
                raise ValueError
            days.append(date.fromisoformat(text))
        except ValueError:
            raise PeriodError(field, f"{field}={text!r} is not a day YYYY-MM-DD") from None
    first, last = days
    if last < first:
        raise PeriodError("to", f"the period ends ({last}) before it starts ({first})")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise PeriodError("to", f"a report covers at most {MAX_PERIOD_DAYS} days")
    start_at = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    try:
        end_at = datetime(last.year, last.month, last.day, tzinfo=timezone.utc) + timedelta(days=1)
    except OverflowError:
        raise PeriodError("to", f"to={end!r} is too late") from None
    return Period(start_at, end_at)


def _ppm(part: int, whole: int) -> int | None:
    return None if whole == 0 else round(Fraction(part * 1_000_000, whole))


def _held_tags(ledger: Ledger, refiner: str, period: Period) -> list[str]:
    """Every tag the custody projection says the refiner holds or consumed (held last by it) whose last event is
    not before the period (a receipt or a consumption in the period cannot be older than it), and those the
    refiner received or consumed in the entries the projection has not folded yet (it follows the log)."""
    projection = ledger.projection or ledger.start_projection()
    position = projection.position()  # before the rows: they are at least this recent
    tags: list[str] = []
    after = ""
    while True:
        page = projection.query(holder=refiner, limit=1000, after=after)
        tags.extend(state["tag"] for state in page if parse_time(state["last_time"]) >= period.start)
        if len(page) < 1000:
            break
        after = page[-1]["tag"]
    for stored in ledger.store.iter_all(after_seq=position - 1):
        if stored.type in _REFINER_EVENTS:
            body = read_entry(stored.data).body
            if body["actor"] == refiner and body["type"] in _REFINER_EVENTS:
                tags.append(body["stream"].removeprefix("tag:"))
    return list(dict.fromkeys(tags))


_REFINER_EVENTS = frozenset({"custody_received", "tag_consumed"})


def _refiner_events(view: TagView, refiner: str, period: Period) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The tag's receipt by the refiner and its consumption there, each only if signed within the period (the
    latest of each)."""
    received = consumed = None
    previous_dispatch: dict[str, Any] | None = None
    for entry in view.entries:
        body = entry.body
        if body["stream"] != f"tag:{view.tag}":
            continue
        when = parse_time(body["time"])
        if body["type"] == "custody_dispatched":
            previous_dispatch = body
        elif body["type"] == "custody_received" and body["actor"] == refiner and when in period:
            received = {"at": body["time"], "seq": entry.seq, "mass_g": body["data"]["mass_g"],
                        "from": previous_dispatch["actor"] if previous_dispatch else None}
        elif body["type"] == "tag_consumed" and body["actor"] == refiner and when in period:
            consumed = {"at": body["time"], "seq": entry.seq, "mass_g": body["data"].get("mass_g")}
    return received, consumed


def _attached_mass(view: TagView) -> int | None:
    for entry in view.entries:
        if entry.body["type"] == "tag_attached" and entry.body["stream"] == f"tag:{view.tag}":
            return int(entry.body["data"]["mass_g"])
    return None


def _incident_row(incident: IncidentState, at: datetime) -> dict[str, Any]:
    doc = incident.public_json(at)
    actions = doc["actions"]
    return {
        "id": doc["id"],
        "site": doc["site"],
        "category": doc["category"],
        "worst_forms": doc["worst_forms"],
        "annex_ii": doc["annex_ii"],
        "severity": doc["severity"],
        "red_flag": doc["red_flag"],
        "status": doc["status"],
        "open_at_end": incident.open_at(at),
        "remediated": doc["remediated"],
        "occurred_at": doc["occurred_at"],
        "reported_at": doc["reported_at"],
        "resolved_at": doc["resolved_at"],
        "summary": doc["summary"],
        "referred_to": doc["referred_to"],
        "actions": [{k: a[k] for k in ("action", "owner", "description", "cycle", "due", "status", "overdue",
                                       "progress", "implemented_at")} for a in actions],
    }


def _action_counts(incidents: list[dict[str, Any]]) -> dict[str, int]:
    actions = [a for i in incidents for a in i["actions"]]
    return {
        "actions_open": sum(1 for a in actions if a["status"] == "open"),
        "actions_overdue": sum(1 for a in actions if a["overdue"]),
        "actions_implemented": sum(1 for a in actions if a["status"] == "implemented"),
        "actions_cancelled": sum(1 for a in actions if a["status"] == "cancelled"),
    }


def rmap_input_report(ledger: Ledger, refiner: str, period: Period) -> dict[str, Any] | None:
    """The report of `refiner` over `period`, or None if no such refiner (smelter) is registered."""
    registry = ledger.registry()
    org = registry.orgs.get(refiner)
    if org is None or org.role != Role.REFINER:
        return None
    now = ledger.view_time()
    at = min(period.end, now)  # incidents and actions are read at the end of the period (or now, if sooner)
    log_size = ledger.store.size()

    def name(org_id: str | None) -> str | None:
        found = registry.orgs.get(org_id) if org_id else None
        return found.name if found else None

    lots: list[dict[str, Any]] = []
    site_bags: dict[str, list[tuple[str, dict[str, Any], int]]] = {}  # site -> (lot, origin, attached mass)
    truncated = False
    for tag in _held_tags(ledger, refiner, period):
        view = ledger.tag(tag, as_of=log_size, context=False)
        if view is None:
            continue
        received, consumed = _refiner_events(view, refiner, period)
        if received is None and consumed is None:
            continue
        if len(lots) >= MAX_LOTS:
            truncated = True
            break
        upstream_problems = any(
            (v := ledger.tag(t, as_of=log_size, context=False)) is not None and v.problems
            and v.state.origin is None  # an intermediate lot: its problems break every bag's chain
            for t in view.upstream
        )
        chain_ok = not view.problems and not upstream_problems
        bags = []
        for origin in view.origins:
            bag = view if origin["tag"] == tag else ledger.tag(origin["tag"], as_of=log_size, context=False)
            mass = (_attached_mass(bag) if bag is not None else None) or 0
            complete = bool(chain_ok and bag is not None and not bag.problems)
            bags.append({"tag": origin["tag"], "site": origin["site"], "mineral": origin["mineral"],
                         "attached_at": origin["attached_at"], "attached_mass_g": mass, "complete_chain": complete})
        attached = sum(b["attached_mass_g"] for b in bags)
        final = view.state.mass_g or 0
        by_site: dict[tuple[str, str], dict[str, Any]] = {}
        for b in bags:
            site = registry.orgs.get(b["site"])
            row = by_site.setdefault((b["site"], b["mineral"]), {
                "site": b["site"], "site_name": name(b["site"]), "country": site.country if site else None,
                "mineral": b["mineral"], "bags": 0, "bags_complete_chain": 0, "attached_mass_g": 0,
            })
            row["bags"] += 1
            row["bags_complete_chain"] += b["complete_chain"]
            row["attached_mass_g"] += b["attached_mass_g"]
            site_bags.setdefault(b["site"], []).append((tag, b, b["attached_mass_g"]))
        lots.append({
            "tag": tag,
            "status": str(view.state.status),
            "mass_g": view.state.mass_g,
            "received": received and {**received, "from_name": name(received["from"])},
            "consumed": consumed,
            "minerals": sorted({b["mineral"] for b in bags}),
            "bags": len(bags),
            "bags_complete_chain": sum(1 for b in bags if b["complete_chain"]),
            "chain_complete": bool(bags) and all(b["complete_chain"] for b in bags),
            "problems": list(view.problems),
            "mass_balance": {
                "attached_g": attached,
                "received_g": received["mass_g"] if received else None,
                "final_g": final,
                "consumed_g": consumed["mass_g"] if consumed else None,
                "loss_g": attached - final,
                "loss_ppm": _ppm(attached - final, attached),
            },
            "origins": sorted(by_site.values(), key=lambda r: (r["site"], r["mineral"])),
            "input_bags": bags,
        })

    mines = []
    incidents: list[dict[str, Any]] = []
    for site_id in sorted(site_bags):
        site = registry.orgs.get(site_id)
        entries = site_bags[site_id]
        first = min(parse_time(b["attached_at"]) for _, b, _ in entries)
        book = ledger.site_risk_book(site_id, log_size)
        listed = sorted(incidents_in_window(list(book.incidents.values()), min(first, period.start), at),
                        key=lambda i: (i.occurred_at, i.incident))
        rows = [_incident_row(i, at) for i in listed]
        incidents.extend(rows)
        country = site.country if site else None
        red_flags = sum(1 for r in rows if r["red_flag"])
        mines.append({
            "site": site_id,
            "site_name": name(site_id),
            "country": country,
            "covered_country": country in COVERED_COUNTRIES,
            "cahra": country in COVERED_COUNTRIES or red_flags > 0,
            "gps": site.gps if site else None,
            "operated_by": site.operated_by if site else None,
            "minerals": sorted({b["mineral"] for _, b, _ in entries}),
            "lots": len({lot for lot, _, _ in entries}),
            "bags": len(entries),
            "bags_complete_chain": sum(1 for _, b, _ in entries if b["complete_chain"]),
            "attached_mass_g": sum(m for _, _, m in entries),
            "red_flags": red_flags,
            "red_flags_open": sum(1 for r in rows if r["red_flag"] and r["open_at_end"]),
            "incidents_open": sum(1 for r in rows if r["open_at_end"]),
            "incidents_closed": sum(1 for r in rows if not r["open_at_end"]),
            **_action_counts(rows),
        })
    received_lots = [lot for lot in lots if lot["received"]]
    return {
        "format": REPORT_FORMAT,
        "refiner": {"org": refiner, "name": org.name, "country": org.country, "rmi_cid": org.rmi_cid},
        "period": {"from": format_time(period.start), "to": format_time(period.end)},
        "at": format_time(at),
        "log_size": log_size,
        "truncated": truncated,
        "totals": {
            "lots": len(lots),
            "lots_received": len(received_lots),
            "lots_consumed": sum(1 for lot in lots if lot["consumed"]),
            "received_mass_g": sum(lot["received"]["mass_g"] for lot in received_lots),
            "consumed_mass_g": sum(lot["consumed"]["mass_g"] or 0 for lot in lots if lot["consumed"]),
            "attached_mass_g": sum(lot["mass_balance"]["attached_g"] for lot in lots),
            "bags": sum(lot["bags"] for lot in lots),
            "bags_complete_chain": sum(lot["bags_complete_chain"] for lot in lots),
            "mines": len(mines),
            "mines_in_covered_countries": sum(1 for m in mines if m["covered_country"]),
            "red_flags": sum(m["red_flags"] for m in mines),
            "red_flags_open": sum(m["red_flags_open"] for m in mines),
            "incidents_open": sum(1 for i in incidents if i["open_at_end"]),
            "incidents_closed": sum(1 for i in incidents if not i["open_at_end"]),
            **_action_counts(incidents),
        },
        "lots": lots,
        "mines": mines,
        "incidents": incidents,
    }


# --- flat renderings ---------------------------------------------------------------------------------------


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per lot and mine of origin (and mineral), with the columns `CSV_COLUMNS`."""
    refiner = report["refiner"]
    mines = {m["site"]: m for m in report["mines"]}
    incidents_by_site: dict[str, list[dict[str, Any]]] = {}
    for incident in report["incidents"]:
        incidents_by_site.setdefault(incident["site"], []).append(incident)
    out = []
    for lot in report["lots"]:
        received, consumed = lot["received"] or {}, lot["consumed"] or {}
        for origin in lot["origins"]:
            mine = mines[origin["site"]]
            site_incidents = incidents_by_site.get(origin["site"], [])
            out.append({
                "metal": METALS.get(origin["mineral"], origin["mineral"]),
                "smelter_name": refiner["name"],
                "smelter_country": refiner["country"],
                "smelter_identification": refiner["rmi_cid"],
                "source_of_smelter_identification_number": "RMI" if refiner["rmi_cid"] else None,
                "lot_tag": lot["tag"],
                "received_at": received.get("at"),
                "received_from": received.get("from"),
                "received_from_name": received.get("from_name"),
                "received_mass_g": received.get("mass_g"),
                "consumed_at": consumed.get("at"),
                "consumed_mass_g": consumed.get("mass_g"),
                "lot_mass_g": lot["mass_g"],
                "lot_status": lot["status"],
                "mine_id": origin["site"],
                "mine_name": origin["site_name"],
                "mine_country": origin["country"],
                "covered_country": mine["covered_country"],
                "cahra": mine["cahra"],
                "mineral": origin["mineral"],
                "bags": origin["bags"],
                "bags_complete_chain": origin["bags_complete_chain"],
                "attached_mass_g": origin["attached_mass_g"],
                "red_flags": mine["red_flags"],
                "incidents_open": mine["incidents_open"],
                "incidents_closed": mine["incidents_closed"],
                **_action_counts(site_incidents),
            })
    return out


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def csv_text(report: dict[str, Any]) -> str:
    """The rows as CSV (RFC 4180, CRLF line ends, a header of `CSV_COLUMNS`; empty for none; `yes`/`no`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows(report):
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()
