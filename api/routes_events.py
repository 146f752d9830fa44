"""POST /v1/events: submit one signed envelope; POST /v1/events/batch: many, each judged on its own."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.body import BadBody, read_json
from api.parameters import PARAMETER_CHECKS
from api.problems import from_violation, problem, responses, violation_status
from api.schemas import ENVELOPE_SCHEMA, BatchResult, ReceiptOut
from api.store_failures import failure_item, failure_problem, timed_out
from domain.errors import RuleViolation
from ledger.service import Ledger
from ledger.write_outcomes import RETRY_AFTER_SECONDS, StorageFailure

router = APIRouter(tags=["write"], dependencies=PARAMETER_CHECKS)
MAX_BATCH = 1000
MAX_BATCH_BYTES = 32 << 20  # 32 MiB
WRITE_TIMEOUT_SECONDS = 60

log = logging.getLogger("tagledger.api")


@router.post(
    "/v1/events",
    status_code=201,
    response_model=ReceiptOut,
    summary="Record one signed event",
    description=(
        "Submit an envelope signed by the acting organisation's own key. 201: accepted, with its log position "
        "(`seq`), receipt time and envelope hash. 200: this exact envelope was accepted before (idempotent "
        "resubmission); the original receipt is returned. 409: `stream.conflict` (the `prev` you signed is no "
        "longer the stream's head; the current `head` is in the answer) or `event.duplicate_id`. 422: a rule "
        "was violated (`rule` and `field` say which). 503 (with `Retry-After`): the store failed; "
        "`storage.unavailable`: this request wrote nothing; `storage.outcome_unknown`: it may or may not be "
        "recorded. In both cases resubmit the same bytes, never a re-signed envelope (docs/protocol.md 8.1)."
    ),
    responses={200: {"model": ReceiptOut, "description": "Already recorded"}, **responses(400, 409, 413, 415, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": ENVELOPE_SCHEMA}}}},
)
async def post_event(request: Request) -> Any:
    return await record_one(request)


async def record_one(request: Request) -> Response:
    """The answer of `POST /v1/events` (also served by api/lean_routes.py)."""
    ledger: Ledger = request.app.state.ledger
    try:
        obj = await read_json(request)
        future = ledger.writer.submit_async(obj, parsed=True)
        receipt = await asyncio.wait_for(asyncio.wrap_future(future), WRITE_TIMEOUT_SECONDS)
    except BadBody as bad:
        return problem(bad.status, bad.rule, bad.detail)
    except RuleViolation as violation:
        return from_violation(violation)
    except StorageFailure as failure:  # definite "not written", or "outcome unknown" (protocol 8.1)
        return failure_problem(failure)
    except asyncio.TimeoutError:  # still queued: it may yet be recorded
        return failure_problem(timed_out())
    return JSONResponse(receipt.to_json(), status_code=200 if receipt.duplicate else 201)


@router.post(
    "/v1/events/batch",
    response_model=BatchResult,
    summary="Record many signed events",
    description=(
        f"Submit a JSON array of up to {MAX_BATCH} envelopes. Each is judged on its own, in order, exactly as "
        "`POST /v1/events` would judge it; the answer lists, for each, its receipt or its problem, including 503 "
        "`storage.unavailable` / `storage.outcome_unknown` for the items a failure of the store left without a "
        "receipt (resubmit those, the same bytes; docs/protocol.md 8.1)."
    ),
    responses=responses(400, 413, 415, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": ENVELOPE_SCHEMA}}},
        }
    },
)
async def post_batch(request: Request) -> Any:
    ledger: Ledger = request.app.state.ledger
    try:
        objs = await read_json(request, limit=MAX_BATCH_BYTES)
    except BadBody as bad:
        return problem(bad.status, bad.rule, bad.detail)
    if not isinstance(objs, list) or not 1 <= len(objs) <= MAX_BATCH:
        return problem(400, "request.invalid", f"send a JSON array of 1 to {MAX_BATCH} envelopes")
    futures: list[Any] = []
    for obj in objs:
        try:
            futures.append(ledger.writer.submit_async(obj, parsed=True))
        except RuleViolation as violation:
            futures.append(violation)
    await _settled([f for f in futures if isinstance(f, Future)], WRITE_TIMEOUT_SECONDS)
    results = [_outcome(item) for item in futures]
    # the answer BatchResult describes, written directly: every item has its status, receipt and problem (null when
    # absent), in that order; validating 1,000 items against the model again cost more than judging them (issue 13)
    answer = JSONResponse({"results": results})
    if any(r["status"] == 503 for r in results):
        answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return answer


async def _settled(futures: list[Future[Any]], timeout: float) -> None:
    """Wait until every future is done, or `timeout` seconds: one wake-up of the event loop for the whole batch
    (not one per envelope, issue 13)."""
    if not futures:
        return
    loop = asyncio.get_running_loop()
    everything = loop.create_future()
    left = [len(futures)]
    lock = threading.Lock()

    def finished() -> None:
        if not everything.done():
            everything.set_result(None)

    def one_done(_: Future[Any]) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            loop.call_soon_threadsafe(finished)

    for future in futures:
        future.add_done_callback(one_done)
    try:
        await asyncio.wait_for(everything, timeout)
    except asyncio.TimeoutError:  # those still queued may yet be recorded: `_outcome` says so
        pass


def _outcome(item: Any) -> dict[str, Any]:
    """One envelope's answer: its receipt, its refusal, or what the store's failure means for it (8.1)."""
    if isinstance(item, RuleViolation):
        return _item(_problem_item(item))
    if not item.done():  # still queued: it may yet be recorded
        return _item(failure_item(timed_out()))
    error = item.exception()
    if error is None:
        receipt = item.result()
        return _item({"status": 200 if receipt.duplicate else 201, "receipt": receipt.to_json()})
    if isinstance(error, RuleViolation):
        return _item(_problem_item(error))
    if isinstance(error, StorageFailure):
        return _item(failure_item(error))
    if not isinstance(error, Exception):
        raise error
    # a bug judging this envelope: it alone was rolled back (LedgerWriter)
    log.error("unexpected error judging a batch item", exc_info=error)
    return _item({"status": 500, "problem": {"rule": "internal", "status": 500, "detail": "an unexpected error "
                                             "occurred judging this envelope; it was not recorded"}})


def _item(found: dict[str, Any]) -> dict[str, Any]:
    """A `BatchItem` as its model writes it: status, receipt, problem."""
    return {"status": found["status"], "receipt": found.get("receipt"), "problem": found.get("problem")}


def _problem_item(violation: RuleViolation) -> dict[str, Any]:
    status = violation_status(violation)
    return {"status": status, "problem": {"rule": violation.rule, "field": violation.field,
                                          "detail": violation.detail, "status": status, **violation.extra}}
