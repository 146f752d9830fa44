"""verification.tag_store: the tags' states in a bounded cache over a file, the replay's results unchanged.

The reference everywhere is the replay with every tag's state in a plain dict (:class:`InMemory`, the same
:class:`Replayer` with its ``tags`` replaced), or a plain dict of states folded by hand. The store runs with
tiny sizes (a cache of no tag or a few, every record written at once or held in memory), so that states
really leave the cache at every entry and are read back from disk when an event names them.
"""

from __future__ import annotations

import gc
import os
import random
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replay import FORK, Demo, Log, build_demo  # the demo log and the hand-made log

from verification import event_ids, tag_store
from verification.canonical import jcs
from verification.custody_state import (
    FINISHED,
    IN_CUSTODY,
    IN_TRANSIT,
    ISSUED,
    TagState,
    counts_by_status,
    custody_digest,
    state_rows,
)
from verification.parallel import replay_entries
from verification.replay import Replayer, replay_sequential
from verification.replay_errors import ReplayError
from verification.tag_store import StoredTagState, TagStates

KEY = bytes(range(16))
LIVE = (ISSUED, IN_CUSTODY, IN_TRANSIT)
# (cache_tags, write_bytes): every state out of the cache after each entry and written at once; out of the
# cache but held in memory; a cache big enough for everything (nothing leaves it but the finished tags)
STORAGE = {"on disk": (0, 1), "waiting": (0, 1 << 30), "cached": (1 << 20, 1 << 30)}


class InMemory(dict):
    """The replay's tags as a plain dict: every state in memory, nothing on disk."""

    peek = dict.get

    def settle(self, entry: Any) -> None:
        pass

    def first_issued(self, tags: Sequence[str]) -> int | None:
        return next((i for i, tag in enumerate(tags) if tag in self), None)


@pytest.fixture
def tiny_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tag cached between entries, every record written at once, every event id on disk at once."""
    monkeypatch.setattr(tag_store, "CACHE_TAGS", 0)
    monkeypatch.setattr(tag_store, "WRITE_BYTES", 1)
    monkeypatch.setattr(event_ids, "BATCH", 1)
    monkeypatch.setattr(event_ids, "FILTER_BITS", 8)


def replay(entries: list[bytes], *, store: bool = True) -> tuple[Replayer, ReplayError | None]:
    replayer = Replayer(id_key=KEY)
    if not store:
        replayer.tags = InMemory()  # type: ignore[assignment]
    for raw in entries:
        try:
            replayer.feed(raw)
        except ReplayError as error:
            return replayer, error
    return replayer, None


def event(kind: str, tag: str, links: Sequence[str] = ()) -> Any:
    """What TagStates.settle reads of an entry: an event of type `kind` on `tag`'s stream, with links."""
    return SimpleNamespace(type=kind, stream="tag:" + tag, links=[("tag:" + t, None) for t in links])


NOTHING = SimpleNamespace(type="org_registered", stream="org:x", links=[])  # an entry that names no tag


def where(error: ReplayError | None) -> tuple[Any, ...] | None:
    return None if error is None else (error.seq, error.rule, error.field, error.message)


def copy(state: TagState) -> TagState:
    return TagState.from_record(state.canonical())


# --------------------------------------------------------------------------------------------------------------
# TagStates against a plain dict, for random histories
# --------------------------------------------------------------------------------------------------------------

TAG_IDS = st.from_regex(r"[A-Z0-9][A-Z0-9-]{2,12}", fullmatch=True)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # any code point but surrogates


def _state(tag: str, rng: random.Random) -> TagState:
    return TagState(tag, rng.choice(["site-a", "site-b"]), rng.randbytes(32), rng.randrange(10**6),
                    f"2026-01-{rng.randrange(1, 29):02d}T00:00:00.{rng.randrange(10**6):06d}Z")


def _change(state: TagState, rng: random.Random, text: str) -> None:
    state.status = rng.choice([IN_CUSTODY, IN_TRANSIT])
    state.holder = rng.choice(["coop", "trader", None])
    state.pending_recipient = rng.choice(["trader", None])
    state.dispatched_mass_g = rng.choice([None, rng.randrange(10**7)])
    state.mass_g = rng.randrange(10**7)
    if state.origin is None:  # set once, as by tag_attached
        state.origin = jcs({"site": "s", "mineral": "tin", "ore": None, "pit": text,
                            "attached_at": "2026-01-01T00:00:00Z", "gps": {"lat": "-1.5", "lon": "29.25"},
                            "price_paid": {"currency": "USD", "minor_per_kg": 7}})
    state.events += 1
    state.head_hash = rng.randbytes(32)
    state.head_seq += 1


def _finish(state: TagState, status: str, rng: random.Random, others: list[str]) -> None:
    state.status = status
    if status == "merged":
        state.lot = rng.choice(others) if others else "LOT-X"
    elif status == "split":
        state.outputs = tuple(others[:3])
    elif status == "voided":
        state.void_reason = rng.choice(["lost", "stolen", "damaged"])
        state.pending_recipient = None
    state.events += 1


def _assert_same(states: TagStates, naive: dict[str, TagState], probes: list[str]) -> None:
    assert custody_digest(states) == custody_digest(naive)
    assert list(state_rows(states)) == [(tag, naive[tag].canonical()) for tag in sorted(naive)]
    assert counts_by_status(states) == counts_by_status(naive)
    assert len(states) == len(naive) and list(states) == sorted(naive)
    for tag in probes:
        cached = tag in states.cache
        assert (tag in states) == (tag in naive)
        got = states.peek(tag)  # does not cache
        assert (tag in states.cache) == cached
        if tag in naive:
            assert got is not None and got.canonical() == naive[tag].canonical()
            assert isinstance(got, StoredTagState) == (not cached)
        else:
            assert got is None and states.get(tag, "absent") == "absent"
            with pytest.raises(KeyError):
                states[tag]
    ordered = sorted(naive)
    issued_at = [i for i, tag in enumerate(probes) if tag in naive]
    assert states.first_issued(probes) == (issued_at[0] if issued_at else None)
    assert states.first_issued(list(reversed(ordered))) == (0 if ordered else None)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.lists(TAG_IDS, min_size=1, max_size=40, unique=True),
    steps=st.lists(st.tuples(st.integers(0, 39),
                             st.sampled_from(["issue", "change", "finish", "link", "scan", "read", "idle", "check"]),
                             st.sampled_from(sorted(FINISHED)), TEXT), max_size=120),
    cache_tags=st.sampled_from([0, 1, 3, 1000]),
    write_bytes=st.sampled_from([1, 700, 3000, 1 << 30]),
    seed=st.integers(0, 2**32),
)
def test_tag_states_equal_a_plain_dict(ids: list[str], steps: list[tuple[int, str, str, str]], cache_tags: int,
                                       write_bytes: int, seed: int) -> None:
    """Each step is one entry as the replay makes it: read the states it needs (read back if they left the
    cache), change them in place, then `settle` (the only time states leave the cache)."""
    rng = random.Random(seed)
    states = TagStates(cache_tags=cache_tags, write_bytes=write_bytes)
    naive: dict[str, TagState] = {}  # copies, changed alongside
    for index, action, finished, text in steps:
        tag = ids[index % len(ids)]
        live = [t for t in sorted(naive) if naive[t].status in LIVE]
        entry: Any = NOTHING
        if action == "issue":
            fresh = [t for t in ids[index % len(ids):][:4] if t not in naive]  # a few at once, like tags_issued
            assert states.first_issued(fresh) is None
            for t in fresh:
                states[t] = _state(t, rng)
                naive[t] = copy(states[t])
        elif action == "change" and tag in naive and naive[tag].status in LIVE:
            state = states[tag]
            _change(state, rng, text)
            naive[tag] = copy(state)
            entry = event("custody_received", tag)
        elif action in ("finish", "link") and live:
            # finish tags as the event's stream ("finish") or as the links of an event on another ("link"):
            # every state is read first, then all are changed (as apply_event does), then settled
            chosen = rng.sample(live, min(len(live), 3 if action == "link" else 1))
            got = [states[name] for name in chosen]
            for state in got:
                _finish(state, finished, rng, ids)
                naive[state.tag] = copy(state)
            entry = event("lot_formed", "LOT-X", chosen) if action == "link" else event("tag_voided", chosen[0])
        elif action == "scan" and tag in naive:
            # tag_scanned: read as the replay does (from disk if it left the cache), move its head
            state = states[tag] if index % 2 else states.get(tag)
            assert state is not None and state.canonical() == naive[tag].canonical() and tag in states.cache
            state.head_hash, state.head_seq, state.events = rng.randbytes(32), state.head_seq + 1, state.events + 1
            naive[tag] = copy(state)
            entry = event("tag_scanned", tag)
        elif action == "read" and tag in naive:  # an event that reads a tag and leaves it as it was
            assert states[tag].canonical() == naive[tag].canonical()
            entry = event("custody_received", tag)
        elif action == "check":
            _assert_same(states, naive, [tag, "NEVER-ISSUED", *ids[:5]])
        states.settle(entry)
        assert len(states.cache) <= cache_tags
        assert not any(state.status in FINISHED for state in states.cache.values())  # named, so written out
        if cache_tags == 0:
            assert not states.cache and states.stored == len(naive)
    _assert_same(states, naive, [*ids, "NEVER-ISSUED"])
    if write_bytes == 1:
        assert states.on_disk == (states.writes > 0)
    elif write_bytes == 1 << 30:
        assert not states.on_disk
    directory = states.directory
    states.close()
    assert directory is None or not os.path.exists(directory)


def test_many_tags_and_memory_stays_bounded() -> None:
    rng = random.Random(1)
    states = TagStates(cache_tags=100, write_bytes=20_000)
    naive: dict[str, TagState] = {}
    for i in range(6000):
        tag = f"BAG-{rng.randrange(10**9):09d}"
        states[tag] = state = _state(tag, rng)
        _change(state, rng, "Kalimbi \u00e9tape")
        if i % 10:  # 90% finish: written out at once
            _finish(state, "merged", rng, ["LOT-1"])
        naive[tag] = copy(state)
        states.settle(event("lot_formed", "LOT-1", [tag]))
        assert len(states.cache) <= 100 and states._waiting_bytes < 20_000
    assert len(states) == 6000 and states.stored == 5900 and states.on_disk
    assert states.counts() == counts_by_status(naive) and states.counts()["merged"] == 5400
    _assert_same(states, naive, rng.sample(sorted(naive), 300) + ["BAG-X"])
    # the live ones that left the cache are read back, changed, and written again
    live = [tag for tag, state in naive.items() if state.status in LIVE]
    reads = states.reads
    for tag in live:
        state = states[tag]
        _change(state, rng, "again")
        naive[tag] = copy(state)
        states.settle(event("custody_received", tag))
    assert states.reads - reads >= 500 and len(states.cache) == 100
    _assert_same(states, naive, live[:50])
    directory = states.directory
    assert directory is not None and os.listdir(directory)
    states.close()
    assert not os.path.exists(directory) and len(states) == len(states.cache) == 100

    again = TagStates(cache_tags=0, write_bytes=1)  # deleted when garbage-collected, too
    again["A-1"] = _state("A-1", rng)
    again.settle(NOTHING)
    directory = again.directory
    assert directory is not None and os.listdir(directory) and "A-1" in again
    del again
    gc.collect()
    assert not os.path.exists(directory)


def test_first_issued_over_many_queries() -> None:
    """A tags_issued of 10,000 tags: the first one already issued, wherever it is (cache, waiting, disk)."""
    states = TagStates(cache_tags=10, write_bytes=5_000)
    rng = random.Random(8)
    for i in range(3000):
        states[f"T-{i:05d}"] = _state(f"T-{i:05d}", rng)
        if i % 100 == 0:
            states.settle(NOTHING)
    assert states.first_issued([f"N-{i:05d}" for i in range(10_000)]) is None
    cached, waiting = next(iter(states.cache)), next(iter(states._waiting))
    for known in ("T-00000", "T-01234", waiting, cached):
        wanted = [f"N-{i:05d}" for i in range(10_000)]
        at = rng.randrange(10_000)
        wanted[at] = known
        wanted[9_999] = "T-00001"  # a later one too
        assert states.first_issued(wanted) == at
    assert states.first_issued([]) is None


def test_a_tag_written_again_keeps_only_its_newest_record() -> None:
    rng = random.Random(5)
    states = TagStates(cache_tags=0, write_bytes=1)
    naive: dict[str, TagState] = {}
    for tag in ("A-1", "B-2", "C-3"):
        states[tag] = state = _state(tag, rng)
        _finish(state, "voided", rng, [])
        naive[tag] = copy(state)
        states.settle(event("tag_voided", tag))
    for i in range(20):  # scanned again and again: each scan writes a new record of the tag
        tag = ("A-1", "B-2", "C-3")[i % 3 if i < 10 else 0]
        state = states[tag]
        state.head_seq, state.events = state.head_seq + 1, state.events + 1
        naive[tag] = copy(state)
        states.settle(event("tag_scanned", tag))
        assert not states.cache and len(states) == 3 and states.counts() == {"voided": 3}
        _assert_same(states, naive, ["A-1", "B-2", "C-3", "D-4"])
    rows = states._db.connection.execute("SELECT tag FROM tags").fetchall()
    assert sorted(rows) == [("A-1",), ("B-2",), ("C-3",)]
    assert states.peek("A-1").events == naive["A-1"].events == 2 + 4 + 10
    states.close()


def test_a_stored_state_is_read_only_and_records_must_be_canonical() -> None:
    state = _state("BAG-1", random.Random(3))
    _change(state, random.Random(4), "\u2028\"\\ \U0001f69a")
    state.status = "consumed"
    record = state.canonical()
    stored = StoredTagState.from_record(record)
    assert stored.canonical() == record and stored.to_json() == state.to_json()
    with pytest.raises(TypeError):
        stored.status = "in_custody"
    assert TagState.from_record(record).canonical() == record
    for bad in (record.replace(b'":', b'": ', 1), record.replace(b'"events":', b'"events":0', 1)):
        with pytest.raises(ValueError):
            TagState.from_record(bad)
    with pytest.raises(ValueError):
        TagStates(cache_tags=-1)


# --------------------------------------------------------------------------------------------------------------
# the replay: same results, same failures
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    ledger, built = build_demo(f"sqlite:///{tmp_path_factory.mktemp('store') / 'ledger.db'}")
    ledger.close()
    return built


def test_the_demo_replay_gives_the_same_results_with_no_cache(demo: Demo, tiny_store: None) -> None:
    reference, error = replay(demo.entries, store=False)
    assert error is None and isinstance(reference.tags, InMemory)
    stored, error = replay(demo.entries)
    assert error is None
    tags = stored.tags
    assert isinstance(tags, TagStates) and tags.on_disk and not tags.cache and tags.reads > 100
    assert tags.stored == len(reference.tags) > 50
    assert stored._ids.on_disk and len(stored._ids) == len(demo.entries)
    assert stored.digest() == reference.digest() == custody_digest(dict(reference.tags))
    assert stored.snapshot() == reference.snapshot()
    result = stored.result()
    assert list(result.rows()) == list(state_rows(dict(reference.tags)))
    assert result.counts == counts_by_status(dict(reference.tags)) and len(result) == len(reference.tags)
    for tag, state in reference.tags.items():
        assert result.state(tag).canonical() == state.canonical()

    # the parallel replay, and a snapshot part-way (the ledger's digest is compared with one)
    at = len(demo.entries) // 2
    multi = replay_entries(demo.entries, workers=2, chunk_size=53, snapshot_at=at, mp_context=FORK)
    prefix, _ = replay(demo.entries[: at + 1], store=False)
    assert multi.snapshot == prefix.snapshot() and multi.digest == reference.digest()
    assert multi.replayer.tags.on_disk  # type: ignore[attr-defined]
    assert replay_sequential(demo.entries, stop_after_seq=at).digest == prefix.digest()


def _lot(log: Log, lot: str, inputs: list[str], mass: int) -> int:
    return log.emit("site", "lot_formed", f"tag:{lot}", {"inputs": inputs, "mass_g": mass},
                    links=[f"tag:{t}" for t in inputs])


def _void(log: Log, tag: str = "BAG-1") -> int:
    return log.emit("site", "tag_voided", f"tag:{tag}", {"reason": "lost"})


def _to_refiner(log: Log, tag: str) -> None:
    log.emit("site", "custody_dispatched", f"tag:{tag}", {"to": "refiner"})
    log.emit("refiner", "custody_received", f"tag:{tag}", {"mass_g": 40_000})


def _merged(log: Log) -> None:
    log.attach("BAG-1")
    log.attach("BAG-2")
    _lot(log, "LOT-01", ["BAG-1", "BAG-2"], 80_000)


def _split(log: Log) -> None:
    _merged(log)
    log.emit("site", "lot_split", "tag:LOT-01", {"outputs": [{"tag": "LOT-02", "mass_g": 40_000},
                                                            {"tag": "LOT-03", "mass_g": 40_000}]},
             links=["tag:LOT-02", "tag:LOT-03"])


def _issue_again(log: Log) -> None:
    log.emit("itsci", "tags_issued", "org:site", {"tags": ["NEW-1", "BAG-1"]})


def _stale_prev_after_void(log: Log) -> None:
    log.attach("BAG-1")
    before_void = log.heads["tag:BAG-1"]
    _void(log)
    log.heads["tag:BAG-1"] = before_void  # names the attachment as BAG-1's last event, not the voiding
    log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"})


def _stale_prev_on_a_live_tag(log: Log) -> None:
    log.attach("BAG-1")
    attached = log.heads["tag:BAG-1"]
    log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"})
    log.heads["tag:BAG-1"] = attached
    log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"})


TAG_CASES: list[tuple[str, Callable[[Log], Any], str]] = [
    ("re-issue a voided tag", lambda log: (log.attach(), _void(log), _issue_again(log)), "tag.already_issued"),
    ("re-issue a merged tag", lambda log: (_merged(log), _issue_again(log)), "tag.already_issued"),
    ("re-issue a live tag", lambda log: (log.attach(), _issue_again(log)), "tag.already_issued"),
    ("re-issue an unused tag", _issue_again, "tag.already_issued"),
    ("dispatch a voided tag", lambda log: (log.attach(), _void(log),
                                           log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"})),
     "tag.finished"),
    ("void a voided tag", lambda log: (log.attach(), _void(log), _void(log)), "tag.finished"),
    ("void a never-attached voided tag", lambda log: (_void(log, "LOT-03"), _void(log, "LOT-03")), "tag.finished"),
    ("attach a voided tag", lambda log: (_void(log), log.attach()), "tag.already_attached"),
    ("attach an attached tag", lambda log: (log.attach(), log.attach()), "tag.already_attached"),
    ("receive a merged tag", lambda log: (_merged(log), log.emit("trader", "custody_received", "tag:BAG-2",
                                                                 {"mass_g": 1})), "tag.finished"),
    ("a lot of a merged tag", lambda log: (_merged(log), _lot(log, "LOT-02", ["BAG-2"], 40_000)), "tag.finished"),
    ("a split lot formed again", lambda log: (_split(log), _lot(log, "LOT-01", ["LOT-02"], 40_000)),
     "tag.already_attached"),
    ("a split output that is merged", lambda log: (
        _merged(log), log.emit("site", "lot_split", "tag:LOT-01", {"outputs": [{"tag": "BAG-1", "mass_g": 40_000},
                                                                    {"tag": "LOT-02", "mass_g": 40_000}]},
                               links=["tag:BAG-1", "tag:LOT-02"])), "tag.already_attached"),
    ("split a split lot", lambda log: (
        _split(log), log.emit("site", "lot_split", "tag:LOT-01", {"outputs": [{"tag": "LOT-02", "mass_g": 1},
                                                                   {"tag": "LOT-03", "mass_g": 1}]},
                              links=["tag:LOT-02", "tag:LOT-03"])), "tag.finished"),
    ("consume a consumed tag", lambda log: (
        log.attach(), _to_refiner(log, "BAG-1"), log.emit("refiner", "tag_consumed", "tag:BAG-1", {}),
        log.emit("refiner", "tag_consumed", "tag:BAG-1", {})), "tag.finished"),
    ("a stale prev on a voided tag", _stale_prev_after_void, "stream.conflict"),
    ("a stale prev on a live tag", _stale_prev_on_a_live_tag, "stream.conflict"),
    ("a time before a voided tag's last event", lambda log: (
        log.attach(), _void(log),
        log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}, time="2026-01-01T00:07:59.999999Z")),
     "time.before_previous"),
    ("a time before a live tag's last event", lambda log: (
        log.attach(),
        log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}, time="2026-01-01T00:06:59.999999Z")),
     "time.before_previous"),
    ("a tag never issued", lambda log: log.emit("site", "custody_dispatched", "tag:NOPE-1", {"to": "trader"}),
     "stream.unknown"),
]


@pytest.mark.parametrize("storage", sorted(STORAGE))
@pytest.mark.parametrize(("case", "make", "rule"), TAG_CASES, ids=[c[0] for c in TAG_CASES])
def test_events_on_stored_tags_fail_exactly_as_in_memory(case: str, make: Callable[[Log], Any], rule: str,
                                                         storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_tags, write_bytes = STORAGE[storage]
    monkeypatch.setattr(tag_store, "CACHE_TAGS", cache_tags)
    monkeypatch.setattr(tag_store, "WRITE_BYTES", write_bytes)
    log = Log()
    make(log)
    reference, expected = replay(log.entries, store=False)
    assert expected is not None and expected.rule == rule and expected.seq == len(log.entries) - 1, where(expected)
    stored, error = replay(log.entries[:-1])
    tags = stored.tags
    assert error is None and isinstance(tags, TagStates)
    finished = sorted(tag for tag, state in reference.tags.items() if state.status in FINISHED)
    assert not any(tag in tags.cache for tag in finished)  # all out of the cache before the last entry
    if cache_tags == 0:
        assert not tags.cache and tags.on_disk == (write_bytes == 1)
    with pytest.raises(ReplayError) as failed:
        stored.feed(log.entries[-1])
    assert where(failed.value) == where(expected)
    assert stored.digest() == reference.digest() and len(tags) == len(reference.tags)
    assert stored.snapshot() == reference.snapshot()
    assert stored.failure is not None and where(stored.failure) == where(expected)  # and stays failed


def _scan(log: Log, tag: str, actor: str = "monitor") -> int:
    return log.emit(actor, "tag_scanned", f"tag:{tag}", {"gps": {"lat": "-1.5", "lon": "28.9"}, "purpose": "other"})


@pytest.mark.parametrize("storage", sorted(STORAGE))
def test_scanning_stored_tags_moves_their_heads_as_in_memory(storage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """tag_scanned is accepted on a finished tag and moves its head: its stored record is superseded."""
    cache_tags, write_bytes = STORAGE[storage]
    monkeypatch.setattr(tag_store, "CACHE_TAGS", cache_tags)
    monkeypatch.setattr(tag_store, "WRITE_BYTES", write_bytes)
    log = Log()
    _merged(log)  # BAG-1, BAG-2 merged into LOT-01
    _void(log, "LOT-03")
    _scan(log, "BAG-1")
    _scan(log, "LOT-03", "trader")
    _scan(log, "BAG-1")
    _scan(log, "LOT-01")  # a live one
    reference, error = replay(log.entries, store=False)
    assert error is None
    stored, error = replay(log.entries)
    assert error is None
    tags = stored.tags
    assert isinstance(tags, TagStates) and sorted(tags.cache) == (["LOT-01", "LOT-02"] if cache_tags else [])
    assert list(tags.rows()) == list(state_rows(dict(reference.tags)))
    assert stored.snapshot() == reference.snapshot() and len(tags) == len(reference.tags) == 5
    scanned = stored.result().state("BAG-1")
    assert (scanned.status, scanned.events, scanned.head_seq) == ("merged", 5, len(log.entries) - 2)
    assert "BAG-1" not in tags.cache  # reading a result does not cache

    # and after being scanned they are still finished, and still issued
    for make, rule in ((_issue_again, "tag.already_issued"),
                       (lambda log: log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}),
                        "tag.finished")):
        heads = dict(log.heads)
        make(log)
        _, expected = replay(log.entries, store=False)
        _, error = replay(log.entries)
        assert expected is not None and expected.rule == rule and where(error) == where(expected)
        log.entries.pop()
        log.heads = heads
