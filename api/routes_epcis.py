"""GS1 EPCIS 2.0: the ledger's custody events as an EPCIS document (docs/protocol.md section 17). No credentials.

    GET /v1/epcis/events        a page of events as an `EPCISDocument` (JSON-LD), EPCIS query parameters
    GET /orgs/{org_id}          an organisation's EPCIS identifier: redirects to GET /v1/orgs/{org_id}
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse

from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.read_routing import reading
from ledger import epcis
from ledger.service import Ledger
from verification.encoding import format_time, is_org_id

router = APIRouter(tags=["epcis"], dependencies=PARAMETER_CHECKS)

_PARAMETERS_DOC = [
    {"name": "eventType", "in": "query", "schema": {"type": "string"},
     "description": "EPCIS event types (`ObjectEvent`, `TransformationEvent`, ...): repeat or separate with `|`."},
    *({"name": name, "in": "query", "schema": {"type": "string", "format": "date-time"},
       "description": f"Only events whose {'event' if 'event' in name else 'record'} time is "
                      f"{'at or after' if name.startswith('GE') else 'before'} this RFC 3339 time."}
      for name in ("GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime")),
    *({"name": name, "in": "query", "schema": {"type": "string"},
       "description": f"Tags (ids or `{{base}}/t/{{tag}}` URIs) in the event's {where}: repeat or separate with `|`."}
      for name, where in (("MATCH_epc", "`epcList`"), ("MATCH_inputEPC", "`inputEPCList`"),
                          ("MATCH_outputEPC", "`outputEPCList`"), ("MATCH_anyEPC", "EPC lists"))),
    {"name": "EQ_bizStep", "in": "query", "schema": {"type": "string"},
     "description": "Business steps (CBV names or URIs): repeat or separate with `|`."},
    {"name": "perPage", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": epcis.PER_PAGE_MAX, "default": epcis.PER_PAGE_DEFAULT},
     "description": "At most this many events per page."},
    {"name": "nextPageToken", "in": "query", "schema": {"type": "string"},
     "description": "The token of the previous page (`Link: <...>; rel=\"next\"`, or `tl:nextPageToken`)."},
]


@router.get(
    "/v1/epcis/events",
    summary="Export custody events as GS1 EPCIS 2.0",
    description=(
        "The ledger's custody events (attach, dispatch, receipt, lots formed and split, consumption at the refiner, "
        "voiding, scans) in log order as an EPCIS 2.0 `EPCISDocument` (JSON-LD, valid against GS1's JSON Schema), "
        "with master data for the organisations named (refiners with their RMI smelter id). Every event carries "
        "its log position, envelope hash and signer (`tl:` extension) to go back to the signed original. A page "
        f"examines at most {epcis.SCAN_LIMIT} log entries: it can hold fewer than `perPage` events and still have "
        "a next page; follow `Link: <...>; rel=\"next\"` until there is none. See docs/protocol.md section 17."
    ),
    responses={200: {"description": "An EPCIS document", "content": {epcis.MEDIA_TYPE: {"schema": {"type": "object"}}}},
               **responses(400)},
    openapi_extra={"parameters": _PARAMETERS_DOC},
)
def export_events(request: Request) -> Any:
    # a plain function: FastAPI runs it in its thread pool, so the store is never read on the event loop
    ledger: Ledger = reading(request)
    try:
        query = epcis.parse_query(request.query_params.multi_items(), log_size=ledger.store.size())
    except epcis.QueryError as error:
        return problem(400, "epcis.query_parameter", error.message, field=f"/{error.parameter}")
    ids = epcis.Identifiers(request.app.state.public_base_url)
    orgs = ledger.registry().orgs
    page = epcis.export_page(ledger.store, query, ids=ids, orgs=orgs)
    ctx = epcis.Context(ids=ids, orgs=orgs)
    body = epcis.document(page.events, ctx, creation_date=format_time(datetime.now(timezone.utc)),
                          next_page_token=page.next_page_token)
    headers = {"GS1-EPCIS-Version": epcis.SCHEMA_VERSION, "GS1-CBV-Version": "2.0", "X-Log-Size": str(page.log_size)}
    if page.next_page_token is not None:
        headers["Link"] = f'<{request.url.include_query_params(nextPageToken=page.next_page_token)}>; rel="next"'
    return JSONResponse(body, media_type=epcis.MEDIA_TYPE, headers=headers)


@router.get(
    "/orgs/{org_id}",
    summary="Resolve an organisation's EPCIS identifier",
    description="EPCIS events name organisations `{base}/orgs/{org_id}`; this redirects to `GET /v1/orgs/{org_id}`.",
    status_code=307,
    responses={307: {"description": "Redirect to the organisation's record"}, **responses(400)},
)
def resolve_org(org_id: str) -> Any:
    if not is_org_id(org_id):
        return problem(400, "org.invalid_id", f"{org_id!r} is not an organisation id", field="/org_id")
    return RedirectResponse(f"/v1/orgs/{org_id}", status_code=307)
