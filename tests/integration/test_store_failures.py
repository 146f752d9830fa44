"""Honest answers when PostgreSQL fails under a write (issue 11, part 3; docs/protocol.md 8.1), over real HTTP
with real connection loss: every receipt is in the log, every "not written" is not, "outcome unknown" is
resolved by resubmitting the same bytes, and nothing is ever recorded twice.

* a 1,000-envelope batch whose service backends are terminated (`pg_terminate_backend`) mid-batch, repeatedly;
* a single envelope whose connection dies just before / just after PostgreSQL receives the COMMIT (a proxy
  cuts it: `pg_cut.CuttingProxy`), and the same with the store unreachable afterwards;
* the project's client (`ledger.client`) against such failures and a slow store: it sends the same bytes
  again, never signs again, and a batch resubmits only the items without a definite outcome.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import psycopg
import pytest

from api.app import create_app
from ledger.client import HttpTransport, LedgerClient, Signer
from ledger.entries import read_entry
from tests.integration.conftest import ServerThread, http_client
from tests.integration.pg_cut import CuttingProxy, terminate_backends
from tests.ledger.world import World, make_world
from verification.canonical import jcs

pytestmark = pytest.mark.postgres

BATCH = 1000
ATTEMPTS = 6


def _attaches(world: World, first: int, count: int) -> list[bytes]:
    """`count` independent valid envelopes (attachments of fresh tags at the site), as the bytes sent."""
    site = world.signer("kalimbi")
    start = world.tick()
    return [jcs(site.envelope("tag_attached", f"tag:KAL-{n:06d}", _issued(world),
                              {"site": "kalimbi", "mineral": "tin", "mass_g": 40_000 + n, "pit": "P1"},
                              time=start + timedelta(milliseconds=n)))
            for n in range(first, first + count)]


def _issued(world: World) -> str:
    """The hash of the event that issued the KAL- tags: the head of each of them until it is attached (read once,
    before any connection is cut)."""
    if not hasattr(world, "kal_head"):
        head = world.ledger.head("tag:KAL-000001")
        assert head is not None
        world.kal_head = head.hash  # type: ignore[attr-defined]
    return world.kal_head  # type: ignore[attr-defined]


def _event_id(raw: bytes) -> str:
    return json.loads(raw)["body"]["id"]


def _log(url: str) -> dict[str, list[tuple[int, str]]]:
    """Every entry of the log, read directly from the database: event id -> [(seq, hash), ...]."""
    found: dict[str, list[tuple[int, str]]] = {}
    with psycopg.connect(url, connect_timeout=5) as conn:
        for (data,) in conn.execute("SELECT data FROM tagledger_events_tt_main ORDER BY id"):
            entry = read_entry(bytes(data))
            found.setdefault(entry.body["id"], []).append((entry.seq, entry.hash))
    return found


def _post_batch(http, items: list[bytes]):  # noqa: ANN001, ANN202
    return http.post("/v1/events/batch", content=b"[" + b",".join(items) + b"]",
                     headers={"content-type": "application/json"})


def _check_answer(url: str, items: list[bytes], answer: dict) -> list[int]:
    """Every 201 is in the log with its receipt, every `storage.unavailable` is not; returns the indexes of
    the items without a definite outcome (to resubmit)."""
    log = _log(url)
    results = answer["results"]
    assert len(results) == len(items)
    again = []
    for i, (raw, item) in enumerate(zip(items, results)):
        event_id = _event_id(raw)
        if item["status"] in (200, 201):
            receipt = item["receipt"]
            assert log.get(event_id) == [(receipt["seq"], receipt["hash"])], f"item {i}: receipt not in the log"
            continue
        assert item["status"] == 503, item
        rule = item["problem"]["rule"]
        assert rule in {"storage.unavailable", "storage.outcome_unknown"}, item
        if rule == "storage.unavailable":
            assert event_id not in log, f"item {i} answered 'not written' is in the log"
        again.append(i)
    return again


@pytest.fixture
def world(fresh_pg_url: str) -> Iterator[World]:
    w = make_world(fresh_pg_url, tags=BATCH * (ATTEMPTS + 1))
    # transactions of 100 envelopes: a batch of 1,000 is then recorded in about ten, so that a connection cut at a
    # random moment lands between two of them however fast or loaded the machine is (the answers must be true for
    # any transaction size; the cuts landed in 1,000-envelope batches recorded in several transactions)
    w.ledger.writer.max_batch = 100
    try:
        yield w
    finally:
        w.ledger.close()


def test_batch_cut_mid_way_answers_every_item_truly_and_resubmission_records_each_once(
        world: World, fresh_pg_url: str) -> None:
    rng = random.Random(11)
    with ServerThread(create_app(world.ledger, follow_projection=False)) as server, \
            http_client(server.url, timeout=120) as http:
        clean = _attaches(world, 1, BATCH)
        t0 = time.monotonic()
        response = _post_batch(http, clean)
        full = time.monotonic() - t0
        assert response.status_code == 200 and {r["status"] for r in response.json()["results"]} == {201}
        every = list(clean)
        cut_mid_batch = 0
        for attempt in range(1, ATTEMPTS + 1):
            items = _attaches(world, 1 + attempt * BATCH, BATCH)
            every += items
            stop = threading.Event()
            killed: list[int] = []

            def killer() -> None:
                # from another connection, at a random moment of the batch, then again until the batch is answered
                delay = rng.uniform(0.15, 0.7) * full
                while not stop.wait(delay):
                    killed.append(terminate_backends(fresh_pg_url))
                    delay = 0.25 * full

            thread = threading.Thread(target=killer)
            thread.start()
            try:
                response = _post_batch(http, items)
            finally:
                stop.set()
                thread.join()
            assert response.status_code == 200, response.text  # per item answers, never one 503 for all
            statuses = {r["status"] for r in response.json()["results"]}
            again = _check_answer(fresh_pg_url, items, response.json())
            if 201 in statuses and again and sum(killed):
                cut_mid_batch += 1
            for _ in range(5):  # the client's part: resubmit the same bytes of the items left without an outcome
                if not again:
                    break
                rest = [items[i] for i in again]
                response = _post_batch(http, rest)
                assert response.status_code == 200, response.text
                again = [again[i] for i in _check_answer(fresh_pg_url, rest, response.json())]
            assert again == [], "items still without an outcome after five resubmissions"
            if cut_mid_batch >= 2:
                break
        assert cut_mid_batch >= 1, "no termination landed in the middle of a batch: the test proved nothing"
    log = _log(fresh_pg_url)
    for raw in every:
        assert len(log[_event_id(raw)]) == 1, "an event is in the log twice"
    assert sorted(seq for entries in log.values() for seq, _ in entries) == list(range(sum(map(len, log.values()))))


# -- one envelope, its connection cut just before or just after the COMMIT --------------------------------------


@pytest.fixture
def proxied(fresh_pg_url: str) -> Iterator[tuple[World, CuttingProxy, ServerThread]]:
    with CuttingProxy(fresh_pg_url) as proxy:
        w = make_world(proxy.url, tags=10)
        try:
            with ServerThread(create_app(w.ledger, follow_projection=False)) as server:
                yield w, proxy, server
        finally:
            w.ledger.close()


def _post(http, raw: bytes):  # noqa: ANN001, ANN202
    return http.post("/v1/events", content=raw, headers={"content-type": "application/json"})


def test_commit_received_then_connection_lost_is_answered_with_the_receipt(proxied, fresh_pg_url: str) -> None:
    world, proxy, server = proxied
    raw = _attaches(world, 1, 1)[0]
    with http_client(server.url) as http:
        proxy.cut_next_commit("after")
        response = _post(http, raw)
    assert proxy.cuts == 1
    assert response.status_code == 201, response.text  # the writer looked in the log after reconnecting
    assert _log(fresh_pg_url)[_event_id(raw)] == [(response.json()["seq"], response.json()["hash"])]


def test_connection_lost_before_commit_is_not_written_and_resubmission_records_it(proxied, fresh_pg_url: str) -> None:
    world, proxy, server = proxied
    raw = _attaches(world, 1, 1)[0]
    with http_client(server.url) as http:
        proxy.cut_next_commit("before")
        response = _post(http, raw)
        assert proxy.cuts == 1
        assert response.status_code == 503, response.text
        assert response.json()["rule"] == "storage.unavailable"
        assert response.headers["retry-after"] == "1"
        assert _event_id(raw) not in _log(fresh_pg_url)
        again = _post(http, raw)
    assert again.status_code == 201, again.text
    assert len(_log(fresh_pg_url)[_event_id(raw)]) == 1


def test_commit_lost_and_store_unreachable_is_outcome_unknown_then_resubmission_gives_the_receipt(
        proxied, fresh_pg_url: str) -> None:
    world, proxy, server = proxied
    raw = _attaches(world, 1, 1)[0]
    with http_client(server.url) as http:
        proxy.cut_next_commit("after")
        proxy.refusing = True  # the writer cannot reconnect to look in the log
        response = _post(http, raw)
        proxy.refusing = False
        assert proxy.cuts == 1
        assert response.status_code == 503, response.text
        assert response.json()["rule"] == "storage.outcome_unknown"
        assert "resubmit the same bytes" in response.json()["detail"]
        assert response.headers["retry-after"] == "1"
        assert _event_id(raw) in _log(fresh_pg_url)  # it was committed: "unknown" was the honest answer
        again = _post(http, raw)
    assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    assert len(_log(fresh_pg_url)[_event_id(raw)]) == 1


# -- the project's client: the same bytes again on 503, no answer or a timeout; never signed again ---------------


class CountingSigner:
    """A `Signer` that counts the envelopes it signs."""

    def __init__(self, signer: Signer):
        self.signer = signer
        self.signed = 0

    @property
    def org(self) -> str:
        return self.signer.org

    def envelope(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.signed += 1
        return self.signer.envelope(*args, **kwargs)


def _recording_client(url: str, **kwargs) -> tuple[httpx.Client, list[tuple[str, bytes]]]:  # noqa: ANN003
    sent: list[tuple[str, bytes]] = []
    http = http_client(url, event_hooks={"request": [lambda r: sent.append((r.url.path, r.read()))]}, **kwargs)
    return http, sent


def _attached(url: str, tag: str) -> list[tuple[int, str]]:
    """(seq, event id) of every `tag_attached` of `tag` in the log."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT data FROM tagledger_events_tt_main ORDER BY id").fetchall()
    entries = [read_entry(bytes(data)) for (data,) in rows]
    return [(e.seq, e.body["id"]) for e in entries
            if e.body["type"] == "tag_attached" and e.body["stream"] == f"tag:{tag}"]


def test_client_resubmits_the_same_bytes_after_503_and_never_signs_again(proxied, fresh_pg_url: str) -> None:
    world, proxy, server = proxied
    http, sent = _recording_client(server.url)
    signer = CountingSigner(world.signer("kalimbi"))
    client = LedgerClient(HttpTransport(server.url, client=http), signer)  # type: ignore[arg-type]
    proxy.cut_next_commit("after")
    proxy.refusing = True  # the server answers 503 (outcome unknown, then not written) for a few seconds
    reopen = threading.Timer(3.0, lambda: setattr(proxy, "refusing", False))
    reopen.start()
    try:
        receipt = client.attach("KAL-000001", mineral="tin", mass_g=40_000, pit="P1", time=world.tick())
    finally:
        reopen.cancel()
        reopen.join()
        http.close()
    posts = [body for path, body in sent if path == "/v1/events"]
    assert len(posts) >= 2, "the client did not resubmit"
    assert len(set(posts)) == 1, "the client sent different bytes"
    assert signer.signed == 1, "the client signed again"
    assert receipt["duplicate"] is True  # the first send was committed; the resubmission got its receipt
    assert _attached(fresh_pg_url, "KAL-000001") == [(receipt["seq"], receipt["event_id"])]


def test_client_resubmits_the_same_bytes_after_a_timeout_and_nothing_is_recorded_twice(
        proxied, fresh_pg_url: str) -> None:
    world, proxy, server = proxied
    http, sent = _recording_client(server.url, timeout=0.5)
    signer = CountingSigner(world.signer("kalimbi"))
    client = LedgerClient(HttpTransport(server.url, client=http), signer)  # type: ignore[arg-type]
    proxy.hold_next_commit(2.0)  # a slow store: the client's read times out while the server still commits
    try:
        receipt = client.attach("KAL-000002", mineral="tin", mass_g=41_000, pit="P1", time=world.tick())
    finally:
        http.close()
    posts = [body for path, body in sent if path == "/v1/events"]
    assert len(posts) >= 2 and len(set(posts)) == 1
    assert signer.signed == 1
    assert receipt["duplicate"] is True
    assert _attached(fresh_pg_url, "KAL-000002") == [(receipt["seq"], receipt["event_id"])]


def test_client_batch_resubmits_only_the_items_without_a_definite_outcome(proxied, fresh_pg_url: str) -> None:
    world, proxy, server = proxied
    envelopes = [json.loads(raw) for raw in _attaches(world, 1, 10)]
    envelopes[3]["body"]["data"]["mass_g"] += 1  # the signature no longer verifies: a definite refusal
    http, sent = _recording_client(server.url)
    proxy.cut_next_commit("before")
    try:
        results = HttpTransport(server.url, client=http).submit_batch(envelopes)
    finally:
        http.close()
    batches = [json.loads(body) for path, body in sent if path == "/v1/events/batch"]
    assert len(batches) >= 2, "nothing was resubmitted"
    ids = [[e["body"]["id"] for e in batch] for batch in batches]
    assert ids[0] == [e["body"]["id"] for e in envelopes]
    assert envelopes[3]["body"]["id"] not in ids[1], "a definite refusal was resubmitted"
    assert set(ids[1]) < set(ids[0])
    assert results[3]["status"] == 422 and results[3]["problem"]["rule"] == "signature.invalid"
    assert [r["status"] for i, r in enumerate(results) if i != 3] == [201] * 9
    log = _log(fresh_pg_url)
    for i, envelope in enumerate(envelopes):
        assert len(log.get(envelope["body"]["id"], [])) == (0 if i == 3 else 1)
