"""The write rule `log.checkpoint_stale` (docs/protocol.md section 20), as ASGI middleware.

`POST /v1/events` and `POST /v1/events/batch` are answered 503 problem+json `log.checkpoint_stale`, with
`Retry-After`, while an entry the ledger accepted has waited longer than the bound for a signed checkpoint
(`ledger.health.HealthMonitor.stale_checkpoint`, read from the store). The request is refused before its body is
read: nothing of it is written. Every other request passes untouched.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from api.metrics import WRITE_REQUESTS_REFUSED
from api.problems import problem
from ledger.health import HealthMonitor

log = logging.getLogger("tagledger.api")

WRITE_PATHS = frozenset({"/v1/events", "/v1/events/batch"})
RULE = "log.checkpoint_stale"


class StaleCheckpointGuard:
    def __init__(self, app: Any, monitor: HealthMonitor):
        self.app = app
        self.monitor = monitor

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (self.monitor.refuse_stale_writes and scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] in WRITE_PATHS):
            reason = await self._stale()
            if reason is not None:
                WRITE_REQUESTS_REFUSED.labels(RULE).inc()
                response = problem(503, RULE, reason + "; nothing was written: send the same bytes again later",
                                   title="Service unavailable")
                response.headers["Retry-After"] = str(max(1, math.ceil(self.monitor.checkpoint_bound / 2)))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _stale(self) -> str | None:
        snapshot = self.monitor.cached()
        if snapshot is None:
            try:
                snapshot = await asyncio.to_thread(self.monitor.snapshot)
            except Exception as exc:  # noqa: BLE001 - the write path answers a store failure itself
                log.warning("could not read the log's freshness: %s", exc)
                return None
        return self.monitor.stale_checkpoint(snapshot)
