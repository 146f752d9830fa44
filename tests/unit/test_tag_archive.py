"""verification.tag_archive: finished tags on disk in sorted runs, the replay's results unchanged.

The reference everywhere is the replay as it was before the archive: every tag's state in a plain dict
(:class:`InMemory`, the same :class:`Replayer` with its ``tags`` replaced), or a plain dict of states folded
by hand. The archive runs with tiny thresholds (a run per record or a few, runs merged two or three at a
time), so that records really are on disk, in several runs and levels, when they are read back.
"""

from __future__ import annotations

import gc
import os
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replay import FORK, Demo, Log, build_demo  # the demo log and the hand-made log

from verification import tag_archive
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
from verification.tag_archive import ArchivedTagState, TagArchive, TagStates

KEY = bytes(range(16))
LIVE = (ISSUED, IN_CUSTODY, IN_TRANSIT)


class InMemory(dict):
    """The replay's tags as before verification.tag_archive: every state in a dict, none archived."""

    peek = dict.get

    def archive_finished(self, entry: Any) -> None:
        pass


@pytest.fixture
def tiny_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every finished tag its own run, runs merged two at a time: everything archived is on disk."""
    monkeypatch.setattr(tag_archive, "RUN_BYTES", 1)
    monkeypatch.setattr(tag_archive, "FAN_IN", 2)


def replay(entries: list[bytes], *, archive: bool = True) -> tuple[Replayer, ReplayError | None]:
    replayer = Replayer(id_key=KEY)
    if not archive:
        replayer.tags = InMemory()  # type: ignore[assignment]
    for raw in entries:
        try:
            replayer.feed(raw)
        except ReplayError as error:
            return replayer, error
    return replayer, None


def event(kind: str, tag: str) -> Any:
    """What TagStates.archive_finished reads of an entry: an event of type `kind` on `tag`'s stream."""
    return SimpleNamespace(type=kind, stream="tag:" + tag, links=[])


def where(error: ReplayError | None) -> tuple[Any, ...] | None:
    return None if error is None else (error.seq, error.rule, error.field, error.message)


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
        assert (tag in states) == (tag in naive)
        got = states.peek(tag)  # does not revive
        if tag in naive:
            assert got is not None and got.canonical() == naive[tag].canonical()
            assert isinstance(got, ArchivedTagState) == (tag not in states.live)
            assert naive[tag].status in FINISHED or tag in states.live
        else:
            assert got is None and states.get(tag, "absent") == "absent"
            with pytest.raises(KeyError):
                states[tag]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.lists(TAG_IDS, min_size=1, max_size=40, unique=True),
    steps=st.lists(st.tuples(st.integers(0, 39),
                             st.sampled_from(["issue", "change", "finish", "link", "unlisted", "scan", "check"]),
                             st.sampled_from(sorted(FINISHED)), TEXT), max_size=120),
    run_bytes=st.sampled_from([1, 700, 3000]),
    fan_in=st.sampled_from([2, 3]),
    seed=st.integers(0, 2**32),
)
def test_tag_states_equal_a_plain_dict(ids: list[str], steps: list[tuple[int, str, str, str]], run_bytes: int,
                                       fan_in: int, seed: int) -> None:
    rng = random.Random(seed)
    states = TagStates(rng.randbytes(16), run_bytes=run_bytes, fan_in=fan_in)
    naive: dict[str, TagState] = {}
    unlisted: set[str] = set()  # finished by an event type archive_finished does not look at: still in memory
    for index, action, finished, text in steps:
        tag = ids[index % len(ids)]
        live = [t for t in sorted(naive) if naive[t].status in LIVE]
        if action == "issue" and tag not in naive:
            naive[tag] = states[tag] = _state(tag, rng)  # the same object: a live state is shared
        elif action == "change" and tag in naive and naive[tag].status in LIVE:
            _change(naive[tag], rng, text)
        elif action in ("finish", "link", "unlisted") and live:
            # finish one tag, as the event's stream ("finish") or as the links of an event on another ("link"),
            # or by an event type that archive_finished does not look at ("unlisted": the tag stays in memory)
            chosen = rng.sample(live, min(len(live), 3 if action == "link" else 1))
            for name in chosen:
                _finish(naive[name], finished, rng, ids)
            if action == "link":
                entry = SimpleNamespace(type="lot_formed", stream="tag:LOT-X",
                                        links=[("tag:" + t, None) for t in chosen])
            else:
                entry = SimpleNamespace(type="tag_voided" if action == "finish" else "custody_received",
                                        stream="tag:" + chosen[0], links=[])
            states.archive_finished(entry)  # type: ignore[arg-type]
            assert (chosen[0] in states.live) == (action == "unlisted")
            if action == "unlisted":
                unlisted.add(chosen[0])
        elif action == "scan" and tag in naive:
            # tag_scanned: read the tag as the replay does (an archived one is revived), move its head, fold;
            # then it is archived again if finished, and its new record supersedes the old one
            archived = tag not in states.live
            state = states[tag] if index % 2 else states.get(tag)
            assert state is not None and state.canonical() == naive[tag].canonical() and tag in states.live
            state.head_hash, state.head_seq, state.events = rng.randbytes(32), state.head_seq + 1, state.events + 1
            naive[tag] = state
            states.archive_finished(event("tag_scanned", tag))
            assert (tag in states.live) == (not archived or state.status not in FINISHED)
            assert (tag in states.live) == (state.status in LIVE or tag in unlisted)
        elif action == "check":
            _assert_same(states, naive, [tag, "NEVER-ISSUED"])
        assert states.archive.pending_bytes < run_bytes
    _assert_same(states, naive, [*ids, "NEVER-ISSUED"])
    # runs of one level are merged when there are fan_in of them: at most fan_in - 1 per level
    levels = [run.level for run in states.archive._runs]
    assert all(levels.count(level) < fan_in for level in set(levels))
    for run in states.archive._runs:  # sorted, each tag once (a merge of runs keeps the newest record only)
        tags = [tag for tag, _, _ in run.rows()]
        assert tags == sorted(set(tags)) and len(tags) == run.count == len(run.fingerprints)
    states.close()


def test_many_finished_tags_are_on_disk_and_memory_stays_small() -> None:
    rng = random.Random(1)
    states = TagStates(KEY, run_bytes=20_000, fan_in=4)
    naive: dict[str, TagState] = {}
    for i in range(6000):
        tag = f"BAG-{rng.randrange(10**9):09d}"
        naive[tag] = states[tag] = state = _state(tag, rng)
        _change(state, rng, "Kalimbi \u00e9tape")
        if i % 10:  # 90% finish
            _finish(state, "merged", rng, ["LOT-1"])
            states.archive_finished(SimpleNamespace(type="lot_formed", stream="tag:LOT-1",  # type: ignore[arg-type]
                                                    links=[("tag:" + tag, None)]))
    archive = states.archive
    assert len(archive) == sum(s.status in FINISHED for s in naive.values()) and len(states.live) == 600
    assert 3 <= archive.run_count <= 3 * 3  # several runs, merged 4 at a time: at most 3 per level
    assert max(run.level for run in archive._runs) >= 1
    record_bytes = sum(len(naive[t].canonical()) for t in naive if naive[t].status in FINISHED)
    assert archive.memory_bytes() < 20_000 + 30 * len(archive) < record_bytes / 10
    _assert_same(states, naive, rng.sample(sorted(naive), 300) + ["BAG-X"])
    directory = archive._directory
    assert directory is not None and sorted(os.listdir(directory)) == sorted(
        os.path.basename(run.path) for run in archive._runs)
    states.close()
    assert not os.path.exists(directory) and len(states) == len(states.live) == 600

    again = TagStates(KEY, run_bytes=1)  # deleted when garbage-collected, too
    again["A-1"] = _state("A-1", rng)
    again["A-1"].status = "consumed"
    again.archive_finished(SimpleNamespace(type="tag_consumed", stream="tag:A-1", links=[]))  # type: ignore[arg-type]
    directory = again.archive._directory
    assert directory is not None and os.listdir(directory)
    del again
    gc.collect()
    assert not os.path.exists(directory)


def test_a_tag_archived_again_keeps_only_its_newest_record() -> None:
    rng = random.Random(5)
    states = TagStates(KEY, run_bytes=1, fan_in=2)  # a run per record, merged two by two
    naive: dict[str, TagState] = {}
    for tag in ("A-1", "B-2", "C-3"):
        naive[tag] = states[tag] = _state(tag, rng)
        _finish(naive[tag], "voided", rng, [])
        states.archive_finished(event("tag_voided", tag))
    for i in range(20):  # scanned again and again: each scan archives a new record of the tag
        tag = ("A-1", "B-2", "C-3")[i % 3 if i < 10 else 0]
        naive[tag] = state = states[tag]
        state.head_seq, state.events = state.head_seq + 1, state.events + 1
        states.archive_finished(event("tag_scanned", tag))
        assert not states.live and len(states) == 3 and states.counts() == {"voided": 3}
        _assert_same(states, naive, ["A-1", "B-2", "C-3", "D-4"])
    for run in states.archive._runs:
        tags = [tag for tag, _, _ in run.rows()]
        assert tags == sorted(set(tags)) and len(tags) == run.count
    assert states.peek("A-1").events == naive["A-1"].events == 2 + 4 + 10
    states.close()


def test_membership_is_exact_even_if_every_fingerprint_collides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TagArchive, "_fingerprint", lambda self, tag: 0)
    archive = TagArchive(KEY, run_bytes=200, fan_in=2)
    rng = random.Random(2)
    records = {}
    for i in range(200):
        state = _state(f"T-{i:04d}", rng)
        state.status = "voided"
        records[state.tag] = state.canonical()
        archive.add(state.tag, state.status, records[state.tag])
    assert archive.run_count >= 2
    for i in range(-5, 210):
        tag = f"T-{i:04d}"
        assert archive.get(tag) == records.get(tag) and (tag in archive) == (tag in records)
    assert archive.get("T-0000A") is None and archive.get("A") is None and archive.get("Z") is None
    assert list(archive.rows()) == sorted(records.items()) and archive.counts() == {"voided": 200}


def test_an_archived_state_is_read_only_and_records_must_be_canonical() -> None:
    state = _state("BAG-1", random.Random(3))
    _change(state, random.Random(4), "\u2028\"\\ \U0001f69a")
    state.status = "consumed"
    record = state.canonical()
    archived = ArchivedTagState.from_record(record)
    assert archived.canonical() == record and archived.to_json() == state.to_json()
    with pytest.raises(TypeError):
        archived.status = "in_custody"
    assert TagState.from_record(record).canonical() == record
    for bad in (record.replace(b'":', b'": ', 1), record.replace(b'"events":', b'"events":0', 1)):
        with pytest.raises(ValueError):
            TagState.from_record(bad)
    with pytest.raises(ValueError):
        TagArchive(KEY).add("A\nB", "voided", record)


# --------------------------------------------------------------------------------------------------------------
# the replay: same results, same failures
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    ledger, built = build_demo(f"sqlite:///{tmp_path_factory.mktemp('archive') / 'ledger.db'}")
    ledger.close()
    return built


def test_the_demo_replay_archives_and_gives_the_same_results(demo: Demo, tiny_runs: None) -> None:
    reference, error = replay(demo.entries, archive=False)
    assert error is None and isinstance(reference.tags, InMemory)
    archived, error = replay(demo.entries)
    assert error is None
    tags = archived.tags
    assert isinstance(tags, TagStates) and tags.archive.run_count >= 1 and tags.archive.pending_bytes == 0
    assert len(tags.archive) == sum(s.status in FINISHED for s in reference.tags.values()) > 50
    assert all(state.status not in FINISHED for state in tags.live.values())
    assert archived.digest() == reference.digest() == custody_digest(dict(reference.tags))
    assert archived.snapshot() == reference.snapshot()
    result = archived.result()
    assert list(result.rows()) == list(state_rows(dict(reference.tags)))
    assert result.counts == counts_by_status(dict(reference.tags)) and len(result) == len(reference.tags)
    for tag, state in reference.tags.items():
        assert result.state(tag).canonical() == state.canonical()

    # the parallel replay, and a snapshot part-way (the ledger's digest is compared with one)
    at = len(demo.entries) // 2
    multi = replay_entries(demo.entries, workers=2, chunk_size=53, snapshot_at=at, mp_context=FORK)
    prefix, _ = replay(demo.entries[: at + 1], archive=False)
    assert multi.snapshot == prefix.snapshot() and multi.digest == reference.digest()
    assert multi.replayer.tags.archive.run_count >= 1  # type: ignore[attr-defined]
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


FINISHED_TAG_CASES: list[tuple[str, Callable[[Log], Any], str]] = [
    ("re-issue a voided tag", lambda log: (log.attach(), _void(log), _issue_again(log)), "tag.already_issued"),
    ("re-issue a merged tag", lambda log: (_merged(log), _issue_again(log)), "tag.already_issued"),
    ("dispatch a voided tag", lambda log: (log.attach(), _void(log),
                                           log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"})),
     "tag.finished"),
    ("void a voided tag", lambda log: (log.attach(), _void(log), _void(log)), "tag.finished"),
    ("void a never-attached voided tag", lambda log: (_void(log, "LOT-03"), _void(log, "LOT-03")), "tag.finished"),
    ("attach a voided tag", lambda log: (_void(log), log.attach()), "tag.already_attached"),
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
    ("a time before a voided tag's last event", lambda log: (
        log.attach(), _void(log),
        log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}, time="2026-01-01T00:07:59.999999Z")),
     "time.before_previous"),
]


@pytest.mark.parametrize("in_a_run", [True, False], ids=["on disk", "not yet written"])
@pytest.mark.parametrize(("case", "make", "rule"), FINISHED_TAG_CASES, ids=[c[0] for c in FINISHED_TAG_CASES])
def test_events_on_finished_tags_fail_exactly_as_before(case: str, make: Callable[[Log], Any], rule: str,
                                                        in_a_run: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tag_archive, "RUN_BYTES", 1 if in_a_run else 1 << 30)
    monkeypatch.setattr(tag_archive, "FAN_IN", 2)
    log = Log()
    make(log)
    reference, expected = replay(log.entries, archive=False)
    assert expected is not None and expected.rule == rule and expected.seq == len(log.entries) - 1, where(expected)
    archived, error = replay(log.entries[:-1])
    tags = archived.tags
    assert error is None and isinstance(tags, TagStates)
    finished = sorted(tag for tag, state in reference.tags.items() if state.status in FINISHED)
    assert finished and not any(tag in tags.live for tag in finished)  # all archived before the last entry
    assert (tags.archive.run_count >= 1) == in_a_run
    with pytest.raises(ReplayError) as failed:
        archived.feed(log.entries[-1])
    assert where(failed.value) == where(expected)
    assert archived.digest() == reference.digest() and len(tags) == len(reference.tags)
    assert archived.snapshot() == reference.snapshot()
    assert archived.failure is not None and where(archived.failure) == where(expected)  # and stays failed


def _scan(log: Log, tag: str, actor: str = "monitor") -> int:
    return log.emit(actor, "tag_scanned", f"tag:{tag}", {"gps": {"lat": "-1.5", "lon": "28.9"}, "purpose": "other"})


@pytest.mark.parametrize("in_a_run", [True, False], ids=["on disk", "not yet written"])
def test_scanning_finished_tags_moves_their_heads_as_before(in_a_run: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """tag_scanned is accepted on a finished tag and moves its head: the archived record is superseded."""
    monkeypatch.setattr(tag_archive, "RUN_BYTES", 1 if in_a_run else 1 << 30)
    monkeypatch.setattr(tag_archive, "FAN_IN", 2)
    log = Log()
    _merged(log)  # BAG-1, BAG-2 merged into LOT-01
    _void(log, "LOT-03")
    _scan(log, "BAG-1")
    _scan(log, "LOT-03", "trader")
    _scan(log, "BAG-1")
    _scan(log, "LOT-01")  # a live one
    reference, error = replay(log.entries, archive=False)
    assert error is None
    archived, error = replay(log.entries)
    assert error is None
    tags = archived.tags
    assert isinstance(tags, TagStates) and sorted(tags.live) == ["LOT-01", "LOT-02"]
    assert (tags.archive.run_count >= 1) == in_a_run
    assert list(tags.rows()) == list(state_rows(dict(reference.tags)))
    assert archived.snapshot() == reference.snapshot() and len(tags) == len(reference.tags) == 5
    scanned = archived.result().state("BAG-1")
    assert (scanned.status, scanned.events, scanned.head_seq) == ("merged", 5, len(log.entries) - 2)
    assert "BAG-1" not in tags.live  # reading a result does not revive

    # and after being scanned they are still finished, and still issued
    for make, rule in ((_issue_again, "tag.already_issued"),
                       (lambda log: log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}),
                        "tag.finished")):
        heads = dict(log.heads)
        make(log)
        _, expected = replay(log.entries, archive=False)
        _, error = replay(log.entries)
        assert expected is not None and expected.rule == rule and where(error) == where(expected)
        log.entries.pop()
        log.heads = heads
