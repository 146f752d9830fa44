"""verification.event_ids: every event id kept exactly, with its seq, in constant memory (a bitmap and a file).

The reference is a plain dict ``id -> seq``. The store runs with tiny sizes (every id on disk at once, a bitmap
of 8 bits where nearly every id collides) so that lookups really go to the file.
"""

from __future__ import annotations

import gc
import json
import os
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replay import FORK, Demo, Log, build_demo, reencode

from verification import event_ids
from verification.entry import decode_entry
from verification.entry_checks import fingerprint
from verification.event_ids import EventIds
from verification.parallel import replay_entries
from verification.replay import replay_sequential
from verification.replay_errors import ReplayError

KEY = bytes(range(16))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, 60), max_size=200),
    batch=st.sampled_from([1, 2, 7, 4096]),
    filter_bits=st.sampled_from([8, 64, 1 << 12]),
    constant_fingerprint=st.booleans(),
)
def test_event_ids_equal_a_plain_dict(picks: list[int], batch: int, filter_bits: int,
                                      constant_fingerprint: bool) -> None:
    """Feed ids as the replay does (ask, then add the new ones): the same answers as a dict, duplicates named
    with the seq of their first use, whether the first use is in memory or on disk and whatever collides."""
    ids = [str(uuid.UUID(int=i * 0x9E3779B97F4A7C15)) for i in range(61)]
    seen = EventIds(batch=batch, filter_bits=filter_bits)
    naive: dict[str, int] = {}
    for seq, pick in enumerate(picks):
        event_id = ids[pick]
        mark = 0 if constant_fingerprint else fingerprint(event_id, KEY)  # 0: every id on the same bit
        assert seen.earlier(event_id, mark) == naive.get(event_id)
        if event_id not in naive:
            seen.add(event_id, mark, seq)
            naive[event_id] = seq
    assert len(seen) == len(naive)
    assert seen.on_disk == (len(naive) >= batch)
    for event_id in ids:
        assert seen.earlier(event_id, 0 if constant_fingerprint else fingerprint(event_id, KEY)) == naive.get(event_id)
    seen.close()


def test_many_ids_bitmap_collisions_cost_reads_not_answers() -> None:
    rng = random.Random(4)
    seen = EventIds(batch=100, filter_bits=1 << 10)  # 1,024 bits for 5,000 ids: most new ids collide
    naive: dict[str, int] = {}
    for seq in range(5000):
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        assert seen.earlier(event_id, fingerprint(event_id, KEY)) is None
        seen.add(event_id, fingerprint(event_id, KEY), seq)
        naive[event_id] = seq
    assert seen.disk_reads > 1000 and len(seen._recent) < 100 and len(seen) == 5000
    for event_id, seq in rng.sample(sorted(naive.items()), 500):
        assert seen.earlier(event_id, fingerprint(event_id, KEY)) == seq
    roomy = EventIds(batch=100)  # the default bitmap: a new id is answered without a read, nearly always
    for seq, event_id in enumerate(naive):
        assert roomy.earlier(event_id, fingerprint(event_id, KEY)) is None
        roomy.add(event_id, fingerprint(event_id, KEY), seq)
    assert roomy.disk_reads < 5 and roomy.on_disk

    directory = seen._db.directory
    assert directory is not None and os.listdir(directory)
    seen.close()
    assert not os.path.exists(directory)
    directory = roomy._db.directory
    del roomy  # deleted when garbage-collected, too
    gc.collect()
    assert directory is not None and not os.path.exists(directory)
    with pytest.raises(ValueError):
        EventIds(filter_bits=100)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    ledger, built = build_demo(f"sqlite:///{tmp_path_factory.mktemp('ids') / 'ledger.db'}")
    ledger.close()
    return built


@pytest.mark.parametrize("where", ["on disk", "in memory"])
def test_a_duplicate_id_is_found_and_names_the_first_use(demo: Demo, where: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "on disk":  # every id written at once, every lookup a collision
        monkeypatch.setattr(event_ids, "BATCH", 1)
        monkeypatch.setattr(event_ids, "FILTER_BITS", 8)
    entries = demo.entries
    for k in (1, len(entries) // 3, len(entries) - 2):
        last = len(entries) - 1  # entry k's event again, as the last entry
        doubled = entries[:last] + [reencode(entries[k], seq=last, received=decode_entry(entries[last]).received)]
        with pytest.raises(ReplayError) as sequential:
            replay_sequential(doubled)
        error = sequential.value
        assert (error.seq, error.rule, error.field) == (len(entries) - 1, "event.duplicate_id", "/body/id")
        assert error.message.endswith(f"was used before, by entry #{k}")
        with pytest.raises(ReplayError) as multi:
            replay_entries(doubled, workers=2, chunk_size=17, mp_context=FORK)
        assert (multi.value.seq, multi.value.rule, multi.value.message) == (error.seq, error.rule, error.message)
    result = replay_sequential(entries)  # and no false alarm on the intact log, even with every id colliding
    assert result.size == len(entries) and result.replayer._ids.on_disk == (where == "on disk")


def test_a_duplicate_id_in_a_hand_made_log() -> None:
    log = Log()
    log.attach("BAG-1")
    first = log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"})
    again = log.emit("trader", "custody_received", "tag:BAG-1", {"mass_g": 40_000},
                     id=json.loads(log.entries[first])["envelope"]["body"]["id"])
    with pytest.raises(ReplayError) as failed:
        replay_sequential(log.entries)
    assert (failed.value.seq, failed.value.rule) == (again, "event.duplicate_id")
    assert f"by entry #{first}" in failed.value.message
