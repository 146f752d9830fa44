"""`create_app(ledger)`: the FastAPI application, its error handling and its routes.

Request bodies are read as bytes and parsed with the protocol's strict JSON parser (no floats, no duplicate
keys), so that what the ledger hashes is exactly what the client signed. Every error is problem+json.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import (
    routes_app,
    routes_attempts,
    routes_epcis,
    routes_events,
    routes_health,
    routes_labels,
    routes_log,
    routes_page,
    routes_registry,
    routes_reports,
    routes_risk,
    routes_rmap,
    routes_tags,
    routes_tiles,
    routes_verify_qr,
    store_failures,
)
from api.lean_routes import LeanRoutes
from api.problems import from_violation, problem
from api.read_limit import ReadLimit
from api.read_limit import EXEMPT as READ_EXEMPT
from api.read_routing import MIN_SEQ_OPENAPI, ReadRouting
from domain.errors import RuleViolation
from ledger.keys import KeyPair
from ledger.replicas import ReadRouter
from ledger.service import Ledger

log = logging.getLogger("tagledger.api")

DESCRIPTION = """
tagledger records the custody of artisanally mined minerals (pit to smelter) as signed, append-only events.

* **Write**: `POST /v1/events` with an envelope signed by your organisation's own Ed25519 key
  (docs/protocol.md). The ledger checks the signature, the key's validity, your role and the custody rules.
* **Verify**: `GET /v1/tags/{tag_id}` needs no credentials and returns the tag's history with everything
  needed to check it yourself.

Every error is an RFC 9457 `application/problem+json` document naming the rule and the field.
"""


def create_app(
    ledger: Ledger,
    *,
    follow_projection: bool = True,
    close_ledger_on_shutdown: bool = False,
    log_key: KeyPair | None = None,
    public_base_url: str | None = None,
    checkpoint_bound: float | None = None,
    read_router: ReadRouter | None = None,
) -> FastAPI:
    """The API over `ledger`.

    `follow_projection=False` when another process keeps the custody projection up to date (`tagledger serve`
    with its HTTP workers); `close_ledger_on_shutdown` when the app owns the ledger (a uvicorn worker);
    `log_key` to publish signed checkpoints from this process (`tagledger serve` does it in its supervisor);
    `public_base_url` the ledger's public URL, which QR labels link to (default $TAGLEDGER_PUBLIC_URL, else
    http://127.0.0.1:8000); `checkpoint_bound` (seconds) to refuse writes while an accepted entry has waited that
    long for a signed checkpoint (`tagledger serve`'s workers; api/routes_health.py).
    `read_router` the replicas public reads are sent to (`serve --read-db`; default: none,
    the primary answers them, still with `X-Log-Size` and `min_seq`: api/read_routing.py).
    """
    router = read_router or ReadRouter(ledger)
    router.probe_soon()  # know the stores' log sizes before the first read

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_ledger_on_shutdown:
            await asyncio.to_thread(router.close)
            await asyncio.to_thread(ledger.close)

    app = FastAPI(
        lifespan=lifespan,
        title="tagledger",
        version="1",
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "write", "description": "Record signed custody events."},
            {"name": "verify", "description": "Public, unauthenticated verification."},
            {"name": "log", "description": "The verifiable log: checkpoints, entries and Merkle proofs."},
            {"name": "labels", "description": "Signed QR labels: upload the operator's signatures, get QR codes."},
            {"name": "registry", "description": "Organisations, keys and stream heads."},
        ],
    )
    app.state.ledger = ledger
    app.state.read_router = router
    app.state.public_base_url = (public_base_url or os.environ.get("TAGLEDGER_PUBLIC_URL")
                                 or "http://127.0.0.1:8000").rstrip("/")
    ledger.start_projection(follow=follow_projection)
    if log_key is not None:
        ledger.start_checkpoints(log_key)
    # innermost: the busiest routes without FastAPI's routing and dependency machinery, same answers (issue 13)
    app.add_middleware(LeanRoutes)
    # public reads from replicas, with the log position they reflect (api/read_routing.py), inside the limit below
    app.add_middleware(ReadRouting, router=router)
    # bounded public reads, fewer while writing: 503 `read.busy` beyond them (api/read_limit.py)
    app.add_middleware(ReadLimit, writer_idle=lambda: ledger.writer.idle_seconds())
    app.include_router(routes_events.router)
    app.include_router(routes_tags.router)
    app.include_router(routes_log.router)
    app.include_router(routes_attempts.router)  # GET /v1/log/refused-attempts: evidence of reuse, with standing
    app.include_router(routes_tiles.router)  # /tiles/: the log as C2SP tlog-tiles (protocol section 19)
    app.include_router(routes_registry.router)
    app.include_router(routes_labels.router)  # signed QR labels
    app.include_router(routes_verify_qr.router)  # POST /v1/verify/qr: a tag from a photo of its label
    app.include_router(routes_page.router)  # GET /t/{tag_id}: the verification page for people
    app.include_router(routes_reports.router)  # GET /v1/reports/due-diligence/{tag_id}: for buyers
    app.include_router(routes_rmap.router)  # GET /v1/reports/rmap/{refiner}: the refiner's RMAP input report
    app.include_router(routes_risk.router)  # incidents, sealed details, a site's risk (protocol section 16)
    app.include_router(routes_epcis.router)  # GET /v1/epcis/events: GS1 EPCIS 2.0 export (protocol section 17)
    app.include_router(routes_app.router)  # /app/: the offline phone app, and GET /v1/orgs/{org}/custody for it
    routes_health.install(app, ledger, checkpoint_bound=checkpoint_bound)  # /healthz /readyz /metrics (section 20)

    @app.exception_handler(RuleViolation)
    async def _violation(request: Request, exc: RuleViolation):  # noqa: ANN202
        return from_violation(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):  # noqa: ANN202
        error = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        pointer = "/" + "/".join(str(p) for p in error["loc"])
        return problem(400, "request.invalid", str(error["msg"]), field=pointer)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):  # noqa: ANN202
        rule = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        response = problem(exc.status_code, rule, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Allow on 405
        return response

    @app.exception_handler(PersistenceError)
    async def _storage(request: Request, exc: PersistenceError):  # noqa: ANN202
        log.error("storage error: %s", exc)
        return store_failures.store_error(request.method)  # a read wrote nothing; a write may have (8.1)

    @app.exception_handler(asyncio.TimeoutError)
    async def _timeout(request: Request, exc: Exception):  # noqa: ANN202
        return problem(503, "storage.unavailable", "the store did not answer in time; nothing was acknowledged")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # noqa: ANN202
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "internal", "an unexpected error occurred; nothing was acknowledged")

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, with the Problem schema registered and FastAPI's default 422 removed
    (validation errors are answered with 400 problem+json by this app)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    from api.problems import Problem

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         tags=app.openapi_tags)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema()
    for path in schema["paths"].values():
        for operation in path.values():
            answers = operation.get("responses", {})
            default_422 = answers.get("422", {}).get("content", {}).get("application/json", {})
            if "HTTPValidationError" in str(default_422):
                answers.pop("422")
                answers.setdefault("400", {"description": "Bad request",
                                           "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    for path, item in schema["paths"].items():  # public reads: read-your-writes (api/read_routing.py)
        if "get" in item and not path.startswith(READ_EXEMPT):
            item["get"].setdefault("parameters", []).append(MIN_SEQ_OPENAPI)
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
