"""Service health for load balancers, service managers and monitoring (docs/protocol.md section 20):

* `GET /healthz`: alive (this process answers HTTP), whatever the store's state;
* `GET /readyz`: ready to take traffic: the store answers, no accepted entry has waited for a signed checkpoint
  beyond its bound, the projections are not behind beyond theirs, and this server is not stopping;
* `GET /metrics`: Prometheus text format (api/metrics.py).

`install(app, ledger, ...)` wires them into the app, with the write rule `log.checkpoint_stale`
(api/write_guard.py) and the request metrics.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from api import metrics
from api.problems import problem
from api.write_guard import StaleCheckpointGuard
from ledger.health import CHECKPOINT_BOUND_SECONDS, HealthMonitor
from ledger.service import Ledger
from ledger.supervision import DRAINING

log = logging.getLogger("tagledger.api")
router = APIRouter()
NOT_READY = "Service unavailable"


def install(app: FastAPI, ledger: Ledger, *, checkpoint_bound: float | None = None) -> HealthMonitor:
    """Health routes, request metrics and the stale-checkpoint write rule for `app`.

    `checkpoint_bound` (seconds): refuse writes with 503 `log.checkpoint_stale` once an accepted entry has waited
    that long for a signed checkpoint (`tagledger serve` always sets it); None: never refuse (in-process uses),
    `/readyz` still judges with the default bound."""
    bound = CHECKPOINT_BOUND_SECONDS if checkpoint_bound is None else checkpoint_bound
    monitor = HealthMonitor(ledger, checkpoint_bound=bound, refuse_stale_writes=checkpoint_bound is not None)
    app.state.health = monitor
    metrics.instrument_writer(ledger.writer)
    app.add_middleware(StaleCheckpointGuard, monitor=monitor)
    app.add_middleware(metrics.RequestMetrics)  # outermost: counts the guard's answers too
    app.include_router(router)
    return monitor


@router.get("/healthz", include_in_schema=False)
def healthz(request: Request) -> dict[str, Any]:
    """Alive: 200 as long as this process answers, with the log's size (null when the store cannot be read: a
    restart would not mend the store, so liveness does not depend on it)."""
    ledger: Ledger = request.app.state.ledger
    try:
        entries: int | None = ledger.store.size()
    except Exception as exc:  # noqa: BLE001 - alive, whatever the store says
        log.warning("/healthz: the store cannot be read: %s", exc)
        entries = None
    return {"ok": True, "entries": entries, "backend": ledger.store.backend}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Any:
    """Ready: 200 with each check's finding, or 503 problem+json `service.not_ready` / `service.draining` naming
    the checks that failed."""
    monitor: HealthMonitor = request.app.state.health
    if DRAINING.is_set():
        return problem(503, "service.draining", "this server is stopping: it answers what it accepted and takes "
                       "nothing new", title=NOT_READY)
    try:
        snapshot = await asyncio.to_thread(monitor.snapshot)
    except Exception as exc:  # noqa: BLE001 - whatever the store raised, it is not ready
        log.warning("/readyz: the store cannot be read: %s", exc)
        return problem(503, "service.not_ready", "not ready: the store cannot be read", title=NOT_READY,
                       checks={"store": {"ok": False}})
    verdict = monitor.verdict(snapshot)
    if verdict.ready:
        return {"ready": True, "checks": verdict.checks}
    failing = [name for name, check in verdict.checks.items() if not check["ok"]]
    return problem(503, "service.not_ready", f"not ready: {', '.join(failing)}", title=NOT_READY,
                   checks=verdict.checks)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text exposition format (api/metrics.py)."""
    body, content_type = await asyncio.to_thread(metrics.exposition, request.app.state.health)
    return Response(body, media_type=content_type)
