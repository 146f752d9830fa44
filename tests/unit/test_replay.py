"""The auditor's replay (verification.replay, .parallel, .custody_state, .event_ids, .entry_checks).

The log is the demo data set, written by the ledger's own write path (`ledger.demo`) into a fresh SQLite
ledger; the entries are then read back as bytes and everything else happens in memory: the replay of the
intact log (sequential and parallel, equal), "as of" an index or a time, and tampered copies, each of which
must fail at the right entry with the right rule. tests/ledger/test_replay_matches_server.py compares the
replayed states with the server's custody projection.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.client import LocalTransport, Signer
from ledger.demo import DEMO_DAYS, DemoReport, load_demo
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.service import Ledger
from verification.canonical import jcs
from verification.custody_state import TagState, custody_digest
from verification.encoding import b64url_encode, format_time, key_id, parse_time
from verification.entry import decode_entry, encode_entry
from verification.entry_checks import (
    CheckedEntry,
    EntryProblem,
    SignatureChecker,
    _decode_fast,
    check_entry,
    normalize_time,
)
from verification.envelope import Envelope, issued_tags, sign_body
from verification.merkle import leaf_hash, root_from_leaf_hashes
from verification.parallel import replay_entries, state_as_of
from verification.replay import Replayer, replay_sequential
from verification.replay_errors import ReplayError

OPERATOR = "itsci"
TAGS_PER_SITE = 16
FORK = "fork"  # the tampering tests start many small worker pools: fork is much quicker to start than spawn


@dataclass
class Demo:
    entries: list[bytes]
    report: DemoReport
    root: KeyPair
    log: KeyPair


def build_demo(url: str, *, tags_per_site: int = TAGS_PER_SITE, seed: int = 7) -> tuple[Ledger, Demo]:
    """A ledger with the demo loaded; its genesis is older than the demo's two months."""
    ledger = Ledger.open(url)
    keys = GenesisKeys(KeyPair.generate(), KeyPair.generate())
    create_ledger(ledger, name="tagledger demo", operator=OPERATOR, operator_name="ITSCI Programme", country="GB",
                  log_key_name="tagledger.demo/log", keys=keys,
                  time=datetime.now(timezone.utc) - timedelta(days=DEMO_DAYS + 1))
    report = load_demo(LocalTransport(ledger), Signer(OPERATOR, keys.root), seed=seed, tags_per_site=tags_per_site)
    entries = [stored.data for stored in ledger.store.iter_all()]
    return ledger, Demo(entries, report, keys.root, keys.log)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    path: Path = tmp_path_factory.mktemp("replay") / "ledger.db"
    ledger, built = build_demo(f"sqlite:///{path}")
    ledger.close()
    return built


@pytest.fixture(scope="module")
def replayed(demo: Demo) -> Any:
    return replay_sequential(demo.entries)


def body(raw: bytes) -> dict[str, Any]:
    return decode_entry(raw).envelope.body


def where(entries: list[bytes], test: Callable[[dict[str, Any]], bool], after: int = 1) -> int:
    """The position of the first entry (from `after`) whose body passes `test`."""
    return next(i for i in range(after, len(entries)) if test(body(entries[i])))


def reencode(raw: bytes, *, seq: int | None = None, received: str | None = None,
             envelope: Envelope | None = None) -> bytes:
    entry = decode_entry(raw)
    return encode_entry(entry.seq if seq is None else seq, entry.received if received is None else received,
                        envelope or entry.envelope)


def resign(raw: bytes, key: KeyPair, **changes: Any) -> bytes:
    """The entry with its body changed and signed again by `key` (whose kid becomes `key`)."""
    new_body = copy.deepcopy(body(raw))
    new_body.update(changes, key=key.kid)
    return reencode(raw, envelope=sign_body(key.private_key, new_body, check=False))


def renumber(entries: list[bytes], start: int) -> list[bytes]:
    """Entries from `start` on re-encoded with seq = their position."""
    return entries[:start] + [reencode(raw, seq=i) for i, raw in enumerate(entries[start:], start)]


def expect_failure(entries: list[bytes], seq: int, rule: str, *, parallel: bool = True, **options: Any) -> None:
    """Both the sequential and the parallel replay fail at entry `seq` with `rule`, identically."""
    with pytest.raises(ReplayError) as sequential:
        replay_sequential(entries, **options)
    assert (sequential.value.seq, sequential.value.rule) == (seq, rule), str(sequential.value)
    if parallel:
        with pytest.raises(ReplayError) as multi:
            replay_entries(entries, workers=2, chunk_size=37, mp_context=FORK, **options)
        assert (multi.value.seq, multi.value.rule, multi.value.message) == (
            sequential.value.seq, sequential.value.rule, sequential.value.message)


# --------------------------------------------------------------------------------------------------------------
# the intact log
# --------------------------------------------------------------------------------------------------------------


def test_the_demo_log_replays(demo: Demo, replayed: Any) -> None:
    assert replayed.size == len(demo.entries) == demo.report.total + 1
    assert replayed.stopped is None and replayed.snapshot is None
    assert replayed.root == root_from_leaf_hashes(leaf_hash(raw) for raw in demo.entries)
    counts = replayed.counts
    assert sum(counts.values()) == replayed.tag_count
    assert counts["voided"] == 1 and counts["split"] >= 1 and counts["consumed"] >= 1 and counts["merged"] > 0
    examples = demo.report.examples
    assert replayed.state(examples["voided"]).void_reason == "stolen"
    assert replayed.state(examples["split_output"]).parent == examples["split_lot"]
    assert replayed.state(examples["consumed_lot"]).status == "consumed"
    assert replayed.state("NO-SUCH-TAG") is None
    rotation = demo.report.key_rotation
    old = replayed.registry.keys[rotation.old_kid]
    assert old.revoked_effective == normalize_time(rotation.effective) and old.revoked_seq is not None


def test_state_records_are_canonical_json(replayed: Any) -> None:
    for tag, state in replayed.rows():
        record = replayed.state(tag)
        assert state == jcs(record.to_json()) == jcs(json.loads(state))
        assert json.loads(state)["tag"] == tag
    assert replayed.digest == custody_digest(replayed.replayer.tags)


def test_parallel_equals_sequential(demo: Demo, replayed: Any) -> None:
    seen: list[int] = []
    multi = replay_entries(iter(demo.entries), workers=2, chunk_size=100, progress=seen.append)  # spawn
    assert (multi.size, multi.root, multi.digest, multi.counts) == (
        replayed.size, replayed.root, replayed.digest, replayed.counts)
    assert list(multi.rows()) == list(replayed.rows())
    assert seen == sorted(seen) and seen[-1] == len(demo.entries)
    one = replay_entries(demo.entries, workers=1, chunk_size=1000, mp_context=FORK)
    assert (one.root, one.digest) == (replayed.root, replayed.digest)
    inline = replay_entries(demo.entries, workers=0)
    assert (inline.root, inline.digest) == (replayed.root, replayed.digest)


def test_as_of_an_index_and_a_time(demo: Demo) -> None:
    entries = demo.entries
    n = len(entries)
    for seq in (0, 1, n // 3, n - 2):
        prefix = replay_sequential(entries[: seq + 1])
        for result in (replay_sequential(entries, stop_after_seq=seq),
                       state_as_of(iter(entries), seq=seq, workers=2, chunk_size=50, mp_context=FORK)):
            assert result.size == seq + 1 and result.stopped == "stop_after_seq"
            assert (result.root, result.digest) == (prefix.root, prefix.digest)
            assert list(result.rows()) == list(prefix.rows())

    # as of a time: everything received at or before it
    received = [decode_entry(raw).received for raw in entries]
    moment = received[n // 2]
    last = max(i for i, r in enumerate(received) if parse_time(r) <= parse_time(moment))
    by_time = state_as_of(entries, time=moment, workers=0)
    assert by_time.size == last + 1 and by_time.stopped == "stop_at_time"
    assert by_time.digest == replay_sequential(entries, stop_after_seq=last).digest
    multi = state_as_of(entries, time=moment, workers=2, chunk_size=64, mp_context=FORK)
    assert (multi.size, multi.digest) == (by_time.size, by_time.digest)
    assert state_as_of(entries, time=received[-1], workers=0).size == n  # nothing after: all of it
    with pytest.raises(ValueError):
        state_as_of(entries, time="yesterday", workers=0)


def test_a_tag_as_of_an_index(demo: Demo) -> None:
    bag = demo.report.examples["consumed_bag"]
    streams = [i for i, raw in enumerate(demo.entries)
               if f"tag:{bag}" in (body(raw)["stream"], *body(raw).get("links", {}))]
    issued = where(demo.entries, lambda b: b["type"] == "tags_issued" and bag in issued_tags(b["data"]))
    before = replay_sequential(demo.entries, stop_after_seq=issued - 1)
    assert before.state(bag) is None
    states = [replay_sequential(demo.entries, stop_after_seq=i).state(bag) for i in [issued, *streams]]
    assert [s.status for s in states[:3]] == ["issued", "in_custody", "in_transit"]
    assert [s.events for s in states] == list(range(1, len(states) + 1))
    assert [s.head_seq for s in states] == [issued, *streams]
    assert states[-1].status == "merged"


def test_snapshot_at(demo: Demo, replayed: Any) -> None:
    at = len(demo.entries) // 2
    result = replay_entries(demo.entries, workers=2, chunk_size=41, snapshot_at=at, mp_context=FORK)
    prefix = replay_sequential(demo.entries, stop_after_seq=at)
    assert result.snapshot is not None and result.snapshot.seq == at and result.snapshot.size == at + 1
    assert (result.snapshot.digest, result.snapshot.root, result.snapshot.counts) == (
        prefix.digest, prefix.root, prefix.counts)
    assert result.digest == replayed.digest
    assert replay_sequential(demo.entries, snapshot_at=len(demo.entries) + 5).snapshot is None


def test_pinned_keys(demo: Demo) -> None:
    root, log = demo.root.public_raw, demo.log.public_raw
    assert replay_sequential(demo.entries[:50], pinned_root_key=root, pinned_log_key=log,
                             pinned_log_key_name="tagledger.demo/log").size == 50
    other = KeyPair.generate().public_raw
    expect_failure(demo.entries[:50], 0, "genesis.root_key", pinned_root_key=other)
    expect_failure(demo.entries[:50], 0, "genesis.log_key", pinned_log_key=other, parallel=False)
    expect_failure(demo.entries[:50], 0, "genesis.log_key", pinned_log_key_name="other", parallel=False)


# --------------------------------------------------------------------------------------------------------------
# tampered copies: each fails at the right entry with the right rule
# --------------------------------------------------------------------------------------------------------------


def _custody(entries: list[bytes], kind: str = "custody_received", after: int = 1) -> int:
    return where(entries, lambda b: b["type"] == kind, after)


def test_an_edited_signature(demo: Demo) -> None:
    entries = list(demo.entries)
    k = _custody(entries, after=len(entries) // 2)
    sig = decode_entry(entries[k]).envelope.sig
    flipped = ("B" if sig[10] == "A" else "A")
    entries[k] = entries[k].replace(f'"sig":"{sig}"'.encode(), f'"sig":"{sig[:10]}{flipped}{sig[11:]}"'.encode())
    assert entries[k] != demo.entries[k]
    expect_failure(entries, k, "signature.invalid")


def test_an_edited_body(demo: Demo) -> None:
    entries = list(demo.entries)
    k = _custody(entries, after=len(entries) // 3)
    mass = body(entries[k])["data"]["mass_g"]
    entries[k] = entries[k].replace(f'"mass_g":{mass}'.encode(), f'"mass_g":{mass - 1}'.encode())
    expect_failure(entries, k, "signature.invalid")


def test_a_byte_that_breaks_the_canonical_form(demo: Demo) -> None:
    entries = list(demo.entries)
    k = len(entries) // 4
    entries[k] = entries[k].replace(b'"v":1}', b'"v": 1}')
    expect_failure(entries, k, "entry.malformed")
    entries[k] = demo.entries[k].replace(b'"body":{', b'"body":{"aaa":1,')
    expect_failure(entries, k, "envelope.malformed")


def test_a_dropped_entry(demo: Demo) -> None:
    k = _custody(demo.entries, "custody_dispatched", after=len(demo.entries) // 2)
    dropped = demo.entries[:k] + demo.entries[k + 1:]
    expect_failure(dropped, k, "entry.seq")
    # renumbered so that the seqs follow: the next event of the dropped one's stream no longer chains
    stream = body(demo.entries[k])["stream"]
    following = where(dropped, lambda b: stream in (b["stream"], *b.get("links", {})), after=k)
    expect_failure(renumber(dropped, k), following, "stream.conflict")


def test_swapped_entries(demo: Demo) -> None:
    entries = list(demo.entries)
    k = len(entries) // 2
    entries[k], entries[k + 1] = entries[k + 1], entries[k]
    expect_failure(entries, k, "entry.seq")


def test_an_inserted_duplicate(demo: Demo) -> None:
    k = len(demo.entries) // 3
    doubled = demo.entries[: k + 1] + demo.entries[k:]
    expect_failure(doubled, k + 1, "entry.seq")
    # the same event once more at the next seq: its id was used
    expect_failure(renumber(doubled, k + 1), k + 1, "event.duplicate_id")


def test_received_going_backwards(demo: Demo) -> None:
    entries = list(demo.entries)
    k = len(entries) // 2
    earlier = format_time(parse_time(decode_entry(entries[k - 1]).received) - timedelta(microseconds=1))
    entries[k] = reencode(entries[k], received=earlier)
    expect_failure(entries, k, "entry.received")


def test_an_event_signed_with_a_key_revoked_before_its_time(demo: Demo) -> None:
    rotation = demo.report.key_rotation
    revoked = demo.report.revoked_keys[rotation.org]
    effective = parse_time(rotation.effective)
    k = where(demo.entries, lambda b: b["actor"] == rotation.org and parse_time(b["time"]) >= effective)
    entries = list(demo.entries)
    entries[k] = resign(entries[k], revoked)
    expect_failure(entries, k, "key.revoked")


def test_keys_of_others_and_keys_not_yet_valid(demo: Demo) -> None:
    rotation = demo.report.key_rotation
    new_key = demo.report.keys[rotation.org]
    added = where(demo.entries, lambda b: b["type"] == "key_added")
    # an event before the new key was added, signed with it: the key is not the org's yet
    k = where(demo.entries, lambda b: b["actor"] == rotation.org)
    assert k < added
    entries = list(demo.entries)
    entries[k] = resign(entries[k], new_key)
    expect_failure(entries, k, "key.unknown")
    # after it was added, but dated before it was added
    k = where(demo.entries, lambda b: b["actor"] == rotation.org, after=added + 1)
    before = format_time(parse_time(body(demo.entries[added])["time"]) - timedelta(seconds=1))
    entries = list(demo.entries)
    entries[k] = resign(entries[k], new_key, time=before)
    expect_failure(entries, k, "key.not_yet_valid")
    # another organisation's valid key
    other_org, other_key = next((o, kp) for o, kp in demo.report.keys.items() if o != body(demo.entries[k])["actor"])
    entries = list(demo.entries)
    entries[k] = resign(entries[k], other_key)
    expect_failure(entries, k, "key.unknown")


def test_a_forged_genesis(demo: Demo) -> None:
    impostor = KeyPair.generate()
    forged = copy.deepcopy(body(demo.entries[0]))
    forged["data"]["root_key"] = impostor.public_key
    entries = [reencode(demo.entries[0], envelope=sign_body(impostor.private_key, {**forged, "key": impostor.kid}))]
    entries += demo.entries[1:20]
    expect_failure(entries, 1, "key.unknown")  # the operator's first events were signed by the real root key
    expect_failure(entries, 0, "genesis.root_key", pinned_root_key=demo.root.public_raw)
    expect_failure(demo.entries[1:10], 0, "entry.seq")
    expect_failure(renumber(demo.entries[1:10], 0), 0, "genesis.invalid")


def test_a_worker_verdict_is_only_taken_for_the_registered_key(demo: Demo) -> None:
    """The sequential check re-verifies a signature whenever the worker used another key than the registry's."""
    replayer = Replayer()
    k = len(demo.entries) // 2
    for raw in demo.entries[:k]:
        replayer.feed(raw)
    checked = replayer.check_bytes(demo.entries[k])
    assert isinstance(checked, CheckedEntry) and checked.signature_ok
    wrong = checked._replace(signature_key=KeyPair.generate().public_raw, signature_ok=False)
    replayer.apply(wrong, demo.entries[k])  # checked again with the registered key: fine
    unchecked = replayer.check_bytes(demo.entries[k + 1])._replace(signature_key=None, signature_ok=True)
    tampered = demo.entries[k + 1].replace(b'"v":1}', b'"v":1} ')  # bytes that do not check
    with pytest.raises(ReplayError) as error:
        replayer.apply(unchecked, tampered)
    assert (error.value.seq, error.value.rule) == (k + 1, "signature.invalid")
    with pytest.raises(ReplayError):  # a failed replay stays failed
        replayer.feed(demo.entries[k + 1])


# --------------------------------------------------------------------------------------------------------------
# rules on a small hand-made log (no ledger: signed here, so that the ledger's own checks cannot stop them)
# --------------------------------------------------------------------------------------------------------------


class Log:
    """A valid log built by hand: genesis, a site, a trader, a refiner, a monitor; tags issued to the site."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.heads: dict[str, str | None] = {}
        self.clock = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.keys = {org: KeyPair.generate() for org in ("itsci", "site", "trader", "refiner", "monitor")}
        self.rng = random.Random(5)
        root = self.keys["itsci"]
        self.emit("itsci", "ledger_created", "ledger", {
            "ledger": "test", "operator": {"org": "itsci", "name": "Operator", "country": "CD"},
            "root_key": root.public_key, "log_key": {"name": "test/log", "public_key": KeyPair.generate().public_key},
            "mass_tolerance_ppm": 20_000}, created=["org:itsci"])
        for org, role in (("site", "site"), ("trader", "trader"), ("refiner", "refiner"), ("monitor", "monitor")):
            self.emit("itsci", "org_registered", f"org:{org}", {
                "name": org.title(), "role": role, "country": "CD", "public_keys": [self.keys[org].public_key]})
        tag_range = {"prefix": "LOT-", "start": 1, "count": 3, "width": 2}
        self.emit("itsci", "tags_issued", "org:site", {"tags": ["BAG-1", "BAG-2"], "ranges": [tag_range]},
                  created=["tag:BAG-1", "tag:BAG-2", "tag:LOT-01", "tag:LOT-02", "tag:LOT-03"])

    def emit(self, actor: str, kind: str, stream: str, data: dict[str, Any], *, links: list[str] | None = None,
             created: list[str] = (), key: KeyPair | None = None, **changes: Any) -> int:
        self.clock += timedelta(minutes=1)
        new_body = {"v": 1, "id": str(uuid.UUID(int=self.rng.getrandbits(128))), "type": kind, "stream": stream,
                    "prev": self.heads.get(stream), "actor": actor, "key": (key or self.keys[actor]).kid,
                    "time": format_time(self.clock), "data": data}
        if links:
            new_body["links"] = {name: self.heads.get(name) for name in links}
        new_body.update(changes)
        envelope = sign_body((key or self.keys[actor]).private_key, new_body, check=False)
        seq = len(self.entries)
        self.entries.append(encode_entry(seq, format_time(self.clock + timedelta(seconds=1)), envelope))
        digest = hashlib.sha256(jcs(envelope.to_json())).hexdigest()
        for name in (stream, *(links or ()), *created):
            self.heads[name] = digest
        return seq

    def attach(self, tag: str = "BAG-1", mass: int = 40_000) -> int:
        return self.emit("site", "tag_attached", f"tag:{tag}",
                         {"site": "site", "mineral": "tin", "mass_g": mass, "pit": "P1", "ore": None})


def fails(log: Log, rule: str) -> None:
    expect_failure(log.entries, len(log.entries) - 1, rule, parallel=False)


def test_a_hand_made_log_replays() -> None:
    log = Log()
    log.attach()
    log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader", "mass_g": 40_000})
    log.emit("site", "tag_voided", "tag:BAG-1", {"reason": "stolen"})  # voided in transit
    result = replay_sequential(log.entries)
    state = result.state("BAG-1")
    assert (state.status, state.pending_recipient, state.dispatched_mass_g) == ("voided", None, 40_000)
    assert result.state("LOT-03").issued_to == "site"
    assert json.loads(state.canonical())["origin"] == {
        "site": "site", "mineral": "tin", "ore": None, "pit": "P1", "gps": None,
        "attached_at": body(log.entries[6])["time"], "price_paid": None}


@pytest.mark.parametrize(("make", "rule"), [
    (lambda log: log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}), "tag.not_attached"),
    (lambda log: (log.attach(), log.emit("trader", "custody_dispatched", "tag:BAG-1", {"to": "site"})),
     "custody.not_holder"),
    (lambda log: (log.attach(), log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "monitor"})),
     "recipient.invalid"),
    (lambda log: (log.attach(), log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}),
                  log.emit("trader", "custody_received", "tag:BAG-1", {"mass_g": 41_000})), "mass.gain"),
    (lambda log: (log.attach(), log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}),
                  log.emit("refiner", "custody_received", "tag:BAG-1", {"mass_g": 40_000})), "custody.not_recipient"),
    (lambda log: (log.attach(), log.emit("site", "tag_consumed", "tag:BAG-1", {})), "actor.role"),
    (lambda log: (log.attach(), log.attach("BAG-2"),
                  log.emit("site", "lot_formed", "tag:LOT-01", {"inputs": ["BAG-1", "BAG-2"], "mass_g": 70_000},
                           links=["tag:BAG-1", "tag:BAG-2"])), "mass.balance"),
    (lambda log: (log.attach(), log.emit("site", "lot_formed", "tag:LOT-01", {"inputs": ["BAG-1", "BAG-2"],
                                                                            "mass_g": 40_000}, links=["tag:BAG-1"])),
     "envelope.malformed"),
    (lambda log: log.emit("site", "tag_attached", "tag:BAG-9", {"site": "site", "mineral": "tin", "mass_g": 1,
                                                                "pit": "P"}), "stream.unknown"),
    (lambda log: log.emit("itsci", "tags_issued", "org:site", {"tags": ["BAG-2"]}), "tag.already_issued"),
    (lambda log: log.emit("itsci", "tags_issued", "org:monitor", {"tags": ["NEW-1"]}), "recipient.invalid"),
    (lambda log: log.emit("site", "tag_attached", "tag:BAG-1", {"site": "site", "mineral": "gold", "mass_g": 1,
                                                                "pit": "P"}), "envelope.malformed"),
    (lambda log: log.emit("site", "tag_attached", "tag:BAG-1", {"site": "site", "mineral": "tin", "mass_g": 1,
                                                                "pit": "P"}, prev=None), "stream.conflict"),
    (lambda log: log.emit("site", "tag_attached", "tag:BAG-1", {"site": "site", "mineral": "tin", "mass_g": 1,
                                                                "pit": "P"}, time="2025-01-01T00:00:00Z"),
     "key.not_yet_valid"),
    (lambda log: (log.attach(), log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"},
                                         time="2026-01-01T00:06:59.999999Z")), "time.before_previous"),
    (lambda log: log.emit("site", "tag_attached", "tag:BAG-1", {"site": "site", "mineral": "tin", "mass_g": 1,
                                                                "pit": "P"}, time="2027-01-01T00:00:00Z"),
     "time.in_future"),
    (lambda log: log.emit("ghost", "tag_attached", "tag:BAG-1", {"site": "ghost", "mineral": "tin", "mass_g": 1,
                                                                 "pit": "P"}, key=log.keys["site"]), "actor.unknown"),
    (lambda log: log.emit("itsci", "org_registered", "org:site", {"name": "Again", "role": "site", "country": "CD",
                                                                  "public_keys": [KeyPair.generate().public_key]}),
     "stream.conflict"),
    (lambda log: log.emit("itsci", "key_added", "org:trader", {"public_key": log.keys["site"].public_key}),
     "key.already_registered"),
    (lambda log: log.emit("itsci", "key_revoked", "org:trader", {"key": log.keys["site"].kid, "reason": "x"}),
     "key.unknown"),
    (lambda log: log.emit("itsci", "ledger_created", "ledger", body(log.entries[0])["data"], prev=None),
     "stream.conflict"),
])
def test_rules(make: Callable[[Log], Any], rule: str) -> None:
    log = Log()
    make(log)
    fails(log, rule)


def test_revocation_with_an_effective_time() -> None:
    log = Log()
    attached = log.attach()
    effective = format_time(log.clock + timedelta(seconds=30))  # 30 s after the attachment
    new = KeyPair.generate()
    log.emit("itsci", "key_added", "org:site", {"public_key": new.public_key})
    log.emit("itsci", "key_revoked", "org:site", {"key": log.keys["site"].kid, "reason": "lost",
                                                  "effective": effective})
    heads = dict(log.heads)
    # recorded after the revocation, dated before its effective time: refused all the same (protocol 1.7: a
    # revoked key signs nothing received after the revocation, whatever time the event claims)
    before = format_time(parse_time(body(log.entries[attached])["time"]) + timedelta(seconds=10))
    log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"}, time=before)
    fails(log, "key.revoked")
    log.entries.pop()
    log.heads = dict(heads)
    log.emit("site", "tag_voided", "tag:BAG-1", {"reason": "lost"}, time=effective)  # the old one, at `effective`
    fails(log, "key.revoked")
    log.entries.pop()
    log.heads = dict(heads)
    log.emit("site", "tag_voided", "tag:BAG-1", {"reason": "lost"}, key=new)  # the new key: fine
    assert replay_sequential(log.entries).state("BAG-1").status == "voided"


# --------------------------------------------------------------------------------------------------------------
# the parts
# --------------------------------------------------------------------------------------------------------------


def test_the_fast_decoder_accepts_only_what_the_reference_accepts(demo: Demo) -> None:
    for raw in demo.entries[:300]:
        fast = _decode_fast(raw)
        entry = decode_entry(raw)
        if fast is not None:
            assert fast[:3] == (entry.seq, entry.received, entry.envelope.body)
    raw = demo.entries[5]
    variants = [
        raw.replace(b'"v":1}', b'"v":1.0}'), raw.replace(b'"v":1}', b'"v":1e0}'), raw.replace(b'"v":1}', b' "v":1}'),
        raw.replace(b',"v":1}', b',"v":1,"v":1}'), raw.replace(b'"seq":5', b'"seq":-0'),
        raw.replace(b'"seq":5', b'"seq":9007199254740992'), raw.replace(b'"seq":5', b'"seq":true'),
        raw.replace(b'"received":"', b'"received":"\\u0032'), raw.replace(b'{"envelope":', b'{"envelope": '),
        raw.replace(b'"actor":"', b'"actor":"\\ud800'), raw.replace(b'"actor":"', b'"actor":"\xc3\xa9'),
        raw.replace(b'"v":1}', b'"v":NaN}'), raw[:-1],
    ]
    for variant in variants:
        assert variant != raw
        assert _decode_fast(variant) is None
        with pytest.raises(ValueError):
            decode_entry(variant)
        assert isinstance(check_entry(variant, lambda kid: None, b"k" * 16, SignatureChecker()), EntryProblem)


def test_non_ascii_entries_take_the_reference_path() -> None:
    log = Log()
    pit = "Kalimbi \u00e9tape \U0001f69a \ue000 \u2028 \x01\x7f \"\\ /"
    log.emit("site", "tag_attached", "tag:BAG-1", {"site": "site", "mineral": "tin", "mass_g": 5, "pit": pit,
                                                   "price_paid": {"minor_per_kg": 10, "currency": "EUR"}})
    assert _decode_fast(log.entries[-1]) is None
    state = replay_sequential(log.entries).state("BAG-1")
    assert state.status == "in_custody" and state.to_json()["origin"]["pit"] == pit
    assert state.canonical() == jcs(state.to_json()) == jcs(json.loads(state.canonical()))


def test_normalized_times_order_as_instants() -> None:
    times = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5Z", "2026-01-01T00:00:00.123456Z", "0999-12-31T23:59:59Z"]
    for a in times:
        assert len(normalize_time(a)) == 27 and parse_time(normalize_time(a)) == parse_time(a)
        for b in times:
            assert (normalize_time(a) < normalize_time(b)) == (parse_time(a) < parse_time(b))


def test_tag_state_canonical_equals_jcs_of_its_json() -> None:
    state = TagState("LOT-0001", "depot", bytes(range(32)), 12, "2026-01-01T00:00:00.000000Z")
    state.inputs = ("A-01", "B-02")
    state.origin = jcs({"site": "s", "pit": "\u00e9\n\"", "gps": {"lat": "1", "lon": "2"}})
    state.dispatched_mass_g, state.mass_g, state.holder = 5, 0, "depot"
    assert state.canonical() == jcs(state.to_json())


def test_random_damage_is_always_a_replay_error(demo: Demo) -> None:
    """Bytes changed, removed or inserted anywhere in an entry: the replay names a rule, it never crashes."""
    rng = random.Random(11)
    entries = demo.entries[:60]
    alphabet = b'0123456789abcdefAZ{}[]":,.-_ \\ntrue\xc3\xa9'
    for _ in range(300):
        damaged = list(entries)
        k = rng.randrange(len(damaged))
        raw = bytearray(damaged[k])
        for _ in range(rng.choice((1, 1, 2, 3))):
            at, what = rng.randrange(len(raw)), rng.random()
            if what < 0.6:
                raw[at] = rng.choice(alphabet)
            elif what < 0.8:
                del raw[at]
            else:
                raw.insert(at, rng.choice(alphabet))
        if bytes(raw) == entries[k]:
            continue
        damaged[k] = bytes(raw)
        try:
            result = replay_sequential(damaged)
        except ReplayError as error:
            assert error.seq <= k or error.rule in {"stream.conflict", "entry.received"}, str(error)
        else:  # only `received` is outside the signed envelope: then the Merkle root tells
            assert decode_entry(damaged[k]).envelope == decode_entry(entries[k]).envelope
            assert result.root != replay_sequential(entries).root


# --------------------------------------------------------------------------------------------------------------
# key.weak: a log in which an earlier ledger let a weak key be registered fails at that entry (protocol 1.14)
# --------------------------------------------------------------------------------------------------------------

IDENTITY_KEY = bytes.fromhex("01" + "00" * 31)
FORGED_SIGNATURE = bytes.fromhex("01" + "00" * 63)  # R = identity, S = 0: verifies on any message by IDENTITY_KEY
WEAK = {  # the edge-case vectors' keys (verification/vectors/ed25519-edge-cases.json), and the point of order 2
    "identity": IDENTITY_KEY,
    "order 2": bytes.fromhex("ec" + "ff" * 30 + "7f"),
    "order 8": bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    "mixed order": bytes.fromhex("b502ff3d92e31d8190b4aa4ea0414005167fad089c4de9dac8a2fc850fed4f58"),
    "y = p": bytes.fromhex("ed" + "ff" * 30 + "7f"),
    "sign bit on x = 0": bytes.fromhex("01" + "00" * 30 + "80"),
    "not a point": bytes.fromhex("02" + "00" * 31),
}


def _fails_at(entries: list[bytes], seq: int, rule: str, field: str) -> None:
    with pytest.raises(ReplayError) as failure:
        replay_sequential(entries)
    assert (failure.value.seq, failure.value.rule, failure.value.field) == (seq, rule, field), str(failure.value)


def _forged(log: Log, actor: str, kind: str, stream: str, data: dict[str, Any], **changes: Any) -> int:
    """An entry "signed" by the identity key, with the signature anyone can make for it."""
    log.clock += timedelta(minutes=1)
    new_body = {"v": 1, "id": str(uuid.UUID(int=log.rng.getrandbits(128))), "type": kind, "stream": stream,
                "prev": log.heads.get(stream), "actor": actor, "key": key_id(IDENTITY_KEY),
                "time": format_time(log.clock), "data": data, **changes}
    envelope = Envelope(body=new_body, sig=b64url_encode(FORGED_SIGNATURE))
    seq = len(log.entries)
    log.entries.append(encode_entry(seq, format_time(log.clock + timedelta(seconds=1)), envelope))
    log.heads[stream] = hashlib.sha256(jcs(envelope.to_json())).hexdigest()
    return seq


def test_the_forged_signature_verifies_which_is_why_the_key_is_refused() -> None:
    Ed25519PublicKey.from_public_bytes(IDENTITY_KEY).verify(FORGED_SIGNATURE, b"any message at all")


@pytest.mark.parametrize("name", sorted(WEAK))
def test_a_weak_key_added_or_registered_fails_the_replay_at_that_entry(name: str) -> None:
    log = Log()
    seq = log.emit("itsci", "key_added", "org:trader", {"public_key": b64url_encode(WEAK[name])})
    log.attach()  # later entries do not matter: the replay stops at the first broken rule
    _fails_at(log.entries, seq, "key.weak", "/body/data/public_key")

    log = Log()
    seq = log.emit("itsci", "org_registered", "org:newcomer", {
        "name": "Newcomer", "role": "site", "country": "CD",
        "public_keys": [KeyPair.generate().public_key, b64url_encode(WEAK[name])]})
    _fails_at(log.entries, seq, "key.weak", "/body/data/public_keys/1")


def test_events_forged_for_a_registered_identity_key_are_caught_at_its_registration() -> None:
    log = Log()
    registered = log.emit("itsci", "key_added", "org:site", {"public_key": b64url_encode(IDENTITY_KEY)})
    _forged(log, "site", "tag_attached", "tag:BAG-1",
            {"site": "site", "mineral": "tin", "mass_g": 40_000, "pit": "P1", "ore": None})
    expect_failure(log.entries, registered, "key.weak")  # sequential and parallel alike
    _fails_at(log.entries, registered, "key.weak", "/body/data/public_key")
    # without the key_added entry the forged event names a key the site never had
    _fails_at(renumber(log.entries[:registered] + log.entries[registered + 1:], registered), registered,
              "key.unknown", "/body/key")


def _genesis_data(root_key: bytes, log_key: bytes) -> dict[str, Any]:
    return {"ledger": "test", "operator": {"org": "itsci", "name": "Operator", "country": "CD"},
            "root_key": b64url_encode(root_key), "log_key": {"name": "test/log", "public_key": b64url_encode(log_key)},
            "mass_tolerance_ppm": 20_000}


def test_a_genesis_with_a_weak_root_key_fails_at_entry_0() -> None:
    log = Log()
    log.entries, log.heads = [], {}
    real_log_key = KeyPair.generate().public_raw
    _forged(log, "itsci", "ledger_created", "ledger", _genesis_data(IDENTITY_KEY, real_log_key))
    _fails_at(log.entries, 0, "key.weak", "/body/data/root_key")


@pytest.mark.parametrize("name", sorted(WEAK))
def test_a_genesis_with_a_weak_log_key_fails_at_entry_0(name: str) -> None:
    log = Log()
    log.entries, log.heads = [], {}
    root = log.keys["itsci"]
    log.emit("itsci", "ledger_created", "ledger", _genesis_data(root.public_raw, WEAK[name]))
    _fails_at(log.entries, 0, "key.weak", "/body/data/log_key/public_key")
