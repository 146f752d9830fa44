"""GET /v1/reports/due-diligence/{tag_id}: the buyer's due-diligence report (protocol 16.7), JSON, printable HTML
or PDF.

Public, like the tag view it is built from: it shows only what the signed log shows (sealed incident details
are never in it). `?format=html` (or an `Accept` that prefers `text/html`) gives the printable document,
`?format=pdf` (or `Accept: application/pdf`) the same laid out as a PDF; `?lang=` (or `Accept-Language`) picks
its language. The document is made by api.report_page.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from api.i18n import negotiate
from api.page import maybe_gzip
from api.report_page import render_pdf, render_report
from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.routes_tags import TAG_ID
from api.read_routing import reading
from ledger.dd_report import due_diligence_report
from ledger.service import Ledger

router = APIRouter(tags=["reports"], dependencies=PARAMETER_CHECKS)
log = logging.getLogger("tagledger.reports")
PDF_SLOTS = threading.BoundedSemaphore(1)
"""Laying a report out as a PDF takes seconds of CPU (bench/dd_report_costs.py): one at a time per process, a
second request meanwhile is answered 503 `report.busy` with Retry-After, so PDFs cannot starve the ledger."""


def _wanted(request: Request, format: str | None) -> str:
    if format is not None:
        return format
    accept = request.headers.get("accept", "")
    found = {kind: accept.find(media) for kind, media in
             (("html", "text/html"), ("json", "application/json"), ("pdf", "application/pdf"))}
    listed = {kind: at for kind, at in found.items() if at != -1}
    return min(listed, key=listed.__getitem__) if listed else "json"


@router.get(
    "/v1/reports/due-diligence/{tag_id}",
    summary="Due-diligence report for a lot, a shipment or a bag",
    description=(
        "Every input bag with its origin site, the custody chain, the mass balance, the risk context of the "
        "origin sites (incidents and corrective actions), the fraud flags, and the proofs (envelopes, keys, "
        "inclusion proofs against the signed checkpoint). `format=html` for a printable document, `format=pdf` for "
        "the same as a PDF, `lang=en|fr|sw` for its language."
    ),
    responses={**responses(400, 404, 503), 200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}}},
)
async def get_report(
    tag_id: str,
    request: Request,
    as_of: int | None = Query(None, ge=1, le=2**63 - 1),
    format: str | None = Query(None, pattern="^(json|html|pdf)$"),
    lang: str | None = Query(None, pattern="^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})?$"),
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
    wanted = _wanted(request, format)
    if wanted == "json":
        return report
    language = negotiate(request.headers.get("accept-language"), lang)
    document = render_report(report, language)
    headers = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
               "X-Content-Type-Options": "nosniff", "Vary": "Accept, Accept-Encoding, Accept-Language",
               "Content-Language": language}
    if wanted == "pdf":
        if not PDF_SLOTS.acquire(blocking=False):  # a PDF costs seconds of CPU: one at a time per process
            response = problem(503, "report.busy", "this server is making another PDF; try again in a few seconds, "
                               "or print the HTML form (format=html)")
            response.headers["Retry-After"] = "5"
            return response
        try:
            pdf = await run_in_threadpool(render_pdf, document)
        except (ImportError, OSError):  # WeasyPrint without its system libraries (pango): `make pdfdeps`
            log.exception("the PDF renderer is not available")
            return problem(503, "report.pdf_unavailable", "this server cannot make PDFs now (its PDF renderer's "
                           "libraries are missing); the HTML form (format=html) prints the same document")
        finally:
            PDF_SLOTS.release()
        headers["Content-Disposition"] = f'inline; filename="due-diligence-{normalised}-{language}.pdf"'
        return Response(pdf, media_type="application/pdf", headers=headers)
    payload, compressed = maybe_gzip(document.encode("utf-8"), request.headers.get("accept-encoding"))
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return HTMLResponse(payload, headers=headers)
