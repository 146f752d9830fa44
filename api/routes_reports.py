"""GET /v1/reports/due-diligence/{tag_id}: the buyer's due-diligence report (protocol 16.7), JSON or printable HTML.

Public, like the tag view it is built from: it shows only what the signed log shows (sealed incident details
are never in it). `?format=html` or an `Accept` that prefers `text/html` gives the printable document.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from api.page import TEMPLATES, maybe_gzip
from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.routes_tags import TAG_ID
from api.read_routing import reading
from ledger.dd_report import due_diligence_report
from ledger.service import Ledger

router = APIRouter(tags=["reports"], dependencies=PARAMETER_CHECKS)


def _wants_html(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "html"
    accept = request.headers.get("accept", "")
    html, json_ = accept.find("text/html"), accept.find("application/json")
    return html != -1 and (json_ == -1 or html < json_)


@router.get(
    "/v1/reports/due-diligence/{tag_id}",
    summary="Due-diligence report for a lot, a shipment or a bag",
    description=(
        "Every input bag with its origin site, the custody chain, the mass balance, the risk context of the "
        "origin sites (incidents and corrective actions), the fraud flags, and the proofs (envelopes, keys, "
        "inclusion proofs against the signed checkpoint). `format=html` for a printable document."
    ),
    responses=responses(400, 404, 503),
)
async def get_report(
    tag_id: str,
    request: Request,
    as_of: int | None = Query(None, ge=1, le=2**63 - 1),
    format: str | None = Query(None, pattern="^(json|html)$"),
) -> Any:
    ledger: Ledger = reading(request)
    normalised = tag_id.strip().upper() if tag_id.isascii() else tag_id
    if not TAG_ID.fullmatch(normalised):
        return problem(400, "tag.invalid_id", f"{tag_id!r} is not a tag id", field="/tag_id")
    try:
        report = await run_in_threadpool(lambda: due_diligence_report(ledger, normalised, as_of=as_of))
    except PersistenceError:
        return problem(503, "store.unavailable", "the ledger's store did not answer; try again")
    if report is None:
        return problem(404, "tag.unknown", f"no tag {normalised} was ever issued by this ledger")
    if not _wants_html(request, format):
        return report
    body = TEMPLATES.get_template("dd_report.html").render(r=report).encode("utf-8")
    payload, compressed = maybe_gzip(body, request.headers.get("accept-encoding"))
    headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
               "X-Content-Type-Options": "nosniff", "Vary": "Accept, Accept-Encoding"}
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return HTMLResponse(payload, headers=headers)
