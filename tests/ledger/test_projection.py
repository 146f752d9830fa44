"""The custody projection: incremental == rebuilt from scratch == each tag's own fold, to the byte."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import projection as projection_module
from ledger.client import LedgerError
from ledger.projection import CustodyProjection
from tests.ledger.world import World, example_database, make_world
from verification.canonical import jcs

HOLDERS = ["kalimbi", "coop", "trader", "depot", "exporter", "refiner"]
FORWARD = {"kalimbi": "trader", "coop": "depot", "trader": "depot", "depot": "refiner", "exporter": "refiner"}
KINDS = ["advance"] * 8 + ["attach"] * 2 + ["dispatch"] * 4 + ["receive"] * 4 + ["merge"] * 2 + ["split", "consume", "consume", "void"]
TAGS = [f"KAL-{i:06d}" for i in range(1, 7)] + [f"LOT-{i:04d}" for i in range(1, 6)]
OPS = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, len(TAGS) - 1),  # which tag
        st.integers(0, 2 * len(HOLDERS) - 1),  # recipient: the next one along the chain, or any organisation
        st.integers(-3000, 1500),  # mass change in grams (some beyond the tolerance: rejected)
    ),
    min_size=5,
    max_size=60,
)


def _play(world: World, ops: list[tuple[str, int, int, int]]) -> None:
    """Try each operation as the tag's plausible actor; the ledger rejects what breaks a rule."""
    for kind, index, org_index, delta in ops:
        tag = TAGS[index]
        state = world.ledger.tag(tag).state
        actor = state.holder or state.issued_to
        mass = (state.mass_g or 40_000) + delta
        if kind == "advance":  # the next natural step of this tag's journey
            kind = {"issued": "attach", "in_custody": "dispatch", "in_transit": "receive"}.get(str(state.status), "")
            if kind == "dispatch" and actor == "depot" and org_index % 2:
                kind = "merge"
            if kind == "dispatch" and actor == "refiner":
                kind = "consume"
            org_index = 0
        try:
            if kind == "attach" and tag.startswith("KAL"):
                world.clients[actor].attach(tag, mineral="tin", mass_g=40_000 + delta, pit="P1", time=world.tick())
            elif kind == "dispatch":
                to = HOLDERS[org_index - len(HOLDERS)] if org_index >= len(HOLDERS) else FORWARD.get(actor, "depot")
                world.clients[actor].dispatch(tag, to, time=world.tick())
            elif kind == "receive":
                world.clients[state.pending_recipient or actor].receive(tag, mass_g=max(mass, 1), time=world.tick())
            elif kind == "merge":
                held = [t for t in TAGS[:6] if (s := world.ledger.tag(t).state).holder == "depot"
                        and s.status == "in_custody"]
                lot = next((t for t in TAGS[6:] if world.ledger.tag(t).state.status == "issued"), TAGS[6])
                total = sum(world.ledger.tag(t).state.mass_g for t in held)
                world.clients["depot"].merge(lot, held or [tag], mass_g=max(total + delta // 10, 1), time=world.tick())
            elif kind == "split":
                fresh = [t for t in TAGS[6:] if world.ledger.tag(t).state.status == "issued"][:2]
                half = mass // 2
                world.clients[actor].split(tag, dict(zip(fresh, [half, mass - half])), time=world.tick())
            elif kind == "consume":
                world.clients[actor].consume(tag, time=world.tick())
            elif kind == "void" and delta < -2000:  # rarely: a voided tag ends its story
                world.clients[actor].void(tag, "lost", time=world.tick())
        except LedgerError:
            pass


def _check_projection(world: World, page: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection_module, "PAGE", page)
    projection = CustodyProjection(world.ledger.store)
    projection.catch_up()
    assert projection._cached_at == projection.position()  # noqa: SLF001 - pages were folded onto kept states
    incremental = projection.rows()
    digest = projection.digest()
    assert projection.position() == world.ledger.store.size()

    projection.drop()
    assert projection.count() == 0 and projection.position() == 0
    monkeypatch.setattr(projection_module, "PAGE", 10_000)
    projection.catch_up()
    assert projection.rows() == incremental  # to the byte
    assert projection.digest() == digest

    for tag, state in incremental:
        assert state == jcs(world.ledger.tag(tag).state.to_json())  # same as the tag's own fold

    # page after page, the states are folded onto those kept in memory (issue 13); without that cache every page
    # reads its tags' rows back from the view: the same bytes
    monkeypatch.setattr(projection_module, "PAGE", page)
    monkeypatch.setattr(CustodyProjection, "CACHE_LIMIT", 0)
    projection.drop()
    projection.catch_up()
    assert projection._cached == {}  # noqa: SLF001 - this pass did read every page's states from the view
    assert projection.rows() == incremental


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, page=st.integers(1, 50))
def test_sqlite_projection_rebuilds_to_identical_bytes(ops, page, monkeypatch) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(f"sqlite:///{tmp}/ledger.db", tags=6)
        try:
            _play(world, ops)
            _check_projection(world, page, monkeypatch)
        finally:
            world.ledger.close()


@pytest.mark.postgres
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, page=st.integers(1, 50))
def test_postgres_projection_rebuilds_to_identical_bytes(ops, page, monkeypatch, fresh_pg_url) -> None:
    with example_database(fresh_pg_url) as url:
        world = make_world(url, tags=6)
        try:
            _play(world, ops)
            _check_projection(world, page, monkeypatch)
        finally:
            world.ledger.close()


def test_the_service_follows_the_log_including_other_processes_writes(store_url: str) -> None:
    import time

    from ledger.service import Ledger
    from tests.ledger.world import attach_and_deliver

    world = make_world(store_url, tags=4)
    other = Ledger.open(store_url)
    try:
        projection = world.ledger.start_projection()
        attach_and_deliver(world, "KAL-000001")
        writer_elsewhere = world.signer("kalimbi")
        other.submit(writer_elsewhere.envelope(
            "tag_attached", "tag:KAL-000002", other.head("tag:KAL-000002").hash,
            {"site": "kalimbi", "mineral": "tin", "mass_g": 12_000, "pit": "P9"}, time=world.tick()))
        deadline = time.monotonic() + 10
        while projection.position() < world.ledger.store.size() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert projection.position() == world.ledger.store.size()
        rows = {state["tag"]: state for state in projection.query(status="in_custody")}
        assert rows["KAL-000001"]["holder"] == "trader"
        assert rows["KAL-000002"]["origin"]["pit"] == "P9"
    finally:
        other.close()
        world.ledger.close()


def test_concurrent_processors_and_a_rebuild_never_apply_an_entry_twice(store_url: str, monkeypatch) -> None:
    # `tagledger serve`'s follower and `tagledger projection rebuild` (or a second server) may process the
    # same entries at the same time, each in its own process, while the log grows: here two stores (their own
    # connections) in threads, a third thread writing
    import threading

    from ledger.store.base import open_store
    from tests.ledger.world import attach_and_deliver

    world = make_world(store_url, tags=60)
    stores = [open_store(store_url) for _ in range(2)]
    try:
        monkeypatch.setattr(projection_module, "PAGE", 3)  # many small pages: many chances to interleave
        processors = [CustodyProjection(store) for store in stores]
        errors: list[BaseException] = []
        writing = threading.Event()

        def run(work) -> None:  # noqa: ANN001
            try:
                work()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        def write() -> None:
            for i in range(1, 61):
                attach_and_deliver(world, f"KAL-{i:06d}")
            writing.set()

        def follow() -> None:
            while not writing.is_set():
                processors[0].catch_up()

        def rebuild() -> None:
            while not writing.is_set():
                processors[1].drop()
                processors[1].catch_up()

        threads = [threading.Thread(target=run, args=(work,)) for work in (write, follow, rebuild)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        processors[0].catch_up()  # one more pass ends at the end of the log
        assert processors[0].position() == world.ledger.store.size()

        reference = CustodyProjection(world.ledger.store)
        reference.drop()
        reference.catch_up()
        assert processors[0].rows() == reference.rows()
        assert sum(1 for _, state in reference.rows() if b'"in_custody"' in state) == 60
    finally:
        for store in stores:
            store.close()
        world.ledger.close()


def test_postgres_summary_pages_are_read_by_index_in_byte_order(fresh_pg_url: str) -> None:
    """`GET /v1/projection`'s summary pages through the rows in byte order (`COLLATE "C"`), which the primary key,
    in the database's collation, cannot serve: without migration 008's index every page scanned and sorted the
    whole table (73 s for 1M tags, docs/benchmarks.md section 13). With sorting disallowed, the planner must find a
    plan without a Sort: an index in that order. And the summary still counts and orders the rows as before."""
    import psycopg

    world = make_world(fresh_pg_url, tags=12)
    try:
        custody = world.ledger.start_projection(follow=False)
        custody.catch_up()
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
            collation = conn.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()").fetchone()[0]
            conn.execute("SET enable_sort = off")
            conn.execute("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + custody.summary_page_sql(), ["KAL-000003"]))
        assert "Sort" not in plan and "tagledger_custody_view_tag_bytes" in plan, (collation, plan)
        summary = custody.summary()
        assert summary["tags"] == custody.count() > 0
        rows = custody.rows()
        assert [tag for tag, _ in rows] == sorted(tag for tag, _ in rows)
    finally:
        world.ledger.close()
