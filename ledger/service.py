"""The ledger as one object: open a store, admit envelopes, read verified histories.

`Ledger` is what the HTTP layer, the CLI and the demo use; it owns the store, the writer and a read-side
copy of the key registry that it keeps up to date from the log.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from domain import custody
from domain.registry import Registry, StreamHead
from ledger.entries import Entry, read_entry
from ledger.projection import CustodyProjection, ProjectionFollower
from ledger.store import LogStore, open_store
from ledger.writer import LedgerWriter, Receipt
from verification.encoding import b64url_decode
from verification.envelope import Envelope, verify_signature


@dataclass(frozen=True)
class TagView:
    """A tag's history and state, checked by the server (and checkable by anyone from `events`)."""

    tag: str
    state: custody.TagState
    entries: list[Entry]
    problems: list[str]
    origins: list[dict[str, Any]]


class Ledger:
    def __init__(self, store: LogStore, writer: LedgerWriter | None = None):
        self.store = store
        self.writer = writer or LedgerWriter(store)
        self._registry = Registry()
        self._registry_position = 0
        self._registry_lock = threading.Lock()
        self.projection: CustodyProjection | None = None
        self._follower: ProjectionFollower | None = None

    def start_projection(self, *, follow: bool = True) -> CustodyProjection:
        """Open the custody projection and, with `follow`, keep it up to date in a background thread.

        `follow=False` only reads it: `tagledger serve` runs the one follower in its supervising process
        and opens the projection this way in each HTTP worker process.
        """
        if self.projection is None:
            self.projection = CustodyProjection(self.store)
        if follow and self._follower is None:
            self._follower = ProjectionFollower(self.projection)
            self._follower.start()
        return self.projection

    @classmethod
    def open(cls, url: str) -> Ledger:
        return cls(open_store(url))

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
        self.writer.close()
        self.store.close()

    # -- writing --------------------------------------------------------------------------------

    def submit(self, envelope: Any) -> Receipt:
        return self.writer.submit(envelope)

    def submit_many(self, envelopes: list[Any]):  # noqa: ANN201 - see LedgerWriter.submit_many
        return self.writer.submit_many(envelopes)

    # -- the registry ---------------------------------------------------------------------------

    def registry(self) -> Registry:
        """The key registry as of the end of the log (folded incrementally)."""
        with self._registry_lock:
            for stored in self.store.read_tagged(["registry"], after=self._registry_position):
                entry = read_entry(stored.data)
                self._registry.apply(entry.body, entry.hash, entry.seq)
                self._registry_position = stored.position
            return self._registry

    def head(self, stream: str) -> StreamHead | None:
        if stream.startswith("tag:"):
            view = self._fold_tags([stream.removeprefix("tag:")])
            state = view.get(stream.removeprefix("tag:"))
            return state.head if state else None
        return self.registry().head_of(stream)

    # -- reading tags ---------------------------------------------------------------------------

    def _fold_tags(self, tags: list[str]) -> dict[str, custody.TagState]:
        states: dict[str, custody.TagState] = {}
        wanted = set(tags)
        for stored in self.store.read_tagged([f"tag:{t}" for t in tags]):
            entry = read_entry(stored.data)
            custody.apply(states, entry.body, entry.hash, entry.seq, only=wanted)
        return states

    def tag(self, tag_id: str) -> TagView | None:
        """The tag's verified history, or None if it was never issued."""
        stored = self.store.read_tagged([f"tag:{tag_id}"])
        if not stored:
            return None
        entries = [read_entry(s.data) for s in stored]
        states: dict[str, custody.TagState] = {}
        for entry in entries:
            custody.apply(states, entry.body, entry.hash, entry.seq, only={tag_id})
        registry = self.registry()
        return TagView(
            tag=tag_id,
            state=states[tag_id],
            entries=entries,
            problems=check_history(tag_id, entries, registry),
            origins=self._origins(states[tag_id]),
        )

    def _origins(self, state: custody.TagState, limit: int = 10_000) -> list[dict[str, Any]]:
        """Where the ore in this tag was mined: its own attachment, or those of the tags it came from."""
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        frontier = [state]
        while frontier and len(found) < limit:
            upstream: list[str] = []
            for s in frontier:
                if s.tag in seen:
                    continue
                seen.add(s.tag)
                if s.origin is not None:
                    found.append({"tag": s.tag, **s.origin})
                upstream.extend(s.inputs)
                if s.parent:
                    upstream.append(s.parent)
            upstream = [t for t in dict.fromkeys(upstream) if t not in seen]
            frontier = list(self._fold_tags(upstream).values()) if upstream else []
        return sorted(found, key=lambda o: o["tag"])


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
        elif not verify_signature(b64url_decode(public_key), Envelope.from_json(entry.envelope)):
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
