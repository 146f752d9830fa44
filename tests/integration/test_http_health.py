"""Service health over real HTTP, on both stores: /healthz, /readyz, /metrics, and the write rule
`log.checkpoint_stale` (docs/protocol.md section 20). The same app `tagledger serve`'s workers run, in-process;
tests/test_serve_operations.py runs them as `tagledger serve` does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from ledger.client import Signer
from ledger.keys import KeyPair
from tests.integration.conftest import LiveLedger, ServerThread, http_client
from tests.ledger.world import World, make_world


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics, parsed: {(sample name, sorted labels): value}."""
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_healthz_and_readyz_of_a_healthy_ledger(live_ledger: LiveLedger) -> None:
    alive = live_ledger.http.get("/healthz")
    assert alive.status_code == 200 and alive.json()["ok"] is True
    assert alive.json()["entries"] == live_ledger.ledger.store.size()
    ready = live_ledger.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert ready.json()["ready"] is True
    assert set(checks) == {"store", "checkpoint", "projection.custody", "projection.flags"}
    assert all(check["ok"] for check in checks.values())


def test_metrics_count_writes_refusals_and_verifications(live_ledger: LiveLedger) -> None:
    before = scrape(live_ledger.http)
    site = live_ledger.register("kalimbi-site", "site")  # accepted: 1
    live_ledger.operator.issue_tags("kalimbi-site", prefix="KAL-", start=1, count=3)  # accepted: 2
    site.attach("KAL-000001", mineral="tin", mass_g=8_000, pit="P1")  # accepted: 3
    stranger = Signer("kalimbi-site", KeyPair.generate())  # a key nobody registered: refused, key.unknown
    envelope = stranger.envelope("tag_attached", "tag:KAL-000002", live_ledger.head("tag:KAL-000002"),
                                 {"site": "kalimbi-site", "mineral": "tin", "mass_g": 1_000, "pit": "P1"})
    refused = live_ledger.http.post("/v1/events", json=envelope)
    assert refused.status_code == 422 and refused.json()["rule"] == "key.unknown"
    for path in ("/v1/tags/KAL-000001", "/v1/tags/KAL-000001", "/t/KAL-000001"):
        assert live_ledger.http.get(path).status_code == 200
    after = scrape(live_ledger.http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tagledger_events_accepted_total") == 3
    assert delta("tagledger_events_refused_total", rule="key.unknown") == 1
    assert delta("tagledger_write_seconds_count") == 4  # every envelope answered, accepted or refused
    assert delta("tagledger_write_batch_size_count") >= 1
    assert delta("tagledger_write_batch_size_sum") == 4  # every envelope went through a write transaction
    assert delta("tagledger_verification_seconds_count", endpoint="tag") == 2
    assert delta("tagledger_verification_seconds_count", endpoint="page") == 1
    assert delta("tagledger_http_requests_total", method="POST", route="/v1/events", status="422") == 1
    assert delta("tagledger_http_requests_total", method="GET", route="/v1/tags/{tag_id}", status="200") == 2
    # read from the store when scraped (through a snapshot at most half a second old)
    deadline = time.monotonic() + 30
    while value(after, "tagledger_log_entries") != live_ledger.ledger.store.size():
        assert time.monotonic() < deadline, value(after, "tagledger_log_entries")
        time.sleep(0.2)
        after = scrape(live_ledger.http)
    assert value(after, "tagledger_store_up") == 1
    assert value(after, "tagledger_ready") == 1
    assert value(after, "tagledger_checkpoint_size") <= value(after, "tagledger_log_entries")
    assert ("tagledger_projection_lag_entries", (("projection", "custody"),)) in after
    assert ("tagledger_checkpoint_age_seconds", ()) in after


@pytest.fixture
def unsigned(store_url: str) -> Iterator[tuple[World, ServerThread]]:
    """A ledger served with the write rule on (bound 2 s) and nobody signing checkpoints: one covering the log
    so far is signed here, then none."""
    world = make_world(store_url, tags=10)
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)  # no background publisher
    server = ServerThread(create_app(world.ledger, checkpoint_bound=2))
    server.start()
    try:
        yield world, server
    finally:
        server.stop()
        world.ledger.close()


def _attach(world: World, tag: str) -> dict[str, Any]:
    signer = world.signer("kalimbi")
    return signer.envelope("tag_attached", f"tag:{tag}", world.ledger.head(f"tag:{tag}").hash,
                           {"site": "kalimbi", "mineral": "tin", "mass_g": 5_000, "pit": "P1"})


def test_writes_wait_for_a_checkpoint_beyond_the_bound(unsigned: tuple[World, ServerThread]) -> None:
    world, server = unsigned
    server_app_health = server.server.config.app.state.health
    server_app_health.started_at = server_app_health.started_at.replace(year=2000)  # past its first seconds
    with http_client(server.url) as http:
        # a quiet ledger, every entry covered: writes are accepted
        assert http.post("/v1/events", json=_attach(world, "KAL-000001")).status_code == 201
        # nobody signs: once that entry has waited beyond the bound, the service is not ready and refuses writes
        deadline = time.monotonic() + 60
        while (ready := http.get("/readyz")).status_code == 200:
            assert time.monotonic() < deadline, "/readyz never noticed the missing checkpoint"
            time.sleep(0.2)
        assert ready.status_code == 503 and ready.json()["rule"] == "service.not_ready"
        assert ready.json()["checks"]["checkpoint"]["ok"] is False
        size = world.ledger.store.size()
        before = scrape(http)

        refused = http.post("/v1/events", json=_attach(world, "KAL-000002"))
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        problem = refused.json()
        assert problem["rule"] == "log.checkpoint_stale" and problem["status"] == 503
        assert f"entry #{size - 1}" in problem["detail"] and "nothing was written" in problem["detail"]
        batch = http.post("/v1/events/batch", json=[_attach(world, "KAL-000003")])
        assert batch.status_code == 503 and batch.json()["rule"] == "log.checkpoint_stale"
        assert world.ledger.store.size() == size  # nothing of either was written
        after = scrape(http)
        assert (value(after, "tagledger_write_requests_refused_total", rule="log.checkpoint_stale")
                - value(before, "tagledger_write_requests_refused_total", rule="log.checkpoint_stale")) == 2
        # reads go on
        assert http.get("/v1/tags/KAL-000001").status_code == 200

        world.ledger.publish_checkpoint()  # a checkpoint is signed: writes resume (once the cached freshness expires)
        deadline = time.monotonic() + 60
        while (answer := http.post("/v1/events", json=_attach(world, "KAL-000002"))).status_code == 503:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        assert answer.status_code == 201, answer.text
        assert http.get("/readyz").status_code == 200


def test_readyz_answers_503_while_the_server_drains(live_ledger: LiveLedger) -> None:
    from ledger.supervision import DRAINING

    DRAINING.set()
    try:
        answer = live_ledger.http.get("/readyz")
    finally:
        DRAINING.clear()
    assert answer.status_code == 503 and answer.json()["rule"] == "service.draining"
    assert live_ledger.http.get("/readyz").status_code == 200
    assert live_ledger.http.get("/healthz").status_code == 200
