"""What the metrics and the stale-checkpoint rule add to the write path, per envelope and per request, in the
CPU time of one Ed25519 verification (`cryptography`) measured in the same run.

    python bench/metrics_overhead.py            # about ten seconds

The exact code `tagledger serve`'s workers run, in prometheus-client's multiprocess mode (a temporary
PROMETHEUS_MULTIPROC_DIR, as the supervisor sets it), with nothing else around it:

  per envelope  `api.metrics.instrument_writer`'s wrapper around `submit_async` and its completion callback
                (counter + latency histogram), on a submission whose future is already resolved
  per write transaction  the batch-size observation (`on_batch`)
  per request   `RequestMetrics` + `StaleCheckpointGuard` around an ASGI app that answers at once, for a write
                (POST /v1/events, the rule judged from the cached snapshot) and a verification (GET /v1/tags/X)

An in-process ingest A/B (bench/ingest.py, 3,000 events) could not resolve differences of this size on the
shared machine: the same commit varied by up to 2x between passes (docs/benchmarks.md section 6).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

METRICS_DIR = tempfile.mkdtemp(prefix="tl_bench_metrics_")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR  # before prometheus_client is imported, as in a worker

import common  # noqa: E402
from api import metrics  # noqa: E402
from api.write_guard import StaleCheckpointGuard  # noqa: E402
from ledger.health import HealthMonitor, Snapshot  # noqa: E402
from ledger.writer import Receipt  # noqa: E402

N = 20_000
_ROUTES = {"/v1/events": SimpleNamespace(path="/v1/events"),
           "/v1/tags/KAL-000001": SimpleNamespace(path="/v1/tags/{tag_id}")}


def _per_call(fn, n: int = N) -> float:  # noqa: ANN001
    """CPU seconds per call of `fn` (best of three)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return best


class _Writer:
    def __init__(self) -> None:
        self.on_batch = None
        receipt = Receipt("id", 1, "2026-12-05T00:00:00Z", "h")
        self.done: Future[Receipt] = Future()
        self.done.set_result(receipt)

    def submit_async(self, obj):  # noqa: ANN001, ANN201
        return self.done


class _Monitor(HealthMonitor):
    def __init__(self) -> None:  # no ledger: a cached snapshot, every entry covered
        self.checkpoint_bound = 10.0
        self.refuse_stale_writes = True
        self.started_at = datetime.now(timezone.utc)
        now = datetime.now(timezone.utc)
        self._snapshot = Snapshot(now, 100, 100, now, None, {})

    def cached(self) -> Snapshot:
        return self._snapshot


async def _app(scope, receive, send) -> None:  # noqa: ANN001
    scope["route"] = _ROUTES.get(scope["path"])  # what the router records for the middleware
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _request_cost(method: str, path: str) -> float:
    wrapped = metrics.RequestMetrics(StaleCheckpointGuard(_app, _Monitor()))
    bare = _app

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        return None

    def scope() -> dict:
        return {"type": "http", "method": method, "path": path}

    async def run(app, n: int) -> float:  # noqa: ANN001
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(n):
                await app(scope(), receive, send)
            best = min(best, (time.process_time() - t0) / n)
        return best

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run(wrapped, N)) - loop.run_until_complete(run(bare, N))
    finally:
        loop.close()


def main() -> None:
    try:
        rate = common.ed25519_verify_rate()
        writer = _Writer()
        bare = writer.submit_async
        metrics.instrument_writer(writer)  # type: ignore[arg-type]
        per_envelope = _per_call(lambda: writer.submit_async({})) - _per_call(lambda: bare({}))
        per_batch = _per_call(lambda: writer.on_batch(200, 0.01))
        per_write_request = _request_cost("POST", "/v1/events")
        per_read_request = _request_cost("GET", "/v1/tags/KAL-000001")
        rate_after = common.ed25519_verify_rate()
        verification = 2 / (rate + rate_after)
        print(f"reference: {rate:,.0f} / {rate_after:,.0f} Ed25519 verifications/s on one core (before / after)")
        common.print_table([
            {"what": "per envelope (counter + latency histogram)", "us": per_envelope * 1e6,
             "verifications": per_envelope / verification},
            {"what": "per write transaction (batch-size histogram)", "us": per_batch * 1e6,
             "verifications": per_batch / verification},
            {"what": "per write request (request metrics + stale-checkpoint rule, cached)",
             "us": per_write_request * 1e6, "verifications": per_write_request / verification},
            {"what": "per verification request (request metrics + latency histogram)",
             "us": per_read_request * 1e6, "verifications": per_read_request / verification},
        ], [("what", "added CPU"), ("us", "µs"), ("verifications", "in Ed25519 verifications")])
    finally:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)


if __name__ == "__main__":
    main()
