"""The ledger as one object: open a store, admit envelopes, read verified histories.

`Ledger` is what the HTTP layer, the CLI and the demo use; it owns the store, the writer and a read-side
copy of the key registry that it keeps up to date from the log.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from domain import custody
from domain import flags as flag_rules
from domain.registry import Registry, StreamHead
from domain.risk import RiskBook
from ledger.checkpoints import CheckpointPublisher, CheckpointSigner, LogIdentity
from ledger.consistency import check_entries
from ledger.entries import Entry, read_entry
from ledger.fast_signatures import verify_envelope
from ledger.flags import FlagsProjection, attempts_of_rows, flags_of_rows, rejected_attempts_page, rejected_attempts_rows
from ledger.keys import KeyPair
from ledger.projection import CustodyProjection, ProjectionFollower
from ledger.risk_context import custody_end, tag_risk
from ledger.store import LogStore, open_store
from ledger.store.base import StoredCheckpoint, StoredDetails, StoredEvent, StoredEvidence, ViewRead
from ledger.writer import LedgerWriter, Receipt
from verification.canonical import jcs
from verification.encoding import b64url_decode, format_time, parse_time, sha256_hex
from verification.envelope import Envelope
from verification.sealed_details import DetailsError, commitment


@dataclass(frozen=True)
class TagView:
    """A tag's history and state, checked by the server (and checkable by anyone from `events`)."""

    tag: str
    state: custody.TagState
    entries: list[Entry]
    problems: list[str]
    origins: list[dict[str, Any]]
    checkpoint: StoredCheckpoint | None = None
    """The latest signed checkpoint (or the one at `as_of`), against which `proofs` are made."""
    proofs: dict[int, list[bytes]] = field(default_factory=dict)
    """Inclusion proof of each entry (by seq) that the checkpoint covers."""
    as_of: int | None = None
    flags: list[dict[str, Any]] = field(default_factory=list)
    """Fraud flags (`domain.flags.tag_flags`): the tag's own, then those inherited from the tags it came from."""
    flags_position: int | None = None
    """How many log entries the flags projection had folded when `flags` was read (None: not open here)."""
    refused_attempts: list[flag_rules.JudgedAttempt] = field(default_factory=list)
    """The signed envelopes refused because this tag's life was over, each with the standing of its actor
    (`domain.flags.judge_attempts`): only those with standing count in the `tag.reuse` flag."""
    risk: dict[str, Any] | None = None
    """The risk context of the tag's origin sites (`ledger.risk_context`, protocol 16.6)."""
    upstream: list[str] = field(default_factory=list)
    """Every tag the ore came through, nearest first (inputs of lots, parents of split tags), not this one."""
    registry: Registry | None = field(default=None, compare=False, repr=False)
    """The key registry the view was checked with (read in the same snapshot): what `tag_document` names."""


class Ledger:
    def __init__(self, store: LogStore, writer: LedgerWriter | None = None):
        self.store = store
        self.writer = writer or LedgerWriter(store)
        self._registry = Registry()
        self._registry_position = 0
        self._registry_lock = threading.Lock()
        self.projection: CustodyProjection | None = None
        self._follower: ProjectionFollower | None = None
        self.flags: FlagsProjection | None = None
        self._flags_follower: ProjectionFollower | None = None
        self.signer: CheckpointSigner | None = None
        self._publisher: CheckpointPublisher | None = None

    def start_projection(self, *, follow: bool = True) -> CustodyProjection:
        """Open the custody and flags projections and, with `follow`, keep them up to date in background threads.

        `follow=False` only reads them: `tagledger serve` runs the followers in its supervising process
        and opens the projections this way in each HTTP worker process.
        """
        if self.projection is None:
            self.projection = CustodyProjection(self.store)
        if self.flags is None:
            self.flags = FlagsProjection(self.store)
        if follow and self._follower is None:
            self._follower = ProjectionFollower(self.projection)
            self._follower.start()
        if follow and self._flags_follower is None:
            self._flags_follower = ProjectionFollower(self.flags)
            self._flags_follower.start()
        return self.projection

    @classmethod
    def open(cls, url: str) -> Ledger:
        return cls(open_store(url))

    # -- the verifiable log ----------------------------------------------------------------------

    def identity(self) -> LogIdentity:
        """The log's name and public key, as the genesis entry declares them."""
        return self._identity_of(self.registry())

    @staticmethod
    def _identity_of(registry: Registry) -> LogIdentity:
        params = registry.ledger
        if params is None:
            raise LookupError("this ledger has no genesis entry yet")
        return LogIdentity(params.log_key_name, b64url_decode(params.log_public_key))

    def start_checkpoints(self, key: KeyPair, *, publish_in_background: bool = True) -> CheckpointSigner:
        """Sign checkpoints with the log key (which must be the one the genesis entry names).

        With `publish_in_background`, a thread publishes one every second while entries arrive (and a last
        one on `close`); otherwise call `publish_checkpoint`.
        """
        identity = self.identity()
        if key.public_raw != identity.public_key_raw:
            raise ValueError(f"this is not the log key {identity.origin!r} that this ledger's genesis names")
        if self.signer is None:
            self.signer = CheckpointSigner(self.store, identity.origin, key)
            self.signer.publish()
        if publish_in_background and self._publisher is None:
            self._publisher = CheckpointPublisher(self.signer)
            self._publisher.start()
        return self.signer

    def publish_checkpoint(self) -> StoredCheckpoint | None:
        """Sign a checkpoint now if the log grew (needs `start_checkpoints`); return the latest checkpoint."""
        if self.signer is None:
            raise RuntimeError("this process does not hold the log key (see Ledger.start_checkpoints)")
        return self.signer.publish()

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()
        if self._follower is not None:
            self._follower.stop()
        if self._flags_follower is not None:
            self._flags_follower.stop()
        self.writer.close()
        self.store.close()

    # -- writing --------------------------------------------------------------------------------

    def submit(self, envelope: Any) -> Receipt:
        return self.writer.submit(envelope)

    def submit_many(self, envelopes: list[Any]):  # noqa: ANN201 - see LedgerWriter.submit_many
        return self.writer.submit_many(envelopes)

    # -- the registry ---------------------------------------------------------------------------

    def registry(self) -> Registry:
        """The key registry as of the end of the log (folded incrementally).

        The look for new registry entries runs outside any lock (requests in parallel do not queue behind one
        another's query, issue 13); only folding new ones in takes the lock, and each entry is folded once, in
        log order, whichever request found it first."""
        found = self.store.read_tagged(["registry"], after=self._registry_position)
        if found:
            with self._registry_lock:
                self._fold_registry(found)
        return self._registry

    def _fold_registry(self, found: list[StoredEvent]) -> Registry:
        """Fold registry events read after `_registry_position` (under `_registry_lock`); events another thread
        folded meanwhile are skipped."""
        for stored in found:
            if stored.position <= self._registry_position:
                continue
            entry = read_entry(stored.data)
            self._registry.apply(entry.body, entry.hash, entry.seq)
            self._registry_position = stored.position
        return self._registry

    def _read_view(self, tags: list[str]) -> tuple[list[StoredEvent], Registry, ViewRead]:
        """The events of `tags`, the registry brought up to date, the latest checkpoint and the flags projection's
        position, in one read (one query on PostgreSQL).

        The read runs outside the registry's lock, as in `registry`: views in parallel do not queue behind one
        another's query. A view may then carry a registry a few entries newer than its read (another request
        folded them meanwhile): never older, so every key that signed one of its events is in it."""
        read = self.store.read_view([(tags, 0), (["registry"], self._registry_position)],
                                    tracking=self.flags.name if self.flags is not None else None,
                                    own=[t.removeprefix("tag:") for t in tags])
        with self._registry_lock:
            return read.groups[0], self._fold_registry(read.groups[1]), read

    def head(self, stream: str) -> StreamHead | None:
        if stream.startswith("tag:"):
            view = self._fold_tags([stream.removeprefix("tag:")])
            state = view.get(stream.removeprefix("tag:"))
            return state.head if state else None
        if stream.startswith(("incident:", "site:")):
            return self.risk_book([stream]).head_of(stream)
        return self.registry().head_of(stream)

    # -- reading incidents and site monitoring (protocol section 16) ------------------------------

    def risk_book(self, streams: list[str], as_of: int | None = None) -> RiskBook:
        """The `incident:` and `site:` streams named, folded (as of log size `as_of`, if given)."""
        book = RiskBook()
        if streams:
            for stored in self.store.read_tagged(sorted(set(streams))):
                if as_of is not None and stored.seq >= as_of:
                    break
                entry = read_entry(stored.data)
                book.apply(entry.body, entry.hash, entry.seq)
        return book

    def site_risk_book(self, site: str, as_of: int | None = None) -> RiskBook:
        """Every incident of `site` and its monitoring record (as of log size `as_of`, if given)."""
        book = RiskBook()  # an incident's stream begins with its report: its events all follow the report's
        for stored in self.store.read_site_streams(site):
            if as_of is not None and stored.seq >= as_of:
                break
            entry = read_entry(stored.data)
            book.apply(entry.body, entry.hash, entry.seq)
        return book

    # -- reading tags ---------------------------------------------------------------------------

    def _fold_tags(self, tags: list[str], as_of: int | None = None,
                   prefetched: _Prefetched | None = None) -> dict[str, custody.TagState]:
        """The tags' states; with `prefetched`, their flags and refused attempts are read in the same query
        (PostgreSQL, `LogStore.read_view`) and added to it."""
        states: dict[str, custody.TagState] = {}
        wanted = set(tags)
        if prefetched is not None:
            read = self.store.read_view([([f"tag:{t}" for t in tags], 0)],
                                        tracking=self.flags.name if self.flags is not None else None, own=tags,
                                        nodes=prefetched.node_ids)
            prefetched.node_ids = []
            prefetched.add(tags, read)
            prefetched.nodes.update(read.nodes)
            found = read.groups[0]
        else:
            found = self.store.read_tagged([f"tag:{t}" for t in tags])
        for stored in found:
            if as_of is not None and stored.seq >= as_of:
                break
            entry = read_entry(stored.data)
            custody.apply(states, entry.body, entry.hash, entry.seq, only=wanted)
        return states

    def tag(self, tag_id: str, *, as_of: int | None = None, context: bool = True) -> TagView | None:
        """The tag's verified history, or None if it was never issued (before log size `as_of`, if given).

        With `as_of` = N, the tag as it stood when the log held its first N entries (seq < N), with proofs
        against the checkpoint of size N if one was signed, else the latest one.
        """
        with self.store.reading():  # one snapshot, one transaction on PostgreSQL (issue 13)
            return self._tag(tag_id, as_of=as_of, context=context)

    def _tag(self, tag_id: str, *, as_of: int | None, context: bool) -> TagView | None:
        stored, registry, first = self._read_view([f"tag:{tag_id}"])
        if as_of is not None:
            stored = [s for s in stored if s.seq < as_of]
        if not stored:
            return None
        entries = [read_entry(s.data) for s in stored]
        states: dict[str, custody.TagState] = {}
        for entry in entries:
            custody.apply(states, entry.body, entry.hash, entry.seq, only={tag_id})
        checkpoint = (self.store.checkpoint(as_of) if as_of is not None else None) or first.checkpoint
        tree = self.store.tree  # type: ignore[attr-defined]
        covered = [e.seq for e in entries if checkpoint is not None and e.seq < checkpoint.size]
        plans, node_ids = tree.inclusion_plans(covered, checkpoint.size) if covered else ([], [])
        upstream: dict[str, custody.TagState] = {}
        prefetched = _Prefetched(node_ids=node_ids)  # a lot's proofs are read with the tags that went into it
        prefetched.add([tag_id], first)
        origins = self._origins(states[tag_id], as_of=as_of, visited=upstream, prefetched=prefetched)
        if prefetched.node_ids:  # not read with anything else (a bag): on their own
            prefetched.nodes.update(self.store.read_nodes(prefetched.node_ids))
        proofs: dict[int, list[bytes]] = dict(zip(covered, tree.resolve_plans(plans, prefetched.nodes)))
        flags: list[dict[str, Any]] = []
        refused: list[flag_rules.JudgedAttempt] = []
        flags_position = risk = None
        if context:  # the fraud flags and the risk context of the origin sites
            flags, flags_position, refused = self._flags(states[tag_id], upstream, as_of, registry, first.tracked,
                                                         prefetched)
            at = self.view_time(as_of)
            risk = tag_risk(origins, custody_end(states[tag_id], entries, at), at,
                            lambda site: self.site_risk_book(site, as_of),
                            lambda org: registry.orgs[org].name if org in registry.orgs else None)
        # never vouch for an entry the signed log does not contain (one altered in the store, issue 11.8)
        in_log = check_entries(self.store, [(e.seq, e.raw) for e in entries], checkpoint,
                               self._identity_of(registry).verifier, proofs=proofs)
        return TagView(
            tag=tag_id,
            state=states[tag_id],
            entries=entries,
            problems=check_history(tag_id, entries, registry) + in_log,
            origins=origins,
            checkpoint=checkpoint,
            proofs=proofs,
            as_of=as_of,
            flags=flags,
            flags_position=flags_position,
            refused_attempts=refused,
            risk=risk,
            upstream=[t for t in upstream if t != tag_id],
            registry=registry,
        )

    def view_time(self, as_of: int | None = None) -> datetime:
        """The time T a view is made for (protocol 16.3): now, or the `received` of entry `as_of` - 1."""
        if as_of is not None and as_of > 0:
            last = self.store.read_range(as_of - 1, as_of)
            if last:
                return parse_time(read_entry(last[0].data).received)
        return datetime.now(timezone.utc)

    def _flags(self, state: custody.TagState, visited: dict[str, custody.TagState], as_of: int | None,
               registry: Registry, position: int | None = None, prefetched: _Prefetched | None = None,
               ) -> tuple[list[dict[str, Any]], int | None, list[flag_rules.JudgedAttempt]]:
        """The tag's fraud flags: its own and those of every tag upstream (`visited` by `_origins`), from the
        flags projection and the refused attempts kept by the writer; as of log size `as_of` if given. Also the
        tag's own refused attempts, judged: only those made with standing count (protocol 9.1)."""
        # the position first: the flags read after it are at least that recent, never older than it says
        # (`position` and `prefetched`: read with the tags' events, in the same snapshot as everything below; only
        # what they lack is read here)
        if position is None:
            position = self.flags.position() if self.flags is not None else None
        upstream = [s for tag, s in visited.items() if tag != state.tag]
        tags = [state.tag, *(s.tag for s in upstream)]
        known = prefetched or _Prefetched()
        raised = self.flags.flags_of([t for t in tags if t not in known.flags_of]) if self.flags is not None else {}
        if self.flags is not None:
            raised.update(flags_of_rows(r for r in known.flags if r["tag"] in tags))
        found = attempts_of_rows([*(r for r in known.attempts if r["tag"] in tags),
                                  *(a for a in rejected_attempts_rows(self.store, [t for t in tags
                                                                                  if t not in known.attempts_of]))])
        attempts: dict[str, list[flag_rules.Attempt]] = {}
        for attempt in found:
            if as_of is None or attempt.log_size <= as_of:
                attempts.setdefault(attempt.tag, []).append(attempt)
        # the end entries and the custody parties matter only to tags with refused attempts: most views read none
        ends = self.flags.ends_of(list(attempts)) if self.flags is not None and attempts else {}
        judged = {tag: flag_rules.judge_attempts(found, self._custody_parties(tag, as_of),
                                                 lambda org: _role_name(registry, org))
                  for tag, found in attempts.items()}

        def own(s: custody.TagState) -> list[flag_rules.Flag]:
            found = [f for f in (flag_rules.visible(f, as_of) for f in raised.get(s.tag, [])) if f is not None]
            counted = [j.attempt for j in judged.get(s.tag, []) if j.standing is not None]
            attempted = flag_rules.attempts_flag(counted, s, s.head.hash, ends.get(s.tag))
            return found + ([attempted] if attempted is not None else [])

        def relation(s: custody.TagState) -> str:
            if s.tag in state.inputs:
                return "a tag that went into this lot"
            if s.tag == state.parent:
                return "the lot this tag was split from"
            return "a tag upstream of this one"

        shown = flag_rules.tag_flags(state.tag, own(state), [(s.tag, relation(s), own(s)) for s in upstream])
        return shown, position, judged.get(state.tag, [])

    def refused_attempts(self, after: int = 0, limit: int = 1000) -> list[tuple[int, flag_rules.JudgedAttempt]]:
        """Every refused attempt kept by the writer, numbered, in the order refused, each judged for standing as
        of the log size when it was refused (protocol 9.1): what an auditor checks against its replay."""
        page = rejected_attempts_page(self.store, after, limit)
        registry = self.registry()
        judged = []
        for number, attempt in page:
            [one] = flag_rules.judge_attempts([attempt], self._custody_parties(attempt.tag, attempt.log_size),
                                              lambda org: _role_name(registry, org))
            judged.append((number, one))
        return judged

    def _custody_parties(self, tag: str, as_of: int | None) -> list[str]:
        """The organisations with custody standing on `tag` (`domain.flags.custody_parties` of its events)."""
        parties: list[str] = []
        for stored in self.store.read_tagged([f"tag:{tag}"]):
            if as_of is not None and stored.seq >= as_of:
                break
            flag_rules.add_parties(parties, flag_rules.custody_parties(read_entry(stored.data).body))
        return parties

    def _origins(self, state: custody.TagState, limit: int = 10_000, as_of: int | None = None,
                 visited: dict[str, custody.TagState] | None = None,
                 prefetched: _Prefetched | None = None) -> list[dict[str, Any]]:
        """Where the ore in this tag was mined: its own attachment, or those of the tags it came from (every
        state it reads is added to `visited`, this tag's first, then upstream, nearest first)."""
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        frontier = [state]
        while frontier and len(found) < limit:
            upstream: list[str] = []
            for s in frontier:
                if s.tag in seen:
                    continue
                seen.add(s.tag)
                if visited is not None:
                    visited[s.tag] = s
                if s.origin is not None:
                    found.append({"tag": s.tag, **s.origin})
                upstream.extend(s.inputs)
                if s.parent:
                    upstream.append(s.parent)
            upstream = [t for t in dict.fromkeys(upstream) if t not in seen]
            frontier = list(self._fold_tags(upstream, as_of, prefetched).values()) if upstream else []
        return sorted(found, key=lambda o: o["tag"])

    # -- sealed incident details (protocol section 16.2) -----------------------------------------

    def put_sealed_details(self, incident_id: str, details: Any) -> str:
        """Keep the sealed details of `incident_id` (outside the log, append-only) if their hash is the signed
        commitment of its `incident_reported`; return that hash. Idempotent. Raises `DetailsRefused`: 404
        `incident.unknown`, 400 `details.malformed`, 409 `details.mismatch`."""
        incident = self.risk_book([f"incident:{incident_id}"]).incidents.get(incident_id)
        if incident is None:
            raise DetailsRefused(404, "incident.unknown", f"no incident {incident_id} was ever reported")
        try:
            digest = commitment(details)
        except DetailsError as error:
            raise DetailsRefused(400, "details.malformed", str(error)) from None
        if digest != incident.details_sha256:
            raise DetailsRefused(409, "details.mismatch", f"these details hash to {digest}, but the report of "
                                 f"{incident_id} commits to {incident.details_sha256}", sha256=digest,
                                 expected=incident.details_sha256)
        stamp = format_time(datetime.now(timezone.utc))
        self.store.insert_sealed_details(StoredDetails(incident_id, digest, jcs(details), stamp))
        return digest

    def sealed_details(self, incident_id: str) -> dict[str, Any] | None:
        """The sealed details uploaded for `incident_id` (whose hash the stored row names), or None."""
        for row in self.store.read_sealed_details(incident_id):
            if sha256_hex(row.data) == row.sha256:
                return json.loads(row.data)
        return None


    # -- sealed evidence files (protocol section 16.2, since 1.10) ------------------------------

    def put_sealed_evidence(self, incident_id: str, sha256: str, media_type: str, data: bytes) -> bool:
        """Keep an evidence file of `incident_id` (outside the log, append-only) if a signed event of the incident
        names it: its bytes hash to `sha256`, with that `media_type`. True if this call stored it (idempotent).
        Raises `DetailsRefused`: 404 `incident.unknown`, 404 `evidence.unknown`, 409 `evidence.mismatch`,
        415 `evidence.media_type`."""
        incident = self.risk_book([f"incident:{incident_id}"]).incidents.get(incident_id)
        if incident is None:
            raise DetailsRefused(404, "incident.unknown", f"no incident {incident_id} was ever reported")
        named = incident.files.get(sha256)
        if named is None:
            raise DetailsRefused(404, "evidence.unknown", f"no signed event of {incident_id} names an evidence file "
                                 f"with SHA-256 {sha256}")
        digest = sha256_hex(data)
        if digest != sha256:
            raise DetailsRefused(409, "evidence.mismatch", f"these bytes hash to {digest}, not to {sha256}",
                                 sha256=digest, expected=sha256)
        if media_type != named:
            raise DetailsRefused(415, "evidence.media_type", f"the signed event names this file as {named}, not "
                                 f"{media_type}", expected=named)
        stamp = format_time(datetime.now(timezone.utc))
        return self.store.insert_sealed_evidence(StoredEvidence(incident_id, sha256, named, data, stamp))

    def sealed_evidence(self, incident_id: str, sha256: str) -> StoredEvidence | None:
        """An uploaded evidence file, if its bytes still hash to its name (else None: nothing false is served)."""
        found = self.store.sealed_evidence(incident_id, sha256)
        return found if found is not None and sha256_hex(found.data) == found.sha256 else None


@dataclass
class _Prefetched:
    """Flags and refused attempts of tags, read with their events (`LogStore.read_view`), for `Ledger._flags`:
    `flags_of` and `attempts_of` name the tags whose rows were read (a store that reads them apart reads none).
    Also the Merkle tree nodes of the view's proofs: `node_ids` are still to be read (with the next read of
    upstream tags, if there is one), `nodes` have been."""

    node_ids: list[int] = field(default_factory=list)
    nodes: dict[int, bytes] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    flags_of: set[str] = field(default_factory=set)
    attempts_of: set[str] = field(default_factory=set)

    def add(self, tags: list[str], read: ViewRead) -> None:
        if read.own_flags is not None:
            self.flags.extend(read.own_flags)
            self.flags_of.update(tags)
        if read.own_attempts is not None:
            self.attempts.extend(read.own_attempts)
            self.attempts_of.update(tags)


class DetailsRefused(Exception):
    """`Ledger.put_sealed_details` refused an upload: HTTP `status`, `rule`, `detail` (and `extra` members)."""

    def __init__(self, status: int, rule: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.rule, self.detail, self.extra = status, rule, detail, extra


def check_history(tag_id: str, entries: list[Entry], registry: Registry) -> list[str]:
    """Re-check a tag's history: every signature with the signer's registered key, every hash link.

    Returns a list of problems, empty when the history is intact.
    """
    problems: list[str] = []
    stream = f"tag:{tag_id}"
    previous: str | None = None
    for position, entry in enumerate(entries):
        body = entry.body
        if body["type"] == "ledger_created":
            public_key = body["data"]["root_key"]
        else:
            key = registry.keys.get(body["key"])
            public_key = key.public_key if key and key.org == body["actor"] else None
        if public_key is None:
            problems.append(f"entry #{entry.seq}: signer key {body['key']} is not a key of {body['actor']}")
        elif not verify_envelope(b64url_decode(public_key), Envelope.from_json(entry.envelope)):
            problems.append(f"entry #{entry.seq}: signature does not verify")
        if position == 0:
            if body["type"] != "tags_issued":
                problems.append(f"entry #{entry.seq}: the history does not start with the tag's issuance")
        else:
            declared = body["prev"] if body["stream"] == stream else (body.get("links") or {}).get(stream)
            if declared != previous:
                problems.append(f"entry #{entry.seq}: hash link to the previous event is broken")
        previous = entry.hash
    return problems


def _role_name(registry: Registry, org: str) -> str | None:
    role = registry.role_of(org)
    return None if role is None else str(role)
