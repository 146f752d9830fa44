"""A shorter way through the framework for the busiest requests (issue 13): `POST /v1/events` and the log's
public reads `GET /v1/log/checkpoint`, `/v1/log/proof/inclusion` and `/v1/log/proof/consistency`.

FastAPI's own path for a request — matching it against every route, solving its dependencies, validating its
query parameters with pydantic, and for a plain `def` route a hop through anyio's thread pool — cost more CPU
than the answer itself on these routes. `LeanRoutes` is the innermost ASGI middleware: every middleware of the
service still sees the request (metrics, the stale-checkpoint guard, the read limit, read routing), and the route
still answers through the same function (`routes_events.record_one`, `routes_log.*_answer`), so the answers'
bytes are the same. It takes a request only when its parameters are plain: no query string for the write; for
the reads, `name=value` pairs of letters, digits and `_.~-` (nothing percent-encoded, so no control character:
api/parameters.py), each named once, and the route's numbers written as plain decimals (no sign, no leading
zero, at most 18 digits) within their bounds. Anything else — a missing or malformed parameter, HEAD, a path
under a root path — goes the framework's way, which answers it as before (400 problem+json from the parameter
checks and validation). The routes stay declared in FastAPI, so OpenAPI documents them as before.

Errors are answered as the framework's exception handlers answer them (api/app.py): the handler registered for
the exception's class (store failures: 503 `storage.unavailable`), else the exception goes up to the server
error handler (500) or, from a replica, to read routing, which serves the read again from the primary.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from api import routes_events, routes_log
from api.read_routing import LEDGER_KEY

_PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*(?:&[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*)*")
_PLAIN_NUMBER = re.compile(r"0|[1-9][0-9]{0,17}")

_READERS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="tagledger-read")
"""The threads the lanes' reads run in: as many as anyio's default thread pool, which the framework's way uses
(a plain executor costs less per call than anyio's `to_thread`; the read limit bounds how many are busy)."""

Lane = Callable[[dict[str, Any], Any], Awaitable[Response | None]]
"""(scope, receive) -> the answer, or None: not plain enough, the framework answers."""


def _plain_params(query: bytes) -> dict[str, str] | None:
    if not query:
        return {}
    if _PLAIN_QUERY.fullmatch(query) is None:
        return None
    params: dict[str, str] = {}
    for pair in query.decode("ascii").split("&"):
        name, _, value = pair.partition("=")
        if name in params:  # named twice: which one counts is the framework's business
            return None
        params[name] = value
    return params


def _numbers(query: bytes, names: tuple[str, ...], least: tuple[int, ...]) -> list[int] | None:
    params = _plain_params(query)
    if params is None:
        return None
    values = []
    for name, bound in zip(names, least):
        text = params.get(name)
        if text is None or _PLAIN_NUMBER.fullmatch(text) is None or int(text) < bound:
            return None
        values.append(int(text))
    return values


def _read_ledger(scope: dict[str, Any]) -> Any:
    """As `api.read_routing.reading`: the store read routing chose, else the primary."""
    chosen = scope.get(LEDGER_KEY)
    return chosen if chosen is not None else scope["app"].state.ledger


def _reading(answer: Callable[..., Response], names: tuple[str, ...] = (), least: tuple[int, ...] = ()) -> Lane:
    """A public read: its numbers from the query string, its answer computed in a worker thread (the store is never
    read on the event loop)."""

    async def lane(scope: dict[str, Any], receive: Any) -> Response | None:
        query = scope.get("query_string", b"")
        if names:
            values = _numbers(query, names, least)
        else:
            values = [] if _plain_params(query) is not None else None
        if values is None:
            return None
        return await asyncio.get_running_loop().run_in_executor(_READERS, answer, _read_ledger(scope), *values)

    return lane


async def _record_one(scope: dict[str, Any], receive: Any) -> Response | None:
    if scope.get("query_string"):
        return None
    return await routes_events.record_one(Request(scope, receive))


LANES: dict[tuple[str, str], Lane] = {
    ("POST", "/v1/events"): _record_one,
    ("GET", "/v1/log/checkpoint"): _reading(routes_log.checkpoint_answer),
    ("GET", "/v1/log/proof/inclusion"): _reading(routes_log.inclusion_answer, ("index", "size"), (0, 1)),
    ("GET", "/v1/log/proof/consistency"): _reading(routes_log.consistency_answer, ("old", "new"), (0, 0)),
}

ROUTES: dict[tuple[str, str], APIRoute] = {
    (method, route.path): route for route in (*routes_events.router.routes, *routes_log.router.routes)
    if isinstance(route, APIRoute) for method in route.methods if (method, route.path) in LANES}
"""The routes as declared (api/metrics.py counts requests by their template)."""
if ROUTES.keys() != LANES.keys():
    raise RuntimeError(f"a lane without its declared route: {sorted(LANES.keys() - ROUTES.keys())}")


class LeanRoutes:
    """`app.add_middleware(LeanRoutes)` before any other middleware (so that it is the innermost)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            key = (scope["method"], scope["path"])
            lane = LANES.get(key)
            if lane is not None and await self._serve(lane, ROUTES[key], scope, receive, send):
                return
        await self.app(scope, receive, send)

    async def _serve(self, lane: Lane, route: APIRoute, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        try:
            response = await lane(scope, receive)
        except Exception as exc:  # noqa: BLE001 - answered as the framework's exception handlers answer it
            _routed(scope, route)
            response = await _handled(scope, receive, exc)
        if response is None:
            return False
        _routed(scope, route)
        await response(scope, receive, send)
        return True


def _routed(scope: dict[str, Any], route: APIRoute) -> None:
    """What the router puts in the scope of a request it matched (api/metrics.py counts by `route`)."""
    scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, {}


async def _handled(scope: dict[str, Any], receive: Any, exc: Exception) -> Response:
    """The answer of the exception handler registered for `exc`'s class, as Starlette's ExceptionMiddleware
    chooses it (api/app.py; the handler of `Exception` is the server error handler's, outside); else `exc` goes on."""
    handlers = scope["app"].exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        handler = handlers.get(cls)
        if handler is not None:
            answer = handler(Request(scope, receive), exc)
            return await answer if inspect.isawaitable(answer) else answer
    raise exc
