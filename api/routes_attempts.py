"""GET /v1/log/refused-attempts: every signed envelope the ledger refused because its tag's life was over.

They are not part of the log (the ledger said no), but they are evidence of reused tags (docs/protocol.md 9.1),
so they are published whole, with the standing of their actor, for an auditor to check against its own replay
(`verification/refused_attempts.py`, a step of `tagledger audit`). No credentials needed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from api.parameters import PARAMETER_CHECKS
from api.problems import responses
from api.read_routing import reading
from ledger.service import Ledger

router = APIRouter(tags=["log"], dependencies=PARAMETER_CHECKS)

MAX_ATTEMPTS = 1000


@router.get(
    "/v1/log/refused-attempts",
    summary="The refused attempts kept as evidence of reused tags, with their standing",
    description=(
        "Pages of `{number, tag, rule, received, log_size, hash, envelope, standing, counted}`, in the order "
        f"refused, at most {MAX_ATTEMPTS} per page. `next` is the `after` of the next page, or null at the end. "
        "docs/protocol.md 9.1 says what `standing` means and how to check it."
    ),
    responses=responses(400),
)
async def refused_attempts(request: Request, after: int = Query(0, ge=0, le=2**62),
                           limit: int = Query(MAX_ATTEMPTS, ge=1, le=MAX_ATTEMPTS)) -> Any:
    ledger: Ledger = reading(request)
    page = await run_in_threadpool(ledger.refused_attempts, after, limit)
    attempts = [{"number": number, **judged.to_json()} for number, judged in page]
    return {"attempts": attempts, "next": page[-1][0] if len(page) == limit else None}
