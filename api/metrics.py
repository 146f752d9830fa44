"""`GET /metrics`: Prometheus text format, with `prometheus-client` (docs/architecture.md, "Processes").

Two kinds of figures:

* **Counted by the processes that do the work** (counters and histograms below): envelopes accepted, resubmitted
  and refused (by rule), the write latency of each envelope, the size of each write transaction, write requests
  refused before reading them (by rule), HTTP requests by route and status, and the latency of public
  verification requests. Under `tagledger serve` each worker writes them to its own files in the directory
  the supervisor names in $PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode), and a scrape
  answered by any worker sums every worker's files, those of workers that died included: totals never reset
  when a worker is replaced, and two scrapes answered by two workers agree.
* **Read from the store at scrape time** (`StoreCollector`): log size, checkpoint size and age, how long the
  oldest unsigned entry has waited, projection lag (entries and seconds), readiness. They describe the ledger,
  not a process, so every worker and every server on the same database reports the same values.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from domain.errors import RuleViolation

if TYPE_CHECKING:
    from ledger.health import HealthMonitor
    from ledger.writer import LedgerWriter

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORK = CollectorRegistry(auto_describe=True)
"""The counters and histograms below (a registry of their own, so that a scrape lists only tagledger's)."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

EVENTS_ACCEPTED = Counter("tagledger_events_accepted", "Envelopes accepted into the log (new entries).",
                          registry=WORK)
EVENTS_DUPLICATE = Counter("tagledger_events_duplicate",
                           "Resubmissions of an envelope already in the log, answered with its receipt.", registry=WORK)
EVENTS_REFUSED = Counter("tagledger_events_refused", "Envelopes refused, by the rule they broke (docs/protocol.md).",
                         ["rule"], registry=WORK)
WRITE_SECONDS = Histogram("tagledger_write_seconds",
                          "Seconds from an envelope's submission to the writer to its answer (durable, or refused).",
                          buckets=_LATENCY_BUCKETS, registry=WORK)
WRITE_BATCH_SIZE = Histogram("tagledger_write_batch_size", "Envelopes judged in one write transaction (group commit).",
                             buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=WORK)
WRITE_REQUESTS_REFUSED = Counter("tagledger_write_requests_refused",
                                 "Write requests refused before their envelopes were read, by rule.", ["rule"],
                                 registry=WORK)
HTTP_REQUESTS = Counter("tagledger_http_requests", "HTTP requests answered, by method, route template and status.",
                        ["method", "route", "status"], registry=WORK)
VERIFICATION_SECONDS = Histogram("tagledger_verification_seconds",
                                 "Seconds to answer a public verification request, by endpoint "
                                 "(tag: GET /v1/tags/{tag_id}, page: GET /t/{tag_id}, qr: POST /v1/verify/qr).",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=WORK)

VERIFICATION_ROUTES = {("GET", "/v1/tags/{tag_id}"): "tag", ("GET", "/t/{tag_id:path}"): "page",
                       ("POST", "/v1/verify/qr"): "qr"}


# --- counting the writes -----------------------------------------------------------------------------------------


def instrument_writer(writer: LedgerWriter) -> None:
    """Count what `writer` answers: wraps its `submit_async` (every envelope of `POST /v1/events` and of
    `POST /v1/events/batch` goes through it) and observes each write transaction's size (`on_batch`)."""
    if getattr(writer, "_tagledger_metrics", False):
        return
    submit_async = writer.submit_async

    def counted(obj: Any, **options: Any) -> Future[Any]:
        started = time.perf_counter()
        try:
            future = submit_async(obj, **options)
        except RuleViolation as violation:  # refused before reaching the writer (malformed)
            EVENTS_REFUSED.labels(violation.rule).inc()
            WRITE_SECONDS.observe(time.perf_counter() - started)
            raise
        future.add_done_callback(lambda done: _settled(done, started))
        return future

    writer.submit_async = counted  # type: ignore[method-assign]
    writer.on_batch = lambda size, seconds: WRITE_BATCH_SIZE.observe(size)
    writer._tagledger_metrics = True  # type: ignore[attr-defined]  # noqa: SLF001


def _settled(future: Future[Any], started: float) -> None:
    WRITE_SECONDS.observe(time.perf_counter() - started)
    error = future.exception()
    if error is None:
        (EVENTS_DUPLICATE if future.result().duplicate else EVENTS_ACCEPTED).inc()
    elif isinstance(error, RuleViolation):
        EVENTS_REFUSED.labels(error.rule).inc()
    else:  # the store failed: answered 503 storage.unavailable
        EVENTS_REFUSED.labels("storage.unavailable").inc()


# --- counting the requests ---------------------------------------------------------------------------------------

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class RequestMetrics:
    """ASGI middleware: every HTTP request by method, route template and status; verification latency."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._counted: dict[tuple[str, str, int], Any] = {}
        """The counter of each (method, route template, status) met so far: `labels()` validates and locks on
        every call, a dictionary look-up does not (the same child either way)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            counter = self._counted.get((method, template, status))
            if counter is None:
                counter = self._counted[method, template, status] = HTTP_REQUESTS.labels(method, template, str(status))
            counter.inc()
            endpoint = VERIFICATION_ROUTES.get((method, template))
            if endpoint is not None:
                VERIFICATION_SECONDS.labels(endpoint).observe(time.perf_counter() - started)


# --- figures read from the store ---------------------------------------------------------------------------------


class StoreCollector(Collector):
    """Gauges read from the store when scraped (through the health monitor's cached snapshot)."""

    def __init__(self, monitor: HealthMonitor):
        self.monitor = monitor

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            snapshot = self.monitor.snapshot()
        except Exception:  # noqa: BLE001 - the store is down: say so, and nothing read from it
            yield GaugeMetricFamily("tagledger_store_up", "1 when the store answered this scrape.", value=0.0)
            return
        yield GaugeMetricFamily("tagledger_store_up", "1 when the store answered this scrape.", value=1.0)
        now = datetime.now(timezone.utc)
        yield GaugeMetricFamily("tagledger_log_entries", "Entries in the log.", value=snapshot.entries)
        yield GaugeMetricFamily("tagledger_checkpoint_size", "Entries the latest signed checkpoint covers.",
                                value=snapshot.checkpoint_size)
        age = snapshot.checkpoint_age(now)
        yield GaugeMetricFamily("tagledger_checkpoint_age_seconds",
                                "Seconds since the latest checkpoint was signed (NaN: none yet). A quiet ledger "
                                "needs no new checkpoint: see tagledger_checkpoint_unsigned_seconds.",
                                value=float("nan") if age is None else age)
        yield GaugeMetricFamily("tagledger_checkpoint_unsigned_seconds",
                                "Seconds the oldest entry no signed checkpoint covers has waited (0: none). Writes "
                                "are refused (log.checkpoint_stale) beyond the bound.",
                                value=snapshot.unsigned_seconds(now))
        entries = GaugeMetricFamily("tagledger_projection_lag_entries", "Entries a projection has not folded yet.",
                                    labels=["projection"])
        seconds = GaugeMetricFamily("tagledger_projection_lag_seconds",
                                    "Seconds the first entry a projection has not folded has waited (0: up to date).",
                                    labels=["projection"])
        for name in snapshot.projections:
            lag_entries, lag_seconds = snapshot.projection_lag(name, now)
            entries.add_metric([name], lag_entries)
            seconds.add_metric([name], lag_seconds)
        yield entries
        yield seconds
        ready = self.monitor.verdict(snapshot, now).ready
        yield GaugeMetricFamily("tagledger_ready", "1 when GET /readyz answers 200.", value=1.0 if ready else 0.0)


class _Work(Collector):
    """This process's own counters (when no multiprocess directory is set: in-process uses, tests)."""

    def collect(self) -> Iterator[Any]:
        return WORK.collect()


def exposition(monitor: HealthMonitor) -> tuple[bytes, str]:
    """The text a scrape answers, and its content type: text format 0.0.4, which every Prometheus reads (tagledger's
    names need none of the escaping of the newer 1.0.0)."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(METRICS_ENV)
    if directory and os.path.isdir(directory):
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Work())
    registry.register(StoreCollector(monitor))
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
