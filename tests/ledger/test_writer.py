"""The write path on both backends: conflicts, idempotency, atomic rejection, batches, restarts."""

from __future__ import annotations

import threading

import pytest

from domain.errors import RuleViolation
from ledger.client import LedgerError
from ledger.service import Ledger
from tests.ledger.world import attach_and_deliver, make_world


@pytest.fixture
def world(store_url: str):
    w = make_world(store_url)
    yield w
    w.ledger.close()


def test_two_conflicting_dispatches_never_both_land(world) -> None:
    ledger = world.ledger
    world.clients["kalimbi"].attach("KAL-000001", mineral="tin", mass_g=40_000, pit="P1", time=world.tick())
    head = ledger.head("tag:KAL-000001").hash
    site = world.signer("kalimbi")
    when = world.tick()
    rivals = [site.envelope("custody_dispatched", "tag:KAL-000001", head, {"to": to}, time=when)
              for to in ("trader", "coop", "exporter", "depot")]
    results: list[object] = [None] * len(rivals)

    def send(i: int) -> None:
        try:
            results[i] = ledger.submit(rivals[i])
        except RuleViolation as violation:
            results[i] = violation

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(rivals))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if not isinstance(r, RuleViolation)]
    losers = [r for r in results if isinstance(r, RuleViolation)]
    assert len(winners) == 1
    assert len(losers) == 3
    for loser in losers:
        assert loser.rule == "stream.conflict"
        assert loser.is_conflict
        assert loser.extra["head"]["hash"] == winners[0].hash
        assert loser.extra["expected"] == head
    assert ledger.tag("KAL-000001").state.pending_recipient in {"trader", "coop", "exporter", "depot"}


def test_resubmitting_the_same_envelope_returns_the_original_result(world) -> None:
    ledger = world.ledger
    envelope = world.signer("kalimbi").envelope(
        "tag_attached", "tag:KAL-000002", ledger.head("tag:KAL-000002").hash,
        {"site": "kalimbi", "mineral": "tin", "mass_g": 30_000, "pit": "P2"}, time=world.tick())
    first = ledger.submit(envelope)
    size = ledger.store.size()
    again = ledger.submit(envelope)
    assert again.duplicate and not first.duplicate
    assert (again.seq, again.hash, again.received) == (first.seq, first.hash, first.received)
    assert ledger.store.size() == size
    altered = {"body": {**envelope["body"], "data": {**envelope["body"]["data"], "mass_g": 31_000}}, "sig": ""}
    altered = world.signer("kalimbi").envelope(
        "tag_attached", "tag:KAL-000002", envelope["body"]["prev"], altered["body"]["data"],
        time=envelope["body"]["time"], event_id=envelope["body"]["id"])
    with pytest.raises(RuleViolation) as caught:
        ledger.submit(altered)
    assert caught.value.rule == "event.duplicate_id"
    assert caught.value.extra["seq"] == first.seq
    assert ledger.store.size() == size


def test_rejected_writes_leave_nothing_behind(world) -> None:
    ledger = world.ledger
    before = ledger.store.size()
    with pytest.raises(LedgerError) as caught:
        world.clients["trader"].dispatch("KAL-000003", "coop", time=world.tick())
    assert caught.value.rule == "tag.not_attached"
    envelope = world.signer("kalimbi").envelope(
        "tag_attached", "tag:KAL-000003", ledger.head("tag:KAL-000003").hash,
        {"site": "kalimbi", "mineral": "tin", "mass_g": 30_000, "pit": "P2"}, time=world.tick())
    envelope["sig"] = envelope["sig"][:-2] + ("AA" if envelope["sig"][-2:] != "AA" else "AQ")
    with pytest.raises(RuleViolation) as bad_sig:
        ledger.submit(envelope)
    assert bad_sig.value.rule == "signature.invalid"
    assert ledger.store.size() == before
    assert ledger.tag("KAL-000003").state.status == "issued"


def test_a_batch_admits_dependent_events_and_judges_each_on_its_own(world) -> None:
    ledger = world.ledger
    site, trader = world.signer("kalimbi"), world.signer("trader")
    head = ledger.head("tag:KAL-000004").hash
    attach = site.envelope("tag_attached", "tag:KAL-000004", head,
                           {"site": "kalimbi", "mineral": "tin", "mass_g": 20_000, "pit": "P1"}, time=world.tick())
    from verification.envelope import Envelope, envelope_hash

    h1 = envelope_hash(Envelope.from_json(attach))
    fraud = trader.envelope("custody_dispatched", "tag:KAL-000004", h1, {"to": "coop"}, time=world.tick())
    dispatch = site.envelope("custody_dispatched", "tag:KAL-000004", h1, {"to": "trader"}, time=world.tick())
    h2 = envelope_hash(Envelope.from_json(dispatch))
    receive = trader.envelope("custody_received", "tag:KAL-000004", h2, {"mass_g": 19_900}, time=world.tick())
    before = ledger.store.size()
    results = ledger.submit_many([attach, fraud, dispatch, receive])
    assert isinstance(results[1], RuleViolation) and results[1].rule == "custody.not_holder"
    assert [r.seq for r in (results[0], results[2], results[3])] == [before, before + 1, before + 2]
    assert ledger.store.size() == before + 3
    assert ledger.tag("KAL-000004").state.holder == "trader"


def test_a_second_ledger_process_on_the_same_store_continues_the_log(world, store_url: str) -> None:
    attach_and_deliver(world, "KAL-000005")
    other = Ledger.open(store_url)
    try:
        trader = world.signer("trader")
        envelope = trader.envelope("custody_dispatched", "tag:KAL-000005", other.head("tag:KAL-000005").hash,
                                   {"to": "depot"}, time=world.tick())
        receipt = other.submit(envelope)
        assert receipt.seq == world.ledger.store.size() - 1
        # the first instance sees the second one's write and keeps the chain
        world.clients["depot"].receive("KAL-000005", mass_g=49_800, time=world.tick())
        assert world.ledger.tag("KAL-000005").problems == []
        assert [e.position for e in world.ledger.store.iter_all()] == list(range(1, world.ledger.store.size() + 1))
    finally:
        other.close()


def test_every_entry_is_signed_by_its_actor_and_chained(world) -> None:
    attach_and_deliver(world, "KAL-000006", to="depot")
    attach_and_deliver(world, "KAL-000007", to="depot")
    world.clients["depot"].merge("LOT-0001", ["KAL-000006", "KAL-000007"], mass_g=99_800, time=world.tick())
    for tag in ("KAL-000006", "KAL-000007", "LOT-0001"):
        view = world.ledger.tag(tag)
        assert view.problems == []
    assert world.ledger.tag("LOT-0001").state.inputs == ["KAL-000006", "KAL-000007"]
    assert {o["tag"] for o in world.ledger.tag("LOT-0001").origins} == {"KAL-000006", "KAL-000007"}


def test_an_unexpected_error_in_one_envelope_does_not_fail_the_others(world, monkeypatch) -> None:
    import domain.rules
    from ledger import writer as writer_module

    real_check = domain.rules.check

    def flaky_check(body, **kwargs):
        if body["data"].get("pit") == "BOOM":
            raise ZeroDivisionError("a bug triggered by one envelope")
        return real_check(body, **kwargs)

    monkeypatch.setattr(writer_module, "check", flaky_check)
    site = world.signer("kalimbi")
    ledger = world.ledger
    good = site.envelope("tag_attached", "tag:KAL-000008", ledger.head("tag:KAL-000008").hash,
                         {"site": "kalimbi", "mineral": "tin", "mass_g": 1000, "pit": "P1"}, time=world.tick())
    bad = site.envelope("tag_attached", "tag:KAL-000009", ledger.head("tag:KAL-000009").hash,
                        {"site": "kalimbi", "mineral": "tin", "mass_g": 1000, "pit": "BOOM"}, time=world.tick())
    submissions = [writer_module.prepare(e) for e in (good, bad)]
    ledger.writer._run_batch(submissions)  # both in one batch, as concurrent requests would be
    futures = [s.future for s in submissions]
    assert futures[0].result().seq >= 0
    with pytest.raises(ZeroDivisionError):
        futures[1].result()
    assert ledger.tag("KAL-000008").state.status == "in_custody"
    assert ledger.tag("KAL-000009").state.status == "issued"
