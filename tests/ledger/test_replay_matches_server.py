"""The auditor's replay (verification/) folds the same custody states as the server, to the byte.

The server's custody projection (`ledger.projection.CustodyProjection`) stores one row per tag,
`jcs(TagState.to_json())`, and a digest over them; `verification.replay` computes both from the log's bytes
alone, with its own code. They must be equal: on the demo data set (both backends), "as of" several positions
of the log (the projection caught up page by page to exactly that position), and on random histories played
through the ledger (property-based, including the refused events, which must leave no trace).
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings

from ledger import projection as projection_module
from ledger.client import LocalTransport, Signer
from ledger.demo import DEMO_DAYS, load_demo
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.projection import CustodyProjection
from ledger.service import Ledger
from ledger.store.base import open_store
from tests.ledger.test_projection import OPS, _play
from tests.ledger.world import make_world
from verification.parallel import replay_entries
from verification.replay import replay_sequential

DEMO_TAGS_PER_SITE = 12


def build_demo(url: str) -> Ledger:
    """A ledger with the demo loaded (its genesis older than the demo's two months)."""
    ledger = Ledger.open(url)
    keys = GenesisKeys(KeyPair.generate(), KeyPair.generate())
    create_ledger(ledger, name="tagledger demo", operator="itsci", operator_name="ITSCI Programme", country="GB",
                  log_key_name="tagledger.demo/log", keys=keys, time=datetime.now(timezone.utc) - timedelta(days=DEMO_DAYS + 1))
    load_demo(LocalTransport(ledger), Signer("itsci", keys.root), seed=7, tags_per_site=DEMO_TAGS_PER_SITE)
    return ledger


def _entries(url: str) -> list[bytes]:
    store = open_store(url)
    try:
        return [stored.data for stored in store.iter_all()]
    finally:
        store.close()


def test_the_demo_replays_to_the_servers_projection(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = build_demo(store_url)
    try:
        entries = _entries(store_url)  # read back through a store of its own, as an auditor would
        assert len(entries) == ledger.store.size()
        projection = CustodyProjection(ledger.store)

        # as of a few positions: the projection is caught up one page at a time, each page ending there
        n = len(entries)
        done = 0
        for seq in (0, 7, n // 3, n // 2 + 1, n - 2):
            monkeypatch.setattr(projection_module, "PAGE", seq + 1 - done)
            projection.catch_up(limit=1)
            done = seq + 1
            assert projection.position() == done
            replayed = replay_sequential(entries, stop_after_seq=seq)
            assert list(replayed.rows()) == projection.rows()
            assert replayed.digest == projection.digest()

        monkeypatch.setattr(projection_module, "PAGE", 2000)
        projection.catch_up()
        assert projection.position() == n
        replayed = replay_entries(entries, workers=2, chunk_size=200)
        assert list(replayed.rows()) == projection.rows()  # every tag, every byte
        assert replayed.digest == projection.digest()
        assert replayed.counts == projection.counts_by_status()
    finally:
        ledger.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_histories_replay_to_the_servers_projection(ops) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(f"sqlite:///{tmp}/ledger.db", tags=6)
        try:
            _play(world, ops)
            projection = CustodyProjection(world.ledger.store)
            projection.catch_up()
            entries = [stored.data for stored in world.ledger.store.iter_all()]
            replayed = replay_sequential(entries)
            assert list(replayed.rows()) == projection.rows()
            assert replayed.digest == projection.digest()
        finally:
            world.ledger.close()


def test_scans_and_risk_events_replay_to_the_servers_projection(store_url: str) -> None:
    """`tag_scanned` and the risk events (protocol sections 6, 7, 16) on both backends: the lifecycle of
    tests/unit/test_replay_risk.py, whose every attempt (accepted or refused) the replay judges as the ledger
    did; then the log, read back through a store of its own, replays to the projection's rows and digest, and
    the replay's incidents are the server's."""
    from tests.unit.test_replay_risk import Judge, play_lifecycle, risk_world

    world = risk_world(store_url)
    try:
        judge = Judge(world)
        play_lifecycle(judge)
        assert sum(not verdict.accepted for _, verdict in judge.judged) >= 70
        entries = _entries(store_url)
        assert len(entries) == world.ledger.store.size()
        projection = CustodyProjection(world.ledger.store)
        projection.catch_up()
        replayed = replay_sequential(entries)
        assert list(replayed.rows()) == projection.rows()
        assert replayed.digest == projection.digest()
        multi = replay_entries(entries, workers=2, chunk_size=11)
        assert (multi.size, multi.digest, multi.root) == (replayed.size, replayed.digest, replayed.root)
        risk = replayed.replayer.risk
        book = world.ledger.risk_book([f"incident:{i}" for i in risk.incidents])
        assert {i: (s.status, s.severity, s.head.hash.hex()) for i, s in risk.incidents.items()} == {
            i: (s.status, s.severity, s.head.hash) for i, s in book.incidents.items()}
        assert len(risk.incidents) == 3
    finally:
        world.ledger.close()
