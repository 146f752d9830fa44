"""How the API answers when the store fails (docs/protocol.md 8.1): always 503 with `Retry-After`, and a rule
that says what happened to the request.

- `storage.unavailable`: nothing was written by this request (a read, or a write the store failed before
  committing);
- `storage.outcome_unknown`: a write may or may not have been stored; resubmitting the same bytes is safe.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from api.problems import problem
from ledger.write_outcomes import RETRY_AFTER_SECONDS, OutcomeUnknown, StorageFailure

WRITE_TIMEOUT_DETAIL = ("the store did not answer in time: this envelope may still be recorded; resubmit the same "
                        "bytes (idempotent: the answer is then its receipt, and it is never recorded twice)")


def timed_out() -> OutcomeUnknown:
    """The writer did not answer within the request's time: the envelope is still queued and may be recorded."""
    return OutcomeUnknown(WRITE_TIMEOUT_DETAIL)


def failure_problem(failure: StorageFailure) -> JSONResponse:
    """The 503 answer to a single write."""
    return with_retry_after(problem(failure.status, failure.rule, failure.detail))


def failure_item(failure: StorageFailure) -> dict[str, Any]:
    """One item of a batch answer."""
    return {"status": failure.status, "problem": {"rule": failure.rule, "detail": failure.detail,
                                                  "status": failure.status}}


def store_error(method: str) -> JSONResponse:
    """A storage error that reached the application's handler (anything but the event writer): a read wrote
    nothing; another write (labels, sealed details: both idempotent) may or may not have been stored."""
    if method in {"GET", "HEAD", "OPTIONS"}:
        answer = problem(503, "storage.unavailable", "the store could not complete the request; nothing was "
                                                     "written; try again")
    else:
        answer = problem(503, "storage.outcome_unknown", "the store failed while handling this request: it may or "
                                                         "may not have been stored; resubmitting the same request "
                                                         "is safe (idempotent)")
    return with_retry_after(answer)


def with_retry_after(response: JSONResponse) -> JSONResponse:
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
