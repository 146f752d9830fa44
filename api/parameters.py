"""Query and path parameters: no control characters (docs/protocol.md section 8).

No parameter of the JSON API is meant to hold a control character (U+0000 to U+001F, U+007F): they are ids,
streams, statuses, cursors, times and numbers. PostgreSQL refuses U+0000 in text outright, so such a value
would otherwise reach a query and fail there; it is answered 400 `request.invalid`, naming the parameter,
before any route reads the store. Every router of the JSON API declares `PARAMETER_CHECKS` as a dependency
(the verification page `GET /t/{tag_id}` checks its own and answers in HTML).
"""

from __future__ import annotations

import re

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def _refused(name: str, value: str) -> RequestValidationError:
    found = CONTROL_CHARACTER.search(value)
    assert found is not None
    return RequestValidationError([{
        "type": "value_error",
        "loc": (name,),
        "msg": f"the parameter {name} contains the control character U+{ord(found.group()):04X}; "
               "no parameter may contain one",
        "input": value,
    }])


async def refuse_control_characters(request: Request) -> None:
    """Raise `RequestValidationError` (answered 400 `request.invalid`, `field` `/<name>`) when a path or query
    parameter, or a query parameter's name, holds a control character.

    `async` although it awaits nothing: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
    per request on every route of the JSON API for a check of a few microseconds (issue 13)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and CONTROL_CHARACTER.search(value):
            raise _refused(name, value)
    for name, value in request.query_params.multi_items():
        if CONTROL_CHARACTER.search(name):
            raise RequestValidationError([{"type": "value_error", "loc": ("query",), "input": name,
                                           "msg": "a query parameter's name contains a control character"}])
        if CONTROL_CHARACTER.search(value):
            raise _refused(name, value)


PARAMETER_CHECKS = [Depends(refuse_control_characters)]
"""`APIRouter(dependencies=PARAMETER_CHECKS)`: the check above, for every route of the router."""
