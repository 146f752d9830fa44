"""GET /v1/reports/rmap/{refiner}: the refiner's RMAP input report (protocol section 21), as JSON, CSV or XLSX.

Public, like the tag views it is built from (`ledger.rmap_report`). The CSV keeps stable machine column names
(`CSV_COLUMNS`), whatever the reader's language, so that a spreadsheet or a script reads every report alike; the
XLSX is for people: its header row and its coded values (metal, yes/no, incident category and status) are in
the reader's language (`lang=`, else `Accept-Language`: English, French or Swahili), the CMRT's own English
headings where the column is one of the CMRT's.
"""

from __future__ import annotations

import io
import re
from typing import Any

from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.i18n import CATALOGUE, DEFAULT, Messages, negotiate
from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.read_routing import reading
from ledger import rmap_report
from ledger.service import Ledger

router = APIRouter(tags=["reports"], dependencies=PARAMETER_CHECKS)

ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,39}", re.ASCII)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

MINE_COLUMNS = ("site", "site_name", "country", "covered_country", "cahra", "minerals", "lots", "bags",
                "bags_complete_chain", "attached_mass_g", "red_flags", "red_flags_open", "incidents_open",
                "incidents_closed", "actions_open", "actions_overdue", "actions_implemented", "actions_cancelled")
INCIDENT_COLUMNS = ("id", "site", "category", "severity", "red_flag", "status", "open_at_end", "occurred_at",
                    "resolved_at", "action", "owner", "description", "due", "action_status", "overdue")


def _label(t: Messages, key: str) -> str:
    """A catalogue text as it is (cells are not HTML: no escaping)."""
    return t._table.get(key) or CATALOGUE[DEFAULT][key]


def _text(t: Messages, column: str, value: Any) -> Any:
    """A cell as people read it: yes/no, a mineral, an incident's category or status in words."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return _label(t, "rmap_yes" if value else "rmap_no")
    if column == "mineral" or column == "minerals":
        return ", ".join(t.mineral(m) for m in value) if isinstance(value, list) else t.mineral(value)
    if column == "category":
        return t.term("risk_cat", value)
    if column == "severity":
        return t.term("risk_sev", value)
    if column in ("status", "action_status", "lot_status"):
        return t.term("rmap_status", value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value


def _sheet(book: Any, title: str, t: Messages, columns: tuple[str, ...], records: list[dict[str, Any]]) -> None:
    from openpyxl.cell.cell import TYPE_STRING
    from openpyxl.styles import Font

    sheet = book.create_sheet(title)
    sheet.append([_label(t, f"rmap_col_{c}") for c in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for record in records:
        sheet.append([_text(t, c, record.get(c)) for c in columns])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = TYPE_STRING  # a name is text, never a formula
    sheet.freeze_panes = "A2"


def xlsx_bytes(report: dict[str, Any], lang: str) -> bytes:
    """The report as an XLSX workbook: sheets of the lots by mine (the CSV's rows), the mines, the incidents with
    their corrective actions (one row per action), with headings and codes in `lang`."""
    from openpyxl import Workbook

    t = Messages(lang)
    book = Workbook()
    book.remove(book.active)
    _sheet(book, _label(t, "rmap_sheet_lots"), t, rmap_report.CSV_COLUMNS, rmap_report.rows(report))
    _sheet(book, _label(t, "rmap_sheet_mines"), t, MINE_COLUMNS, report["mines"])
    incident_rows = []
    for incident in report["incidents"]:
        for action in incident["actions"] or [{}]:
            category = incident["category"] + ("_worst_forms" if incident["worst_forms"] else "")
            incident_rows.append({**incident, "category": category, "action": action.get("action"), "owner": action.get("owner"),
                                  "description": action.get("description"), "due": action.get("due"),
                                  "action_status": action.get("status"), "overdue": action.get("overdue")})
    _sheet(book, _label(t, "rmap_sheet_incidents"), t, INCIDENT_COLUMNS, incident_rows)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@router.get(
    "/v1/reports/rmap/{refiner}",
    summary="The refiner's RMAP input report over a period",
    description=(
        "Every lot or bag the refiner received or consumed in the period (`from` and `to` are days, both "
        "included, UTC), by mine of origin: site, country, Covered Country, red flags, mineral, masses, bags with a "
        "complete signed chain of custody, mass balance, the incidents of the origin sites and their corrective "
        "actions (protocol section 21). `format=csv` (stable machine column names) or `format=xlsx` (headings "
        "in the reader's language, `lang=` or Accept-Language)."
    ),
    responses=responses(400, 404, 503),
)
async def get_rmap_report(
    refiner: str,
    request: Request,
    start: str = Query(..., alias="from", max_length=10, description="first day, YYYY-MM-DD (UTC)"),
    end: str = Query(..., alias="to", max_length=10, description="last day, YYYY-MM-DD (UTC), included"),
    format: str = Query("json", pattern="^(json|csv|xlsx)$"),
    lang: str | None = Query(None, max_length=35),
) -> Any:
    ledger: Ledger = reading(request)
    if not ORG_ID.fullmatch(refiner):
        return problem(400, "org.invalid_id", f"{refiner!r} is not an organisation id", field="/refiner")
    try:
        period = rmap_report.parse_period(start, end)
    except rmap_report.PeriodError as error:
        return problem(400, "report.invalid_period", str(error), field=f"/{error.field}")
    try:
        report = await run_in_threadpool(lambda: rmap_report.rmap_input_report(ledger, refiner, period))
    except PersistenceError:
        return problem(503, "store.unavailable", "the ledger's store did not answer; try again")
    if report is None:
        return problem(404, "org.unknown_refiner", f"no smelter or refiner {refiner} is registered in this ledger")
    if format == "json":
        return report
    name = f"rmap-{refiner}-{start}-{end}"
    if format == "csv":
        return Response(rmap_report.csv_text(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    lang_code = negotiate(request.headers.get("accept-language"), lang)
    body = await run_in_threadpool(lambda: xlsx_bytes(report, lang_code))
    return Response(body, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"',
                                                    "Content-Language": lang_code, "Vary": "Accept-Language"})
