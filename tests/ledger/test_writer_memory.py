"""What the writer keeps between transactions (ledger/writer_memory.py): used only while nobody else wrote, and
always equal to what the store holds."""

from __future__ import annotations

import pytest

from domain import custody
from domain.errors import RuleViolation
from ledger.entries import read_entry
from ledger.service import Ledger
from tests.ledger.world import attach_and_deliver, make_world


@pytest.fixture
def world(store_url: str):
    w = make_world(store_url)
    yield w
    w.ledger.close()


def _folded_from_store(ledger: Ledger, tag: str) -> dict:
    states: dict[str, custody.TagState] = {}
    for stored in ledger.store.read_tagged([f"tag:{tag}"]):
        entry = read_entry(stored.data)
        custody.apply(states, entry.body, entry.hash, entry.seq, only={tag})
    return states[tag].to_json()


def test_kept_tag_states_are_the_states_folded_from_the_store(world) -> None:
    for tag in ("KAL-000001", "KAL-000002", "KAL-000003"):
        attach_and_deliver(world, tag)
    trader = world.clients["trader"]
    trader.dispatch("KAL-000003", "depot", time=world.tick())
    world.clients["depot"].receive("KAL-000003", mass_g=49_000, time=world.tick())
    memory = world.ledger.writer._memory
    assert memory.size == world.ledger.store.size()
    kept = [tag for tag in memory.tags if tag.startswith("KAL-00000")]
    assert {"KAL-000001", "KAL-000002", "KAL-000003"} <= set(kept)
    for tag in kept:
        assert memory.tags[tag].to_json() == _folded_from_store(world.ledger, tag)


def test_a_write_by_another_process_is_seen_not_what_was_kept(world, store_url: str) -> None:
    """Two workers on one store: each keeps the states of its own writes; once the other has written, the kept
    head of a tag is stale and must not be used (else both dispatches of one bag would be accepted)."""
    first = world.ledger
    world.clients["kalimbi"].attach("KAL-000004", mineral="tin", mass_g=40_000, pit="P1", time=world.tick())
    attached = first.head("tag:KAL-000004").hash
    site = world.signer("kalimbi")
    second = Ledger.open(store_url)
    try:
        to_trader = site.envelope("custody_dispatched", "tag:KAL-000004", attached, {"to": "trader"},
                                  time=world.tick())
        landed = second.submit(to_trader)
        to_coop = site.envelope("custody_dispatched", "tag:KAL-000004", attached, {"to": "coop"}, time=world.tick())
        with pytest.raises(RuleViolation) as caught:
            first.submit(to_coop)
        assert caught.value.rule == "stream.conflict"
        assert caught.value.extra["head"]["hash"] == landed.hash
        receipt = world.clients["trader"].receive("KAL-000004", mass_g=39_900, time=world.tick())
        assert receipt["seq"] == landed.seq + 1
        assert receipt["received"] >= landed.received  # the log's times never go back
        assert first.tag("KAL-000004").state.holder == "trader"
    finally:
        second.close()


def test_a_failed_transaction_forgets_what_was_kept(world, monkeypatch) -> None:
    attach_and_deliver(world, "KAL-000005")
    memory = world.ledger.writer._memory
    assert memory.size == world.ledger.store.size() and memory.tags

    def fail(*args, **kwargs):
        raise RuntimeError("the store broke")

    monkeypatch.setattr(type(world.ledger.writer), "_check_signature", staticmethod(fail))
    with pytest.raises(RuntimeError):
        world.clients["trader"].dispatch("KAL-000005", "depot", time=world.tick())
    assert memory.size is None and not memory.tags
    monkeypatch.undo()
    world.clients["trader"].dispatch("KAL-000005", "depot", time=world.tick())
    assert memory.tags["KAL-000005"].to_json() == _folded_from_store(world.ledger, "KAL-000005")
