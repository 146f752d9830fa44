"""Checking the refused attempts a ledger publishes against the auditor's own replay -- docs/protocol.md 9.1.

A ledger keeps the signed envelopes it refused because their tag's life was over, and counts them as evidence of
reuse only when their actor has standing (:mod:`verification.standing`). It publishes every one, with the
standing it found (``GET /v1/log/refused-attempts``; ``refused-attempts.ndjson`` in a bundle). The auditor checks
each against the log it replayed:

1. the envelope is well formed and its hash is the one published (``attempt.hash``);
2. its actor was registered and its key was the actor's, added before the attempt and not revoked before it
   (``log_size``: the log held that many entries when it was refused), and the signature verifies: the ledger keeps
   nothing else;
3. the tag it names had ended before the attempt (consumed, voided, merged or split; voided for
   ``tag.already_attached``): the refusal's reason is true;
4. the standing the ledger published is the one the replay finds: the custody parties named by the tag's events
   before ``log_size``, else the actor's role.

:class:`AttemptWatch` collects, while the replay runs, what steps 3 and 4 need for the attempted tags only (their
parties and the entry that ended each), so memory grows with the attempts, not with the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from verification.canonical import jcs
from verification.encoding import sha256_hex
from verification.entry_checks import CheckedEntry
from verification.envelope import Envelope, EnvelopeError, verify_signature
from verification.standing import parties_named, standing

__all__ = ["AttemptProblem", "AttemptWatch", "PublishedAttempt", "check_attempts"]

ENDING = {"tag_consumed": "consumed", "tag_voided": "voided", "lot_split": "split"}
RULES = frozenset({"tag.finished", "tag.already_attached"})


class AttemptProblem(Exception):
    """A published refused attempt that the replayed log contradicts."""


@dataclass(frozen=True)
class PublishedAttempt:
    """One refused attempt as the ledger published it."""

    number: int
    tag: str
    rule: str
    log_size: int
    hash: str
    envelope: Any
    standing: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PublishedAttempt:
        try:
            return cls(int(doc["number"]), str(doc["tag"]), str(doc["rule"]), int(doc["log_size"]), str(doc["hash"]),
                       doc["envelope"], doc["standing"])
        except (KeyError, TypeError, ValueError) as error:
            raise AttemptProblem(f"a published refused attempt is malformed: {error!r}") from None


class AttemptWatch:
    """Fed every replayed entry (``__call__``): for each watched tag, when each custody party was first named
    and the entry that ended it (with how)."""

    def __init__(self, tags: Iterable[str]) -> None:
        self.parties: dict[str, dict[str, int]] = {tag: {} for tag in tags}
        self.ended: dict[str, tuple[int, str]] = {}

    def __call__(self, entry: CheckedEntry, seq: int) -> None:
        streams = [entry.stream, *(stream for stream, _ in entry.links)]
        watched = [s[4:] for s in streams if s.startswith("tag:") and s[4:] in self.parties]
        if not watched:
            return
        named = parties_named(entry.type, entry.actor, entry.data)
        for tag in watched:
            known = self.parties[tag]
            for party in named:
                known.setdefault(party, seq)
            if tag not in self.ended:
                how = ENDING.get(entry.type) if tag == entry.stream[4:] else None
                if entry.type == "lot_formed" and tag != entry.stream[4:]:
                    how = "merged"
                if how is not None:
                    self.ended[tag] = (seq, how)


def check_attempts(attempts: Iterable[PublishedAttempt], watch: AttemptWatch, registry: Any) -> tuple[int, int]:
    """Check every published attempt against the replay (``watch`` fed with the whole log, ``registry`` the
    replay's key registry at its end). Returns (counted, not counted); raises :class:`AttemptProblem`."""
    counted = uncounted = 0
    for attempt in attempts:
        where = f"refused attempt #{attempt.number} (tag {attempt.tag}, {attempt.hash[:16]}...)"
        try:
            envelope = Envelope.from_json(attempt.envelope)
        except EnvelopeError as error:
            raise AttemptProblem(f"{where}: the envelope is malformed: {error}") from None
        if sha256_hex(jcs(attempt.envelope)) != attempt.hash:
            raise AttemptProblem(f"{where}: the envelope's hash is not the one published")
        body = envelope.body
        _check_signed(where, attempt, envelope, body, registry)
        _check_ended(where, attempt, watch)
        parties = [p for p, seq in watch.parties.get(attempt.tag, {}).items() if seq < attempt.log_size]
        found = standing(body["actor"], registry.role_of(body["actor"]), parties)
        if found != attempt.standing:
            raise AttemptProblem(f"{where}: the ledger says the standing of {body['actor']} is {attempt.standing!r}; "
                                 f"the replayed log says {found!r}")
        if found is None:
            uncounted += 1
        else:
            counted += 1
    return counted, uncounted


def _check_signed(where: str, attempt: PublishedAttempt, envelope: Envelope, body: dict[str, Any],
                  registry: Any) -> None:
    record = registry.keys.get(body["key"])
    if body["actor"] not in registry.orgs or record is None or record.org != body["actor"]:
        raise AttemptProblem(f"{where}: {body['key']} is not a registered key of {body['actor']}")
    if record.added_seq >= attempt.log_size:
        raise AttemptProblem(f"{where}: key {body['key']} was added by entry #{record.added_seq}, after the attempt")
    if record.revoked_seq is not None and record.revoked_seq < attempt.log_size:
        raise AttemptProblem(f"{where}: key {body['key']} was revoked by entry #{record.revoked_seq}, before the "
                             "attempt; the ledger keeps no envelope signed by a revoked key")
    if not verify_signature(record.public_key, envelope):
        raise AttemptProblem(f"{where}: the signature does not verify with key {body['key']}")


def _check_ended(where: str, attempt: PublishedAttempt, watch: AttemptWatch) -> None:
    if attempt.rule not in RULES:
        raise AttemptProblem(f"{where}: {attempt.rule} is not a rule whose refusals are kept")
    ended = watch.ended.get(attempt.tag)
    if ended is None or ended[0] >= attempt.log_size:
        raise AttemptProblem(f"{where}: tag {attempt.tag} had not ended when the log held {attempt.log_size} "
                             f"entries, so {attempt.rule} could not refuse it")
    if attempt.rule == "tag.already_attached" and ended[1] != "voided":
        raise AttemptProblem(f"{where}: {attempt.rule} is kept only for a voided tag; {attempt.tag} was {ended[1]}")
