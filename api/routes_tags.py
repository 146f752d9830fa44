"""GET /v1/tags/{tag_id}: the public, unauthenticated verification of a tag."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.schemas import TagViewOut
from api.read_routing import reading
from ledger.service import Ledger
from domain.custody import Status
from ledger.views import kilograms, tag_document

router = APIRouter(tags=["verify"], dependencies=PARAMETER_CHECKS)
TAG_ID = re.compile(r"[A-Z0-9][A-Z0-9-]{2,39}")


@router.get(
    "/v1/tags/{tag_id}",
    response_model=TagViewOut,
    summary="Verify a tag",
    description=(
        "The tag's verified history: a verdict, its custody state, where its ore was mined, and every event "
        "with its envelope, hash and signer key, so that you can check it yourself. 404 with verdict `unknown` "
        "if the tag was never issued."
    ),
    responses=responses(400, 404),
)
async def get_tag(
    tag_id: str,
    request: Request,
    as_of: int | None = Query(None, ge=1, le=2**63 - 1,
                              description="The tag as it stood when the log held its first `as_of` entries."),
) -> Any:
    ledger: Ledger = reading(request)
    normalised = tag_id.strip().upper() if tag_id.isascii() else tag_id
    if not TAG_ID.fullmatch(normalised):
        return problem(400, "tag.invalid_id", f"{tag_id!r} is not a tag id (A-Z, 0-9 and '-', 3 to 40 characters)",
                       field="/tag_id")
    view = await run_in_threadpool(lambda: ledger.tag(normalised, as_of=as_of))
    if view is None:
        when = "" if as_of is None else f" in the first {as_of} entries of the log"
        return problem(404, "tag.unknown", f"no tag {normalised} was ever issued by this ledger{when}",
                       verdict={"code": "unknown", "authentic": False,
                                "summary": "Unknown: this tag was never issued. Treat the material as untraced."})
    return tag_document(view, view.registry or ledger.registry())


@router.get(
    "/v1/tags",
    summary="List tags from the custody projection",
    description=(
        "Tags by holder and/or status, from the custody projection (rebuilt from the log, see "
        "`tagledger projection`). `projection_position` says how far into the log it has read. Page with `after`."
    ),
    responses=responses(400),
)
def list_tags(request: Request, holder: str | None = None, status: str | None = None,
              limit: int = Query(100, ge=1, le=1000), after: str = "") -> Any:
    ledger: Ledger = reading(request)
    projection = ledger.projection or ledger.start_projection()
    if status is not None and status not in {s.value for s in Status}:
        return problem(400, "request.invalid", f"unknown status {status!r}", field="/status")
    position = projection.position()  # before the rows: they are at least this recent
    tags = projection.query(holder=holder, status=status, limit=limit, after=after)
    return {
        "projection_position": position,
        "tags": [{**t, "mass_kg": kilograms(t["mass_g"])} for t in tags],
        "next": tags[-1]["tag"] if len(tags) == limit else None,
    }


@router.get("/v1/stats", summary="Counts of tags by status (from the custody projection)")
def stats(request: Request) -> Any:
    ledger: Ledger = reading(request)
    projection = ledger.projection or ledger.start_projection()
    return {"entries": ledger.store.size(), "projection_position": projection.position(),
            "tags_by_status": projection.counts_by_status()}
