"""Replaying the log: every entry checked in order, and the custody state folded -- docs/protocol.md.

An auditor's own implementation of sections 3 to 7 and 10, independent of the ledger's code. Feed the
exact bytes of the log entries in order to a :class:`Replayer` (or call :func:`replay_sequential`, or
:func:`verification.parallel.replay_entries` to use several processes): at the first entry that breaks a
rule it raises :class:`~verification.replay_errors.ReplayError` naming the entry's seq and the rule, and
stays as it was after the previous entry.

For each entry, in this order (the order of section 7, after the log's own rules):

1. the bytes are a canonical log entry whose envelope and data match sections 4 and 6
   (``entry.malformed``, ``envelope.malformed``; :mod:`verification.entry_checks`);
2. ``seq`` is the entry's position (``entry.seq``) and ``received`` is not before the previous entry's
   (``entry.received``);
3. the event id was not used before (``event.duplicate_id``, naming the entry that used it;
   :mod:`verification.event_ids`);
4. entry 0 is the genesis (``genesis.invalid``; its root and log keys are of prime order, ``key.weak``;
   and the caller's pins ``genesis.root_key`` and ``genesis.log_key``); no other entry is a genesis
   (``stream.conflict``);
5. the actor is registered and ``key`` is one of its keys as of this point (``actor.unknown``,
   ``key.unknown``), the signature verifies with it (``signature.invalid``), it is valid at ``time``
   (``key.not_yet_valid``, ``key.revoked``) and the actor's role may record the type (``actor.role``);
6. every stream the event joins exists and ``prev`` / each ``links`` value is the hash of its current last
   event (``stream.unknown``, ``stream.conflict``); the tags a ``tags_issued`` creates do not exist yet
   (``tag.already_issued``);
7. ``time`` is not before the last event of any stream it joins (``time.before_previous``) nor more than
   300 s after ``received`` (``time.in_future``: ``received`` is the ledger's clock when it accepted it);
8. the rules of the registry events (:class:`verification.registry_replay.KeyRegistry`), the custody
   rules (:mod:`verification.custody_rules`) and the risk rules (:mod:`verification.risk_replay`; its
   ``incident:`` and ``site:`` streams are checked in step 6 like the others).

Then the entry is folded into the key registry and the tags' custody states
(:mod:`verification.custody_state`), and its leaf hash appended to the Merkle tree
(:class:`verification.merkle.CompactRange`).

Memory is proportional to the number of organisations, keys and risk streams (incidents, sites), but not
to the number of entries or of tags: the tags' states are a bounded cache over a temporary SQLite file
(:mod:`verification.tag_store`), and so are the event ids (:mod:`verification.event_ids`); both files are
deleted when the replay is garbage-collected, or at exit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from verification.custody_rules import check_tag_event
from verification.custody_state import TagState, apply_event, counts_by_status, custody_digest, state_rows
from verification.encoding import EncodingError, decode_public_key, format_time, key_id, parse_time
from verification.entry_checks import CheckedEntry, EntryProblem, check_entry, normalize_time
from verification.entry_checks import signature_checker as _signature_checker  # a parameter has its name
from verification.event_data import CUSTODY_ROLES, REGISTRY_EVENT_TYPES, RISK_EVENT_TYPES, ROLES, TAG_EVENT_TYPES
from verification.event_ids import EventIds
from verification.merkle import CompactRange
from verification.registry_replay import Head, KeyRegistry, refuse_weak_key
from verification.replay_errors import ReplayError, RuleBroken
from verification.risk_replay import ALLOWED_ROLES as RISK_ALLOWED_ROLES
from verification.risk_replay import CREATING_TYPES, RISK_STREAM_PREFIXES, RiskStreams, check_empty_site_stream
from verification.tag_store import TagStates

__all__ = [
    "ALLOWED_ROLES",
    "MAX_CLOCK_SKEW",
    "ReplayResult",
    "Replayer",
    "Snapshot",
    "replay_sequential",
]

MAX_CLOCK_SKEW = timedelta(seconds=300)
"""``time.in_future``: an event may be dated at most this long after the ledger's clock (``received``)."""

_OPERATOR = frozenset({"operator"})
ALLOWED_ROLES: dict[str, frozenset[str]] = {
    **{kind: _OPERATOR for kind in REGISTRY_EVENT_TYPES},
    **{kind: CUSTODY_ROLES for kind in TAG_EVENT_TYPES},
    "tag_consumed": frozenset({"refiner"}),
    "tag_voided": CUSTODY_ROLES | _OPERATOR,
    "tag_scanned": ROLES,  # any registered organisation may record that it saw a tag
    **RISK_ALLOWED_ROLES,  # incidents, actions, site monitoring (verification.risk_replay)
}
"""Rule ``actor.role``: the roles whose members may record each event type (section 7, "Actors")."""


@dataclass(frozen=True)
class Snapshot:
    """The ledger as of entry ``seq`` (after it): custody digest, tags per status, Merkle root."""

    seq: int
    digest: str
    counts: dict[str, int]
    root: bytes

    @property
    def size(self) -> int:
        return self.seq + 1


class Replayer:
    """Checks and folds log entries one by one (see the module docstring).

    ``pinned_root_key`` / ``pinned_log_key`` (raw 32-byte public keys) and ``pinned_log_key_name``: what
    the genesis must name, e.g. from the log's checkpoint verifier key; a mismatch is
    ``genesis.root_key`` / ``genesis.log_key``. ``id_key`` keys the event-id fingerprints (random by
    default; give one to reproduce a run exactly). ``signature_checker``: a factory's dotted path
    (:func:`verification.entry_checks.signature_checker`; None: OpenSSL through ``cryptography``).
    """

    def __init__(
        self,
        *,
        pinned_root_key: bytes | None = None,
        pinned_log_key: bytes | None = None,
        pinned_log_key_name: str | None = None,
        id_key: bytes | None = None,
        observe: Callable[[CheckedEntry, int], None] | None = None,
        signature_checker: str | None = None,
    ) -> None:
        self.observe = observe  # told of every entry folded (e.g. verification.refused_attempts.AttemptWatch)
        self.registry = KeyRegistry()
        self.risk = RiskStreams()  # the incident: and site: streams (verification.risk_replay)
        self.id_key = id_key if id_key is not None else os.urandom(16)
        self.tags = TagStates()  # every tag: a bounded cache over a file (verification.tag_store)
        self.size = 0
        self.last_received: str | None = None
        self.tree = CompactRange()
        self.failure: ReplayError | None = None
        self._ids = EventIds()  # every event id, with its seq: a bitmap and a file (verification.event_ids)
        self._pins = (pinned_root_key, pinned_log_key, pinned_log_key_name)
        self._signatures = _signature_checker(signature_checker)
        self.signature_engine: str = self._signatures.engine  # what verifies the signatures (the audit's report)
        self._future_limit: tuple[str, str | None] = ("", None)  # (received, latest time allowed)

    # -- feeding ----------------------------------------------------------------------------------------

    def feed(self, raw: bytes) -> None:
        """Check and fold the next log entry, given as its exact bytes."""
        self.apply(self.check_bytes(raw), raw)

    def check_bytes(self, raw: bytes) -> CheckedEntry | EntryProblem:
        """The stateless checks of ``raw`` (:func:`verification.entry_checks.check_entry`) with this
        replay's registry as it stands now naming the keys."""
        return check_entry(raw, self.registry.public_key, self.id_key, self._signatures)

    def apply(self, entry: CheckedEntry | EntryProblem, raw: bytes | None = None) -> None:
        """Check and fold the next entry, already through :func:`~verification.entry_checks.check_entry`.

        ``raw`` (the entry's bytes) is needed only if the signature was checked with another key than the
        one the registry holds for ``key`` (or not at all): it is then checked again here.
        """
        if self.failure is not None:
            raise ReplayError(self.failure.seq, self.failure.rule,
                              f"the replay already failed here: {self.failure.message}", self.failure.field)
        seq = self.size
        try:
            if isinstance(entry, EntryProblem):
                raise RuleBroken(entry.rule, entry.field, entry.message)
            self._check(entry, seq, raw)
        except RuleBroken as broken:
            self.failure = ReplayError(seq, broken.rule, broken.message, broken.field)
            raise self.failure from None
        self._fold(entry, seq)

    # -- the checks -------------------------------------------------------------------------------------

    def _check(self, entry: CheckedEntry, seq: int, raw: bytes | None) -> None:
        if entry.seq != seq:
            what = "missing" if entry.seq > seq else "repeated or out of order"
            raise RuleBroken("entry.seq", "", f"entry at position {seq} has seq {entry.seq}: an entry is {what}")
        if self.last_received is not None and entry.received < self.last_received:
            raise RuleBroken("entry.received", "", f"received {entry.received} is before the previous entry's "
                             f"{self.last_received}")
        earlier = self._ids.earlier(entry.event_id, entry.id_fingerprint)
        if earlier is not None:
            raise RuleBroken("event.duplicate_id", "/body/id", f"event id {entry.event_id} was used before, by "
                             f"entry #{earlier}")

        if seq == 0 or entry.type == "ledger_created":
            self._check_genesis(entry, seq)
            self._check_time(entry, [])
            return
        registry = self.registry
        key = registry.signing_key(entry.actor, entry.key)
        if entry.signature_key == key.public_key:
            ok = entry.signature_ok
        else:
            ok = self._signature_ok(raw, key.public_key)
        if not ok:
            raise RuleBroken("signature.invalid", "/sig", f"the signature does not verify with key {entry.key}")
        problem = key.problem_at(entry.time)
        if problem is not None:
            raise RuleBroken(problem[0], "/body/key", problem[1])
        role = registry.role_of(entry.actor)
        if role not in ALLOWED_ROLES[entry.type]:
            raise RuleBroken("actor.role", "/body/actor", f"a {role} may not record {entry.type}")

        heads = self._check_streams(entry)
        self._check_time(entry, heads)

        if entry.type in TAG_EVENT_TYPES:
            assert registry.ledger is not None
            check_tag_event(entry, self.tags, registry.role_of, registry.ledger.mass_tolerance_ppm)
        elif entry.type in RISK_EVENT_TYPES:
            self.risk.check_event(entry, registry.role_of)
        else:
            registry.check_event(entry)

    def _signature_ok(self, raw: bytes | None, public_key: bytes) -> bool:
        if raw is None:
            raise RuleBroken("signature.invalid", "/sig", "the signature was not checked with the registered key "
                             "and the entry's bytes were not given to check it again")
        again = check_entry(raw, lambda kid: public_key, self.id_key, self._signatures)
        return isinstance(again, CheckedEntry) and again.signature_key == public_key and again.signature_ok

    def _check_genesis(self, entry: CheckedEntry, seq: int) -> None:
        if seq != 0:
            raise RuleBroken("stream.conflict", "/body/prev", "the ledger already has its genesis event (entry #0)")
        if entry.type != "ledger_created":
            raise RuleBroken("genesis.invalid", "/body/type", f"entry 0 is a {entry.type}, not ledger_created")
        if entry.prev is not None or entry.links:
            raise RuleBroken("genesis.invalid", "/body/prev", "the genesis is the first event of `ledger`")
        data = entry.data
        if entry.actor != data["operator"]["org"]:
            raise RuleBroken("genesis.invalid", "/body/actor", "the genesis is acted by the operator it names")
        root = entry.signature_key
        assert root is not None  # check_entry takes the genesis key from data.root_key
        if entry.key != key_id(root):
            raise RuleBroken("genesis.invalid", "/body/key", "the genesis is signed by its root key")
        if not entry.signature_ok:
            raise RuleBroken("signature.invalid", "/sig", "the genesis signature does not verify with its root key")
        refuse_weak_key(root, "/body/data/root_key")
        refuse_weak_key(decode_public_key(data["log_key"]["public_key"]), "/body/data/log_key/public_key")
        pinned_root, pinned_log, pinned_log_name = self._pins
        if pinned_root is not None and root != pinned_root:
            raise RuleBroken("genesis.root_key", "/body/data/root_key", "the root key is not the pinned one")
        log_key = data["log_key"]
        if pinned_log is not None and decode_public_key(log_key["public_key"]) != pinned_log:
            raise RuleBroken("genesis.log_key", "/body/data/log_key/public_key", "the log key is not the pinned one")
        if pinned_log_name is not None and log_key["name"] != pinned_log_name:
            raise RuleBroken("genesis.log_key", "/body/data/log_key/name",
                             f"the log key is named {log_key['name']!r}, not {pinned_log_name!r}")

    def _check_streams(self, entry: CheckedEntry) -> list[tuple[bytes, int, str]]:
        """Each joined stream exists and the event names its head (compare-and-swap); new tags are new."""
        joined = [(entry.stream, entry.prev, "/body/prev")]
        joined += [(name, value, "/body/links/" + name) for name, value in entry.links]
        heads: list[tuple[bytes, int, str]] = []  # (hash, seq, time) of each joined stream's head
        tags = self.tags
        for stream, declared, pointer in joined:
            head: Head | None
            if stream.startswith("tag:"):
                state = tags.get(stream[4:])
                if state is not None and declared == state.head_hash and entry.type != "org_registered":
                    heads.append((state.head_hash, state.head_seq, state.last_time))
                    continue  # the common case, without building a Head
                head = None if state is None else Head(state.head_hash, state.head_seq, state.last_time)
            elif stream.startswith(RISK_STREAM_PREFIXES):
                head = self.risk.head(stream)
                if head is None and stream.startswith("site:"):  # exists, empty, for every registered site
                    check_empty_site_stream(stream, declared, pointer, self.registry.role_of)
                    continue
            else:
                head = self.registry.head(stream)
            if head is None:
                if declared is not None or entry.type not in CREATING_TYPES:
                    what = "the tag was never issued" if stream.startswith("tag:") else "the stream does not exist"
                    where = "/body/stream" if pointer == "/body/prev" else pointer
                    raise RuleBroken("stream.unknown", where, f"{stream}: {what}")
                continue
            if entry.type in CREATING_TYPES:  # a registration or an incident report never continues a stream
                raise RuleBroken("stream.conflict", pointer, f"{stream} already exists (entry #{head.seq})")
            if declared != head.hash:
                named = "null" if declared is None else declared.hex()
                raise RuleBroken("stream.conflict", pointer, f"{stream}: the event names {named} as the previous "
                                 f"event, but the last event is entry #{head.seq} ({head.hash.hex()})")
            heads.append(head)
        if entry.issued:
            i = self.tags.first_issued(entry.issued)
            if i is not None:
                raise RuleBroken("tag.already_issued", _issued_pointer(entry, i),
                                 f"tag {entry.issued[i]} is already issued")
        return heads

    def _check_time(self, entry: CheckedEntry, heads: list[tuple[bytes, int, str]]) -> None:
        for _hash, head_seq, head_time in heads:
            if entry.time < head_time:
                raise RuleBroken("time.before_previous", "/body/time",
                                 f"time is before the previous event (entry #{head_seq}) of a stream it joins")
        if entry.time <= entry.received:  # the common case: nothing to compute
            return
        received, limit = self._future_limit
        if received != entry.received:
            try:
                limit = normalize_time(format_time(parse_time(entry.received) + MAX_CLOCK_SKEW))
            except (OverflowError, EncodingError):  # past year 9999: nothing can be later
                limit = None
            self._future_limit = (entry.received, limit)
        if limit is not None and entry.time > limit:
            raise RuleBroken("time.in_future", "/body/time", f"time is more than 300 s after received {entry.received}")

    # -- folding ----------------------------------------------------------------------------------------

    def _fold(self, entry: CheckedEntry, seq: int) -> None:
        self._ids.add(entry.event_id, entry.id_fingerprint, seq)
        if entry.type in REGISTRY_EVENT_TYPES:
            self.registry.apply(entry, seq)
        elif entry.type in RISK_EVENT_TYPES:
            self.risk.apply(entry, seq)
        try:
            apply_event(self.tags, entry, seq)
        except (KeyError, TypeError, ValueError) as error:  # only if a rule above has a gap
            self.failure = ReplayError(seq, "custody.unapplicable", f"the custody fold cannot apply it: {error!r}")
            raise self.failure from None
        self.tags.settle(entry)  # states leave the cache only here, between entries
        self.tree.append(entry.leaf)
        self.last_received = entry.received
        self.size = seq + 1
        if self.observe is not None:
            self.observe(entry, seq)

    # -- results ----------------------------------------------------------------------------------------

    def digest(self) -> str:
        """The custody digest of the tags' states now (section 10)."""
        return custody_digest(self.tags)

    def snapshot(self) -> Snapshot:
        """The ledger as of the last entry fed (needs at least one)."""
        return Snapshot(self.size - 1, self.digest(), counts_by_status(self.tags), self.tree.root())

    def result(self, snapshot: Snapshot | None = None, stopped: str | None = None) -> ReplayResult:
        return ReplayResult(self, snapshot, stopped)


def _issued_pointer(entry: CheckedEntry, index: int) -> str:
    listed = entry.data.get("tags") or []
    if index < len(listed):
        return f"/body/data/tags/{index}"
    index -= len(listed)
    for j, tag_range in enumerate(entry.data.get("ranges") or []):
        if index < tag_range["count"]:
            return f"/body/data/ranges/{j}"
        index -= tag_range["count"]
    return "/body/data"


@dataclass
class ReplayResult:
    """What a replay found: the log's size and Merkle root, the custody digest, the tags' states.

    ``snapshot`` is the ledger as of the entry asked for (``snapshot_at``), if the log reached it;
    ``stopped`` says why the replay stopped before the end of the input, if it did.
    """

    replayer: Replayer = field(repr=False)
    snapshot: Snapshot | None = None
    stopped: str | None = None

    @property
    def size(self) -> int:
        """How many entries were replayed (the next seq)."""
        return self.replayer.size

    @property
    def root(self) -> bytes:
        """The Merkle tree hash of the entries replayed (RFC 9162), raw."""
        return self.replayer.tree.root()

    @property
    def digest(self) -> str:
        """The custody digest (section 10) of the states after the last entry replayed."""
        return self.replayer.digest()

    @property
    def counts(self) -> dict[str, int]:
        """How many tags are in each status."""
        return counts_by_status(self.replayer.tags)

    @property
    def registry(self) -> KeyRegistry:
        return self.replayer.registry

    def state(self, tag: str) -> TagState | None:
        """The custody state of ``tag`` (None if it was never issued; a finished tag's as a read-only copy)."""
        return self.replayer.tags.peek(tag)

    def rows(self) -> Iterator[tuple[str, bytes]]:
        """(tag, jcs(state)) for every tag, in the digest's order."""
        return iter(state_rows(self.replayer.tags))

    @property
    def tag_count(self) -> int:
        """How many tags were issued."""
        return len(self.replayer.tags)

    def __len__(self) -> int:
        """How many tags were issued (``tag_count``)."""
        return len(self.replayer.tags)


def replay_sequential(
    entries: Iterable[bytes],
    *,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    stop_after_seq: int | None = None,
    stop_at_time: str | None = None,
    snapshot_at: int | None = None,
    pinned_root_key: bytes | None = None,
    pinned_log_key: bytes | None = None,
    pinned_log_key_name: str | None = None,
    id_key: bytes | None = None,
    observe: Callable[[CheckedEntry, int], None] | None = None,
    signature_checker: str | None = None,
) -> ReplayResult:
    """Replay ``entries`` (the exact bytes of each log entry, in order) in this process.

    Stops after entry ``stop_after_seq``, or before the first entry whose ``received`` is after
    ``stop_at_time`` (a protocol time), or at the end. ``snapshot_at``: also record the ledger as of that
    entry (:class:`Snapshot`). ``observe(entry, seq)`` is called with every entry folded. Raises
    :class:`ReplayError` at the first entry that breaks a rule.
    """
    replayer = Replayer(pinned_root_key=pinned_root_key, pinned_log_key=pinned_log_key,
                        pinned_log_key_name=pinned_log_key_name, id_key=id_key, observe=observe,
                        signature_checker=signature_checker)
    time_limit = None if stop_at_time is None else normalize_time(_checked_time(stop_at_time))
    snapshot = None
    stopped = None
    if stop_after_seq is not None and stop_after_seq < 0:
        return replayer.result(None, "stop_after_seq")
    for raw in entries:
        entry = replayer.check_bytes(raw)
        if time_limit is not None and isinstance(entry, CheckedEntry) and entry.received > time_limit:
            stopped = "stop_at_time"
            break
        replayer.apply(entry, raw)
        if snapshot_at is not None and replayer.size == snapshot_at + 1:
            snapshot = replayer.snapshot()
        if progress is not None and replayer.size % progress_every == 0:
            progress(replayer.size)
        if stop_after_seq is not None and replayer.size > stop_after_seq:
            stopped = "stop_after_seq"
            break
    if progress is not None:
        progress(replayer.size)
    return replayer.result(snapshot, stopped)


def _checked_time(text: str) -> str:
    parse_time(text)  # raises EncodingError for anything but a protocol time
    return text
