"""RFC 9457 problem details: every 4xx/5xx answer of the API is `application/problem+json`."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from domain.errors import RuleViolation

PROBLEM_TYPE_BASE = "https://tagledger.org/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """The problem document (RFC 9457), with the rule and field that tagledger adds."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    rule: str | None = None
    field: str | None = None


_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Rule violated",
    500: "Internal error",
    503: "Storage unavailable",
}


def problem(status: int, rule: str, detail: str, *, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + rule,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "rule": rule,
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def violation_status(violation: RuleViolation) -> int:
    return 409 if violation.is_conflict else 422


def from_violation(violation: RuleViolation) -> JSONResponse:
    return problem(
        violation_status(violation), violation.rule, violation.detail, field=violation.field, **violation.extra
    )


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses, all `application/problem+json`."""
    return {s: {"description": _TITLES.get(s, "Error"), "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}}}
            for s in statuses}
