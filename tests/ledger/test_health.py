"""The health rules (ledger/health.py), read from a real store on both backends: when writes must wait for a
checkpoint (`log.checkpoint_stale`), when they need not, and when the service is ready.

The rules compare times; the tests pass the instant to judge at (`now`) instead of waiting for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from ledger.entries import read_entry
from ledger.health import CHECKPOINT_BOUND_SECONDS, PROJECTION_BOUND_SECONDS, HealthMonitor, read_snapshot
from tests.ledger.world import World, make_world
from verification.encoding import parse_time

BOUND = CHECKPOINT_BOUND_SECONDS


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    world = make_world(store_url, tags=5)
    try:
        yield world
    finally:
        world.ledger.close()


def _received(world: World, seq: int) -> datetime:
    return parse_time(read_entry(world.ledger.store.read_range(seq, seq + 1)[0].data).received)


def _attach(world: World, tag: str) -> int:
    """Record one entry; return its seq."""
    world.clients["kalimbi"].attach(tag, mineral="tin", mass_g=10_000, pit="P1", time=world.tick())
    return world.ledger.store.size() - 1


def _monitor(world: World, *, started: datetime) -> HealthMonitor:
    monitor = HealthMonitor(world.ledger, refuse_stale_writes=True)
    monitor.started_at = started
    return monitor


def test_a_quiet_ledger_needs_no_new_checkpoint(world: World) -> None:
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)  # covers every entry
    snapshot = read_snapshot(world.ledger)
    assert snapshot.checkpoint_size == snapshot.entries == world.ledger.store.size()
    assert snapshot.first_unsigned_received is None
    monitor = _monitor(world, started=snapshot.taken_at - timedelta(days=1))
    a_day_later = snapshot.taken_at + timedelta(days=1)
    assert snapshot.checkpoint_age(a_day_later) > BOUND  # an old checkpoint...
    assert monitor.stale_checkpoint(snapshot, a_day_later) is None  # ...but nothing waits for a new one
    assert monitor.verdict(snapshot, a_day_later).checks["checkpoint"]["ok"] is True


def test_an_entry_waiting_beyond_the_bound_makes_the_checkpoint_stale(world: World) -> None:
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    signed = world.ledger.store.size()
    first = _attach(world, "KAL-000001")
    _attach(world, "KAL-000002")
    assert first == signed
    snapshot = read_snapshot(world.ledger)
    received = _received(world, first)
    assert (snapshot.checkpoint_size, snapshot.entries) == (signed, signed + 2)
    assert snapshot.first_unsigned_received == received  # the oldest entry no checkpoint covers
    monitor = _monitor(world, started=received - timedelta(hours=1))

    assert monitor.stale_checkpoint(snapshot, received + timedelta(seconds=BOUND - 1)) is None
    reason = monitor.stale_checkpoint(snapshot, received + timedelta(seconds=BOUND + 1))
    assert reason is not None and f"entry #{first}" in reason and f"{signed} of {signed + 2} entries" in reason
    verdict = monitor.verdict(snapshot, received + timedelta(seconds=BOUND + 1))
    assert verdict.ready is False and verdict.checks["checkpoint"]["ok"] is False

    world.ledger.publish_checkpoint()  # somebody signs: fresh again, however late it is
    later = read_snapshot(world.ledger)
    assert later.first_unsigned_received is None
    assert monitor.stale_checkpoint(later, received + timedelta(hours=1)) is None


def test_no_refusal_in_the_first_seconds_after_start(world: World) -> None:
    """Entries left unsigned by a previous server count from this server's start, not from their receipt."""
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    seq = _attach(world, "KAL-000003")
    received = _received(world, seq)
    started = received + timedelta(hours=2)  # this server started long after the entry was accepted
    monitor = _monitor(world, started=started)
    snapshot = read_snapshot(world.ledger)
    assert monitor.stale_checkpoint(snapshot, started + timedelta(seconds=BOUND - 1)) is None
    assert monitor.stale_checkpoint(snapshot, started + timedelta(seconds=BOUND + 1)) is not None


def test_a_projection_behind_beyond_its_bound_is_not_ready(world: World) -> None:
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    world.ledger.start_projection(follow=False)  # opened, not followed: nothing folded yet
    snapshot = read_snapshot(world.ledger)
    first_pending = _received(world, 0)
    assert snapshot.projections["custody"] == (0, first_pending)
    monitor = _monitor(world, started=first_pending - timedelta(hours=1))
    late = first_pending + timedelta(seconds=PROJECTION_BOUND_SECONDS + 1)
    verdict = monitor.verdict(snapshot, late)
    assert verdict.ready is False
    assert verdict.checks["projection.custody"]["ok"] is False
    assert verdict.checks["projection.custody"]["lag_entries"] == snapshot.entries
    assert verdict.checks["checkpoint"]["ok"] is True

    world.ledger.projection.catch_up()
    world.ledger.flags.catch_up()
    caught_up = read_snapshot(world.ledger)
    assert caught_up.projection_lag("custody", late) == (0, 0.0)
    assert monitor.verdict(caught_up, late).ready is True
