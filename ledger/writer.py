"""The write path: admit signed envelopes into the log, many per durable transaction.

1. `prepare` (no lock): check the envelope's structure and payload schema, compute its canonical bytes and
   hash. Most bad input is refused here.
2. `LedgerWriter._admit` (under the store's write lock, in one transaction): bring the key registry up to
   date, read the events of every stream the batch touches, then for each envelope in order: idempotency,
   key, signature, and `domain.rules.check`; accepted envelopes get the next `seq` and are folded into the
   working state, so later envelopes in the same batch see them.
3. Insert the accepted entries and commit. Only then is any caller answered: nothing acknowledged is lost.
   If the store fails, each caller is told what happened to its envelope: not written, or, when the COMMIT
   itself failed, what the log holds once it can be read again (`ledger.write_outcomes`).

Concurrent callers are grouped by a single writer thread (group commit): while one batch commits, the next
one gathers. Two conflicting writes to one stream can never both land: the second one's `prev` no longer
matches the head (`stream.conflict`).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from eventsourcing.persistence import PersistenceError

from domain import custody
from domain.errors import RuleViolation
from domain.flags import attempt_tag
from domain.payloads import Strict, parse_data
from domain.registry import Registry
from domain.roles import REGISTRY_EVENT_TYPES
from domain.risk import RiskBook
from domain.rules import check, touched_risk_stream, touched_tags
from ledger import write_outcomes
from ledger.entries import build_entry, read_entry
from ledger.fast_signatures import verify_envelope  # the protocol's verdict, libsodium first (self-tested)
from ledger.row_json import fast_jcs, fast_jcs_parsed
from ledger.store.base import CommitOutcomeUnknown, LogStore, StoredEvent, WriteSession
from ledger.write_outcomes import short
from ledger.writer_memory import WriterMemory
from verification.encoding import b64url_decode, format_time, parse_time, sha256_hex
from verification.envelope import Envelope, EnvelopeError, envelope_bytes, issued_tags


log = logging.getLogger("tagledger.writer")

_raw_key = functools.lru_cache(maxsize=4096)(b64url_decode)
"""A registered key's raw bytes from its base64url text, decoded once (a failed decoding is not kept)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Receipt:
    """The ledger's answer to an accepted envelope (or to the resubmission of one)."""

    event_id: str
    seq: int
    received: str
    hash: str
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "seq": self.seq,
            "received": self.received,
            "hash": self.hash,
            "duplicate": self.duplicate,
        }


@dataclass
class Submission:
    envelope: Envelope
    canonical: bytes
    hash: str
    payload: Strict
    future: Future[Receipt] = field(default_factory=Future)

    @property
    def body(self) -> dict[str, Any]:
        return self.envelope.body


class _Slot:
    """Where `submit_many` (one thread, no waiting) finds an envelope's outcome: the part of `Future` that
    `_run_batch` and `submit_many` use, without a `Future`'s lock and condition for every envelope."""

    __slots__ = ("_result", "_exception", "_done")

    def __init__(self) -> None:
        self._result: Any = None
        self._exception: BaseException | None = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any) -> None:
        self._result, self._done = result, True

    def set_exception(self, exception: BaseException) -> None:
        self._exception, self._done = exception, True

    def exception(self) -> BaseException | None:
        return self._exception

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result


def prepare(obj: Any, *, slot: bool = False, parsed: bool = False) -> Submission:
    """Structural checks that need no state; raises `RuleViolation("envelope.malformed", ...)`. With `slot`, the
    outcome is kept in a `_Slot` rather than a `Future` (for `submit_many`, which nobody waits on). `parsed`: `obj`
    is what `verification.canonical.parse_json` returned (the HTTP API's bodies): see `Envelope.from_json`."""
    try:
        envelope = Envelope.from_json(obj, parsed=parsed, fast=fast_jcs_parsed if parsed else fast_jcs)
    except EnvelopeError as exc:
        raise RuleViolation("envelope.malformed", exc.field, str(exc)) from None
    payload = parse_data(envelope.body["type"], envelope.body["data"])
    if envelope.body["type"] == "tags_issued":
        try:
            issued_tags(envelope.body["data"])
        except EnvelopeError as exc:
            raise RuleViolation("envelope.malformed", exc.field, exc.message) from None
    canonical = envelope_bytes(envelope)  # from the body bytes `from_json` encoded while checking the subset
    if slot:
        return Submission(envelope, canonical, sha256_hex(canonical), payload, _Slot())  # type: ignore[arg-type]
    return Submission(envelope, canonical, sha256_hex(canonical), payload)


def stored_tags(body: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The DCB tags of an accepted event: (stored with the row, index only).

    Stored: the streams it joins, its id (`event:<uuid>`), `registry` for registry events and
    `risk:<site>` for an incident report (the index of a site's incidents). Index only:
    the tag streams a `tags_issued` event creates.
    """
    streams = [body["stream"], *(body.get("links") or {})]
    extra = ["registry"] if body["type"] in REGISTRY_EVENT_TYPES else []
    if body["type"] == "incident_reported":  # a site's incidents are found by `risk:<site>`
        extra.append(f"risk:{body['data']['site']}")
    created = [f"tag:{t}" for t in issued_tags(body["data"])] if body["type"] == "tags_issued" else []
    return (*streams, f"event:{body['id']}", *extra), tuple(created)


class LedgerWriter:
    def __init__(self, store: LogStore, *, clock: Callable[[], datetime] = utcnow, max_batch: int = 1000):
        self.store = store
        self.clock = clock
        self.max_batch = max_batch
        self._registry = Registry()
        self._registry_position = 0
        self._memory = WriterMemory()
        self._queue: queue.Queue[Submission | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._batch_lock = threading.Lock()
        self._recording = False
        self._recorded_at = float("-inf")
        self.on_batch: Callable[[int, float], None] | None = None
        """Called by the writer thread after each write transaction with its size and duration (api/metrics.py)."""

    # -- public ---------------------------------------------------------------------------------

    def submit(self, obj: Any) -> Receipt:
        """Admit one envelope (JSON object) or raise `RuleViolation`. Blocks until durable."""
        return self.submit_async(obj).result()

    def submit_async(self, obj: Any, *, parsed: bool = False) -> Future[Receipt]:
        """Queue one envelope for the writer thread; the future resolves once it is durable. `parsed`: `obj` is
        what `verification.canonical.parse_json` returned, unchanged (`prepare`)."""
        submission = prepare(obj, parsed=parsed)
        self._ensure_thread()
        self._queue.put(submission)
        return submission.future

    def submit_many(self, objs: Sequence[Any]) -> list[Receipt | RuleViolation]:
        """Admit envelopes in order, in as few transactions as possible (for imports and the demo)."""
        results: list[Receipt | RuleViolation | None] = [None] * len(objs)
        ready: list[tuple[int, Submission]] = []
        for i, obj in enumerate(objs):
            try:
                ready.append((i, prepare(obj, slot=True)))
            except RuleViolation as violation:
                results[i] = violation
        for start in range(0, len(ready), self.max_batch):
            chunk = ready[start : start + self.max_batch]
            self._run_batch([s for _, s in chunk])
            for i, submission in chunk:
                exc = submission.future.exception()
                if isinstance(exc, RuleViolation):
                    results[i] = exc
                elif exc is not None:
                    raise exc
                else:
                    results[i] = submission.future.result()
        return results  # type: ignore[return-value]

    def idle_seconds(self) -> float:
        """0 while envelopes are waiting or being recorded, else the time since the last batch ended (readers
        give way to a writer that is busy or was just now: api/read_limit.py)."""
        if self._recording or not self._queue.empty():
            return 0.0
        return time.monotonic() - self._recorded_at

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    # -- the writer thread ----------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="ledger-writer", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._recording = True
            started = time.perf_counter()
            try:
                self._run_batch(batch)
            finally:
                self._recorded_at = time.monotonic()
                self._recording = False
            if self.on_batch is not None:
                try:
                    self.on_batch(len(batch), time.perf_counter() - started)
                except Exception:  # noqa: BLE001 - an observer must never stop the writer
                    logging.getLogger("tagledger.writer").exception("the batch observer failed")

    def _run_batch(self, batch: list[Submission]) -> None:
        outcomes: list[Receipt | RuleViolation] = []
        try:
            accepted: list[StoredEvent] = []
            with self._batch_lock, self.store.write_session() as session:
                outcomes, accepted, registry_position, refused, size, last_time = self._admit(session, batch)
                session.insert(accepted)
                if refused:  # evidence of reused tags (domain.flags); never fails the batch
                    session.keep_rejected(refused)
        except CommitOutcomeUnknown as exc:  # judged, but did the COMMIT land? Look in the log.
            self._forget_registry()
            log.error("commit of %d envelope(s) failed: %s", len(accepted), short(exc))
            self._answer_after_failed_commit(batch, outcomes)
            return
        except BaseException as exc:  # nothing was committed: nobody is told "accepted"
            self._forget_registry()
            if isinstance(exc, Exception) and not isinstance(exc, PersistenceError) and len(batch) > 1:
                # An unexpected error caused by one envelope must not fail the others: judge each alone.
                for submission in batch:
                    self._run_batch([submission])
                return
            if isinstance(exc, PersistenceError):
                log.error("store failed before commit, %d envelope(s) not written: %s", len(batch), short(exc))
            for submission in batch:
                if not submission.future.done():
                    submission.future.set_exception(write_outcomes.not_written()
                                                    if isinstance(exc, PersistenceError) else exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._registry_position = registry_position
        self._memory.committed(size + len(accepted), last_time)
        for submission, outcome in zip(batch, outcomes):
            if isinstance(outcome, RuleViolation):
                submission.future.set_exception(outcome)
            else:
                submission.future.set_result(outcome)

    def _forget_registry(self) -> None:
        self._registry = Registry()
        self._registry_position = 0
        self._memory.forget()

    def _answer_after_failed_commit(self, batch: list[Submission], outcomes: list[Receipt | RuleViolation]) -> None:
        """Answer a batch whose COMMIT failed: refusals and earlier duplicates stand; each accepted envelope is
        a receipt if the log now holds it, else "not written", or "outcome unknown" if the log cannot be read."""
        written = [s.body["id"] for s, o in zip(batch, outcomes) if isinstance(o, Receipt) and not o.duplicate]
        found = write_outcomes.resolve(self.store, written) if written else {}
        for submission, outcome in zip(batch, outcomes):
            if isinstance(outcome, RuleViolation):
                submission.future.set_exception(outcome)
            elif outcome.duplicate:  # in the log before this transaction
                submission.future.set_result(outcome)
            elif found is None:
                submission.future.set_exception(write_outcomes.unknown())
            elif submission.body["id"] in found:
                entry = read_entry(found[submission.body["id"]])
                if entry.hash == submission.hash:
                    submission.future.set_result(Receipt(entry.body["id"], entry.seq, entry.received, entry.hash))
                else:  # another envelope with this id was recorded since: this one was not
                    submission.future.set_exception(write_outcomes.not_committed())
            else:
                submission.future.set_exception(write_outcomes.not_committed())

    # -- admission ------------------------------------------------------------------------------

    def _admit(
        self, session: WriteSession, batch: list[Submission]
    ) -> tuple[list[Receipt | RuleViolation], list[StoredEvent], int, list[tuple[str, str, str, int, str, bytes]],
               int, datetime | None]:
        """Judge `batch` in order; also returns the log's size before it and its last entry's time after it."""
        size = session.size()
        kept = self._memory.valid_at(size)  # nobody else wrote since this writer's last commit
        registry, registry_position = self._registry, self._registry_position
        if not kept:  # else the registry already holds every registry event of the log
            for stored in session.read_tagged(["registry"], after=registry_position):
                entry = read_entry(stored.data)
                registry.apply(entry.body, entry.hash, entry.seq)
                registry_position = stored.position

        known = [read_entry(s.data) for s in session.read_tagged([f"event:{s.body['id']}" for s in batch])]
        by_id = {e.body["id"]: Receipt(e.body["id"], e.seq, e.received, e.hash) for e in known}

        wanted: set[str] = set()
        for submission in batch:
            wanted.update(touched_tags(submission.body))
            if submission.body["type"] == "tags_issued":
                wanted.update(issued_tags(submission.body["data"]))
        tags = self._memory.tags  # the states kept from earlier transactions; this batch's events fold into it
        missing = wanted.difference(tags)
        if missing:  # folded apart: an event of a missing tag's history may also touch a kept one
            read: dict[str, custody.TagState] = {}
            for stored in session.read_tagged([f"tag:{t}" for t in missing]):
                entry = read_entry(stored.data)
                custody.apply(read, entry.body, entry.hash, entry.seq, only=missing)
            tags.update(read)

        risk = RiskBook()
        risk_streams = {s for s in map(touched_risk_stream, (sub.body for sub in batch)) if s is not None}
        if risk_streams:
            for stored in session.read_tagged(sorted(risk_streams)):
                entry = read_entry(stored.data)
                risk.apply(entry.body, entry.hash, entry.seq)

        last_time = self._memory.last_time if kept else None
        if size and last_time is None:
            last_time = parse_time(read_entry(session.read_range(size - 1, size)[0].data).received)
        now = self.clock() if last_time is None else max(self.clock(), last_time)
        received = format_time(now)

        outcomes: list[Receipt | RuleViolation] = []
        accepted: list[StoredEvent] = []
        refused: list[tuple[str, str, str, int, str, bytes]] = []
        for submission in batch:
            body = submission.body
            earlier = by_id.get(body["id"])
            if earlier is not None:
                outcomes.append(self._resubmission(earlier, submission))
                continue
            signed = False
            try:
                self._check_signature(submission, registry)
                signed = True
                check(body, registry=registry, tags=tags, now=now, payload=submission.payload, risk=risk)
            except RuleViolation as violation:
                outcomes.append(violation)
                # a tag used after its end, signed with a registered key of its actor: kept as evidence
                tag = attempt_tag(body, violation.rule, violation.field, tags) if signed else None
                if tag is not None:
                    refused.append((tag, violation.rule, received, size + len(accepted), submission.hash,
                                    submission.canonical))
                continue
            seq = size + len(accepted)
            raw = build_entry(submission.canonical, seq, received)
            accepted.append(StoredEvent(seq + 1, body["type"], raw, *stored_tags(body)))
            registry.apply(body, submission.hash, seq)
            custody.apply(tags, body, submission.hash, seq)
            risk.apply(body, submission.hash, seq)
            if body["type"] in REGISTRY_EVENT_TYPES:
                registry_position = seq + 1
            receipt = Receipt(body["id"], seq, received, submission.hash)
            by_id[body["id"]] = receipt
            outcomes.append(receipt)
        if accepted:
            last_time = parse_time(received)
        return outcomes, accepted, registry_position, refused, size, last_time

    @staticmethod
    def _resubmission(earlier: Receipt, submission: Submission) -> Receipt | RuleViolation:
        if earlier.hash == submission.hash:
            return Receipt(earlier.event_id, earlier.seq, earlier.received, earlier.hash, duplicate=True)
        return RuleViolation(
            "event.duplicate_id",
            "/body/id",
            f"event id {earlier.event_id} is already used by entry #{earlier.seq} with other content",
            {"seq": earlier.seq, "hash": earlier.hash},
        )

    @staticmethod
    def _check_signature(submission: Submission, registry: Registry) -> None:
        body = submission.body
        if body["type"] == "ledger_created":
            public_key = body["data"]["root_key"]
        else:
            if body["actor"] not in registry.orgs:
                raise RuleViolation("actor.unknown", "/body/actor", f"no organisation {body['actor']!r}")
            key = registry.key_of(body["actor"], body["key"])
            if key is None:
                raise RuleViolation("key.unknown", "/body/key", f"{body['key']} is not a key of {body['actor']}")
            public_key = key.public_key
        if not verify_envelope(_raw_key(public_key), submission.envelope):
            raise RuleViolation("signature.invalid", "/sig", "the signature does not verify with the named key")
