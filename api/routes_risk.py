"""Risk and remediation (docs/protocol.md section 16): incidents, their sealed details, a site's risk.

    PUT /v1/incidents/{incident_id}/details   upload the sealed details whose hash the report signed (16.2)
    PUT /v1/incidents/{incident_id}/evidence/{sha256}   upload an evidence file a signed event names (16.2)
    GET /v1/incidents/{incident_id}/evidence/{sha256}   the file, for authorised readers only (16.4)
    GET /v1/incidents/{incident_id}           the incident's public form; its details for authorised readers (16.4)
    GET /v1/sites/{site_id}/risk              a site's risk status, incidents, monitoring and monthly trend (16.5)

Reads need no credentials; a request signed with `Authorization: Tagledger-Signature ...` (`api.read_auth`) by
an authorised reader also gets the sealed details. Every answer names `access` and `reader`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.body import BadBody, read_bytes, read_json
from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.read_auth import Unauthenticated, authenticate
from api.read_routing import reading
from domain.read_access import Reader, may_read_details, sees_every_incident_of
from domain.risk import IncidentState
from domain.roles import Role
from domain.site_risk import monthly_trend, status_at, visit_json
from ledger.service import DetailsRefused, Ledger
from verification.encoding import format_time

router = APIRouter(tags=["risk"], dependencies=PARAMETER_CHECKS)

INCIDENT_ID = re.compile(r"[A-Z0-9][A-Z0-9-]{2,39}", re.ASCII)
ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,39}", re.ASCII)
MAX_DETAILS_BYTES = 64 * 1024
MAX_EVIDENCE_BYTES = 10 << 20
"""An evidence file (a photo from a phone, a scanned statement): at most 10 MiB."""
SHA256_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
"""A sealed-details body: two texts of at most 4,000 characters (each at most 6 bytes escaped), salt, GPS."""
SITE_RISK = "tagledger/site-risk/v1"
INCIDENT_VIEW = "tagledger/incident/v1"
AS_OF = Query(None, ge=1, le=2**63 - 1, description="The view as the log stood when it held its first `as_of` "
                                                      "entries; T is then the `received` of entry `as_of` - 1.")
SIGNED_READ = (
    " Without credentials the answer is public (`access` = `public`). Sign the request with `Authorization: "
    'Tagledger-Signature org="...", key="...", time="...", sig="..."` (protocol 16.4) to be shown, as an '
    "authorised reader, the sealed details (`details`); a bad signature is 401 `read.unauthenticated`."
)

DETAILS_SCHEMA = {
    "type": "object",
    "required": ["v", "salt", "description"],
    "additionalProperties": False,
    "properties": {
        "v": {"const": 1},
        "salt": {"type": "string", "description": "base64url (no padding) of 16 to 64 random bytes"},
        "description": {"type": "string", "minLength": 1, "maxLength": 4000},
        "gps": {"type": "object", "required": ["lat", "lon"], "additionalProperties": False,
                "properties": {"lat": {"type": "string"}, "lon": {"type": "string"}}},
        "notes": {"type": "string", "minLength": 1, "maxLength": 4000},
    },
}


def _private(document: dict[str, Any], reader: Reader | None) -> JSONResponse:
    """The answer, never stored by a shared cache once it depends on who signed."""
    cache = "private, no-store" if reader is not None else "no-cache"
    return JSONResponse(document, headers={"Cache-Control": cache, "Vary": "Authorization"})


def _as_of(ledger: Ledger, as_of: int | None) -> tuple[int | None, JSONResponse | None]:
    """The log size the view reflects (the current size without `as_of`), or a 400 `log.range`."""
    size = ledger.store.size()
    if as_of is None:
        return size, None
    if as_of > size:
        return None, problem(400, "log.range", f"the log has {size} entries, not {as_of}", field="/as_of", size=size)
    return as_of, None


def _reader_and_size(request: Request, ledger: Ledger,
                     as_of: int | None) -> tuple[Reader | None, int] | JSONResponse:
    """Who signed the read (None: a public read) and the log size the view reflects; or the 401/400 answer."""
    try:
        reader = authenticate(request, ledger.registry(), ledger.view_time())
    except Unauthenticated as refused:
        return refused.response()
    size, bad = _as_of(ledger, as_of)
    if bad is not None:
        return bad
    assert size is not None
    return reader, size


def _access(reader: Reader | None, authorised: bool) -> dict[str, Any]:
    return {"access": "authorised" if authorised else "public", "reader": reader.org if reader else None}


def _incident_json(ledger: Ledger, incident: IncidentState, at: datetime, show_details: bool) -> dict[str, Any]:
    document = incident.public_json(at)
    if show_details:
        document["details"] = ledger.sealed_details(incident.incident)
        document["evidence_files"] = [{"sha256": digest, "media_type": media, "size": size, "stored_at": at}
                                      for digest, media, size, at in ledger.store.sealed_evidence_list(
                                          incident.incident)]
    return document


# --- sealed details --------------------------------------------------------------------------------------


@router.put(
    "/v1/incidents/{incident_id}/details",
    summary="Upload an incident's sealed details",
    description=(
        "The body is the sealed-details object `{v, salt, description, gps?, notes?}` (protocol 16.2) whose "
        "`sha256_hex(jcs(details))` the signed `incident_reported` committed to (`data.details.sha256`). No "
        "credentials: only those exact bytes are accepted. 200 the first and every later time; 409 "
        "`details.mismatch` if the hash differs; 404 `incident.unknown`; 400 `details.malformed` if the object "
        f"is not of that form. The ledger keeps them outside the log, append-only. At most {MAX_DETAILS_BYTES} "
        "bytes."
    ),
    responses={200: {"description": "Stored (or stored already): `{incident, details_sha256}`"},
               **responses(400, 404, 409, 413, 415, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": DETAILS_SCHEMA}}}},
)
async def put_details(incident_id: str, request: Request) -> Any:
    ledger: Ledger = request.app.state.ledger
    if not INCIDENT_ID.fullmatch(incident_id):
        return problem(400, "incident.invalid_id", f"{incident_id!r} is not an incident id (A-Z, 0-9 and '-', 3 to "
                                                   "40 characters)", field="/incident_id")
    try:
        details = await read_json(request, limit=MAX_DETAILS_BYTES)
    except BadBody as bad:
        return problem(bad.status, bad.rule, bad.detail)
    try:
        digest = await run_in_threadpool(ledger.put_sealed_details, incident_id, details)
    except DetailsRefused as refused:
        return problem(refused.status, refused.rule, refused.detail, **refused.extra)
    return {"incident": incident_id, "details_sha256": digest}


# --- sealed evidence files ----------------------------------------------------------------------------------


def _evidence_path_problem(incident_id: str, sha256: str) -> JSONResponse | None:
    if not INCIDENT_ID.fullmatch(incident_id):
        return problem(400, "incident.invalid_id", f"{incident_id!r} is not an incident id (A-Z, 0-9 and '-', 3 to "
                                                   "40 characters)", field="/incident_id")
    if not SHA256_HEX.fullmatch(sha256):
        return problem(400, "evidence.invalid_hash", f"{sha256!r} is not a SHA-256 in lowercase hex (64 characters)",
                       field="/sha256")
    return None


@router.put(
    "/v1/incidents/{incident_id}/evidence/{sha256}",
    summary="Upload an evidence file that a signed event of the incident names",
    description=(
        "The body is the file itself (a photo, a statement), with `Content-Type` the media type the signed event "
        "gives it; `sha256` is its SHA-256 in lowercase hex, as an `evidence` item of a signed event of the "
        "incident names it (protocol 16.2). No credentials: only those exact bytes are accepted. 200 "
        "`{incident, sha256, media_type, size, stored}` (`stored` false when it was there already); 404 "
        "`incident.unknown`, `evidence.unknown` (no signed event names it); 409 `evidence.mismatch`; 415 "
        f"`evidence.media_type`; 413 beyond {MAX_EVIDENCE_BYTES} bytes. Kept outside the log, append-only, shown "
        "only to authorised readers."
    ),
    responses={200: {"description": "Stored, or stored already"}, **responses(400, 404, 409, 413, 415, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {"*/*": {"schema": {"type": "string",
                                                                                       "format": "binary"}}}}},
)
async def put_evidence(incident_id: str, sha256: str, request: Request) -> Any:
    ledger: Ledger = request.app.state.ledger
    bad = _evidence_path_problem(incident_id, sha256)
    if bad is not None:
        return bad
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        data = await read_bytes(request, MAX_EVIDENCE_BYTES)
    except BadBody as refused:
        return problem(refused.status, refused.rule, refused.detail)
    try:
        stored = await run_in_threadpool(ledger.put_sealed_evidence, incident_id, sha256, media_type, data)
    except DetailsRefused as refused:
        return problem(refused.status, refused.rule, refused.detail, **refused.extra)
    return {"incident": incident_id, "sha256": sha256, "media_type": media_type, "size": len(data), "stored": stored}


@router.get(
    "/v1/incidents/{incident_id}/evidence/{sha256}",
    summary="An evidence file of an incident, for authorised readers",
    description=(
        "The file uploaded with `PUT`, with its media type, to an authorised reader of the incident's sealed "
        "details (protocol 16.4): sign the request with `Authorization: Tagledger-Signature ...`. 401 "
        "`read.unauthenticated` (no or a bad signature), 403 `read.forbidden` (not an authorised reader), 404 "
        "`incident.unknown` or `evidence.unknown` (not uploaded)."
    ),
    responses={200: {"content": {"application/octet-stream": {}}}, **responses(400, 401, 403, 404)},
)
def get_evidence(incident_id: str, sha256: str, request: Request) -> Any:
    ledger: Ledger = request.app.state.ledger
    bad = _evidence_path_problem(incident_id, sha256)
    if bad is not None:
        return bad
    found = _reader_and_size(request, ledger, None)
    if isinstance(found, JSONResponse):
        return found
    reader, _ = found
    if reader is None:
        return problem(401, "read.unauthenticated", "evidence files are shown only to authorised readers: sign the "
                                                    "request (Authorization: Tagledger-Signature, protocol 16.4)")
    incident = ledger.risk_book([f"incident:{incident_id}"]).incidents.get(incident_id)
    if incident is None:
        return problem(404, "incident.unknown", f"no incident {incident_id} was reported")
    if not may_read_details(reader, incident):
        return problem(403, "read.forbidden", f"{reader.org} is not an authorised reader of {incident_id}'s sealed "
                                              "details")
    evidence = ledger.sealed_evidence(incident_id, sha256)
    if evidence is None:
        return problem(404, "evidence.unknown", f"no evidence file {sha256} of {incident_id} was uploaded")
    return Response(evidence.data, media_type=evidence.media_type,
                    headers={"Cache-Control": "private, no-store", "Vary": "Authorization",
                             "X-Content-Type-Options": "nosniff",
                             "Content-Disposition": f'attachment; filename="{incident_id}-{sha256[:16]}"'})


# --- one incident ----------------------------------------------------------------------------------------


@router.get(
    "/v1/incidents/{incident_id}",
    summary="An incident: its public form, and its sealed details for authorised readers",
    description=(
        f"`{INCIDENT_VIEW}`: every member of the public form of protocol 16.5 (status, severity, red flag, Annex "
        "II risks, corrective actions with `overdue` at T, events), with `at` (T), `as_of`, `access` and "
        "`reader`; authorised readers (16.4) also get `details` (null until uploaded). 404 `incident.unknown`."
        + SIGNED_READ
    ),
    responses=responses(400, 401, 404),
)
def get_incident(incident_id: str, request: Request, as_of: int | None = AS_OF) -> Any:
    ledger: Ledger = reading(request)
    if not INCIDENT_ID.fullmatch(incident_id):
        return problem(400, "incident.invalid_id", f"{incident_id!r} is not an incident id (A-Z, 0-9 and '-', 3 to "
                                                   "40 characters)", field="/incident_id")
    found = _reader_and_size(request, ledger, as_of)
    if isinstance(found, JSONResponse):
        return found
    reader, size = found
    stream = f"incident:{incident_id}"
    incident = ledger.risk_book([stream], size).incidents.get(incident_id)
    if incident is None:
        when = "" if as_of is None else f" in the first {as_of} entries of the log"
        return problem(404, "incident.unknown", f"no incident {incident_id} was reported{when}")
    at = ledger.view_time(as_of)
    # who may read is a question about the present (an action owner assigned later is an owner now)
    current = incident if as_of is None else ledger.risk_book([stream]).incidents[incident_id]
    authorised = may_read_details(reader, current)
    document = {"format": INCIDENT_VIEW, **_incident_json(ledger, incident, at, authorised),
                "at": format_time(at), "as_of": size, **_access(reader, authorised)}
    return _private(document, reader)


# --- a site's risk ---------------------------------------------------------------------------------------


@router.get(
    "/v1/sites/{site_id}/risk",
    summary="A mine site's risk status, incidents, monitoring and monthly trend",
    description=(
        f"`{SITE_RISK}` (protocol 16.5): `status` red (an open red flag), amber (an open incident or an overdue "
        "action) or green at T; the site's incidents and its monitoring records, newest first; one row per month "
        "of the trend. T is the ledger's clock, or with `as_of` the `received` of entry `as_of` - 1. 404 "
        "`site.unknown` for an organisation that is not a mine site." + SIGNED_READ
    ),
    responses=responses(400, 401, 404),
)
def get_site_risk(site_id: str, request: Request, as_of: int | None = AS_OF) -> Any:
    ledger: Ledger = reading(request)
    if not ORG_ID.fullmatch(site_id):
        return problem(400, "site.invalid_id", f"{site_id!r} is not an organisation id", field="/site_id")
    found = _reader_and_size(request, ledger, as_of)
    if isinstance(found, JSONResponse):
        return found
    reader, size = found
    registry = ledger.registry()
    org = registry.orgs.get(site_id)
    if org is None or org.role != Role.SITE or org.registered_seq >= size:
        when = "" if as_of is None else f" in the first {as_of} entries of the log"
        return problem(404, "site.unknown", f"{site_id} is not a registered mine site{when}")
    at = ledger.view_time(as_of)
    book = ledger.site_risk_book(site_id, size)
    incidents = sorted(book.incidents.values(), key=lambda i: i.reported_seq, reverse=True)
    visits = sorted(book.visits.get(site_id, []), key=lambda v: v.ref.seq)  # log order: a period's last wins
    if sees_every_incident_of(reader, site_id) or reader is None:
        allowed = {i.incident for i in incidents} if reader is not None else set()
    else:  # who may read is a question about the present (an action owner assigned later is an owner now)
        current = book if as_of is None else ledger.site_risk_book(site_id)
        allowed = {i.incident for i in incidents if may_read_details(reader, current.incidents[i.incident])}
    status = status_at(incidents, at)
    authorised = sees_every_incident_of(reader, site_id) or bool(allowed)
    document = {
        "format": SITE_RISK,
        "site": {"org": org.id, "name": org.name, "country": org.country, "gps": org.gps,
                 "capacity_kg_per_month": org.capacity_kg_per_month, "operated_by": org.operated_by},
        "at": format_time(at),
        "as_of": size,
        **_access(reader, authorised),
        "status": status.status,
        "open_red_flags": status.open_red_flags,
        "open_incidents": status.open_incidents,
        "overdue_actions": status.overdue_actions,
        "incidents": [_incident_json(ledger, i, at, i.incident in allowed) for i in incidents],
        "monitoring": [visit_json(v) for v in reversed(visits)],
        "months": monthly_trend(incidents, visits, at),
    }
    return _private(document, reader)
