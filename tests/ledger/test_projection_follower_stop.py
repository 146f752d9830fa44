"""Stopping the service never waits for the projections' whole backlog: the follower looks for a stop between
pages (ledger/projection.py, `ProjectionFollower`), so `tagledger serve` exits promptly even while a projection is
being rebuilt or caught up on a freshly imported log."""

from __future__ import annotations

import threading

import pytest

from ledger import projection as projection_module
from ledger.projection import CustodyProjection, ProjectionFollower
from tests.ledger.world import make_world


def test_a_stop_asked_during_a_backlog_ends_after_the_page_in_hand(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection_module, "PAGE", 3)  # a backlog of several pages from a small log
    world = make_world(store_url, tags=5)
    try:
        size = world.ledger.store.size()
        assert size > 3 * 2  # more than two pages
        in_page = threading.Event()
        resume = threading.Event()
        limits: list[int | None] = []

        class HeldProjection(CustodyProjection):
            def catch_up(self, limit: int | None = None) -> int:
                limits.append(limit)
                in_page.set()
                resume.wait(30)  # the first page is held until the stop has been asked for
                return super().catch_up(limit)

        held = HeldProjection(world.ledger.store)
        follower = ProjectionFollower(held)
        follower.start()
        assert in_page.wait(30)
        stopping = threading.Thread(target=follower.stop)
        stopping.start()
        while not follower._stopped.is_set():  # noqa: SLF001 - the stop has been asked for
            pass
        resume.set()
        stopping.join(30)
        assert not stopping.is_alive() and not follower._thread.is_alive()  # noqa: SLF001
        assert held.position() == 3  # the page in hand was folded, and nothing after it
        assert held.position() < size
        assert limits and None not in limits  # never an unbounded catch-up
    finally:
        world.ledger.close()
