"""The read router's decisions, without a database: what is routed, `min_seq`, lag, the choice of a store.

The same behaviour against a real PostgreSQL hot standby is tested in tests/test_replication.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from api.read_routing import BadMinSeq, min_seq_of, routed
from ledger.replicas import ReadRouter, _Samples, read_db_urls, redacted


def scope(path: str, query: str = "", method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None):
    return {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": headers or []}


def test_public_reads_are_routed_and_nothing_else() -> None:
    for path in ("/v1/tags/KAL-1", "/t/KAL-1", "/v1/log/entries", "/tiles/checkpoint", "/v1/sites/s/risk",
                 "/v1/epcis/events", "/v1/reports/due-diligence/LOT-1", "/v1/incidents/INC-1",
                 "/v1/reports/rmap/refiner-x"):
        assert routed(scope(path)), path
        assert routed(scope(path, method="HEAD")), path
        assert not routed(scope(path, method="POST")), path
        assert not routed(scope(path, headers=[(b"authorization", b"Tagledger-Signature x")])), path
    for path in ("/v1/streams/tag:KAL-1/head", "/v1/orgs", "/v1/orgs/s/custody", "/v1/ledger", "/healthz",
                 "/app/", "/openapi.json", "/docs"):
        assert not routed(scope(path)), path


def test_min_seq_from_the_query_and_the_header() -> None:
    assert min_seq_of(scope("/v1/tags/X")) is None
    assert min_seq_of(scope("/v1/tags/X", "min_seq=7")) == 7
    assert min_seq_of(scope("/v1/tags/X", headers=[(b"x-min-seq", b" 12 ")])) == 12
    assert min_seq_of(scope("/v1/tags/X", "min_seq=3&min_seq=9", [(b"x-min-seq", b"5")])) == 9  # the largest
    assert min_seq_of(scope("/v1/tags/X", f"min_seq={2**63 - 1}")) == 2**63 - 1
    for bad in ("", "-1", "%2B1", "1.0", "1e3", "x", "%00", "0x10", str(2**63), "9" * 30, "%D9%A3"):  # Arabic-Indic 3
        with pytest.raises(BadMinSeq):
            min_seq_of(scope("/v1/tags/X", f"min_seq={bad}"))


def test_lag_is_how_long_the_primary_has_held_what_a_replica_lacks() -> None:
    samples = _Samples(horizon=60)
    samples.add(100.0, 10)
    samples.add(101.0, 10)  # unchanged: not kept
    samples.add(102.0, 15)
    samples.add(103.0, 20)
    assert samples.behind_since(20) is None  # holds everything seen
    assert samples.behind_since(10) == 102.0  # the primary first held more than 10 at 102
    assert samples.behind_since(3) == 100.0
    # old samples go, except the newest one older than the horizon (a true observation, however old)
    samples.add(300.0, 21)
    assert [when for when, _ in samples.items] == [103.0, 300.0]
    assert samples.behind_since(15) == 103.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_ledger(size: int, standby: bool = True, genesis: bytes = b"genesis") -> SimpleNamespace:
    """Just what the router reads: `store.size()`, `store.read_range(0, 1)`, a transaction with one row."""
    class Cursor:
        def execute(self, *args: object) -> None:
            pass

        def fetchone(self) -> dict[str, object]:
            return {"standby": standby, "size": store.size_value}

    class Transaction:
        def __enter__(self) -> Cursor:
            if store.down:
                raise ConnectionError("connection refused")
            return Cursor()

        def __exit__(self, *exc: object) -> None:
            pass

    store = SimpleNamespace(size_value=size, down=False)
    store.size = lambda: store.size_value
    store.read_range = lambda start, end: [SimpleNamespace(data=genesis)]
    store.datastore = SimpleNamespace(transaction=lambda commit=False: Transaction())
    return SimpleNamespace(store=store, close=lambda: None)


def test_the_router_sends_reads_to_replicas_in_rotation_and_falls_back_to_the_primary() -> None:
    clock = FakeClock()
    primary = fake_ledger(100)
    replicas = {"postgresql://a/db": fake_ledger(100), "postgresql://b/db": fake_ledger(90)}
    router = ReadRouter(primary, list(replicas), max_lag=5, open_replica=replicas.__getitem__, clock=clock)
    assert router.choose().name == "primary"  # nothing probed yet
    router.probe()
    assert {router.choose().name for _ in range(4)} == {"replica:1", "replica:2"}  # round robin
    assert {router.choose(min_seq=95).name for _ in range(4)} == {"replica:1"}  # only one holds #95
    assert router.choose(min_seq=100).name == "primary"  # none holds #100 (the primary is checked by the caller)
    # replica 2 stays at 90 while the primary grows: taken out once it has lagged more than 5 s
    replicas["postgresql://a/db"].store.size_value = 120
    primary.store.size_value = 120
    clock.now += 1
    router.probe()
    clock.now += 5.5
    router.probe()
    status = {s["name"]: s for s in router.status()}
    assert status["replica:1"]["in_rotation"] and status["replica:1"]["log_size"] == 120
    assert not status["replica:2"]["in_rotation"] and status["replica:2"]["reason"].startswith("lags")
    assert {router.choose().name for _ in range(4)} == {"replica:1"}
    # replica 1 fails: out, its pool closed; the primary answers; back once it answers a probe again
    router.failed(router.replicas[0], "connection refused")
    assert router.choose().name == "primary" and router.replicas[0].ledger is None
    replicas["postgresql://b/db"].store.size_value = 120
    clock.now += 0.5
    router.probe()
    assert {router.choose().name for _ in range(4)} == {"replica:1", "replica:2"}


def test_a_store_that_is_not_a_standby_of_this_ledger_is_never_read() -> None:
    primary = fake_ledger(10)
    others = {"postgresql://promoted/db": fake_ledger(10, standby=False),
              "postgresql://other/db": fake_ledger(10, genesis=b"another ledger"),
              "postgresql://empty/db": fake_ledger(0)}
    router = ReadRouter(primary, list(others), open_replica=others.__getitem__, clock=FakeClock())
    router.probe()
    reasons = [s["reason"] for s in router.status()[1:]]
    assert reasons[0].startswith("not a hot standby") and reasons[1].startswith("not a copy of this ledger")
    assert reasons[2] == "holds no entry yet"
    assert router.choose().name == "primary"


def test_a_replica_that_cannot_be_opened_stays_out_and_is_tried_again() -> None:
    primary = fake_ledger(10)
    opened: list[str] = []

    def open_replica(url: str) -> SimpleNamespace:
        opened.append(url)
        if len(opened) == 1:
            raise ConnectionError("could not connect")
        return fake_ledger(10)

    clock = FakeClock()
    router = ReadRouter(primary, ["postgresql://r/db"], open_replica=open_replica, clock=clock)
    router.probe()
    assert router.status()[1]["reason"].startswith("failed: ConnectionError")
    clock.now += 1
    router.probe()
    assert router.choose().name == "replica:1" and len(opened) == 2


def test_urls_and_redaction() -> None:
    assert read_db_urls(" postgresql://a/x \n postgresql://b/y ") == ["postgresql://a/x", "postgresql://b/y"]
    assert read_db_urls(None) == []
    assert redacted("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
