"""The custody states of a replay in memory that does not grow with the log: a bounded cache over disk.

A replay must produce every tag's state (docs/protocol.md section 10: the custody digest covers all tags,
in ascending byte order of their ids) and must be able to read any tag again at any later entry (a custody
event, a ``tag_scanned``, a re-issue that is ``tag.already_issued``). Held as
:class:`~verification.custody_state.TagState` objects, that is ~700 bytes of memory per tag ever issued.
:class:`TagStates` is the replay's ``tag id -> TagState`` mapping with a constant amount of memory:

- **the cache**: an LRU of at most ``cache_tags`` (:data:`CACHE_TAGS`) states, the ones the replay reads
  and folds (``tags[tag]``, ``tags.get(tag)``, ``tags[tag] = state``);
- **the store**: every other tag's record, ``jcs(record)`` from
  :meth:`~verification.custody_state.TagState.canonical` -- the very bytes the custody digest hashes --
  in a table keyed by the tag id in a temporary SQLite file (:class:`verification.spill_db.SpillDatabase`),
  with the records not yet written gathered in a dict until they reach ``write_bytes``
  (:data:`WRITE_BYTES`) and written together, sorted, in one transaction.

A tag read while it is not in the cache is read back from the store (:meth:`TagState.from_record` gives the
very state it had, so the rules fail with the same rule, field and message as if it had stayed in memory)
and is in the cache again. **States leave the cache only between entries**, in :meth:`TagStates.settle`,
which the replay calls after folding each entry: then the tags that entry named and that are finished
(merged, split, consumed, voided: rarely touched again) are written out, and the least recently used ones
until the cache holds ``cache_tags``. So every state object the checks and the fold of one entry hold is
the tag's state until that entry is done, and the cache exceeds ``cache_tags`` by at most the tags one entry
names (a ``tags_issued`` issues at most 10,000). A state that leaves the cache is always written (the
replay folds nearly every tag it reads, so there is nothing to gain from tracking which changed).

``tag in tags`` and :meth:`TagStates.first_issued` (the replay's ``tag.already_issued`` check, for all the
tags of a ``tags_issued`` in a few queries) look in the cache, the records not yet written, then the
table. :meth:`TagStates.peek` reads a state without putting it in the cache (a stored one as a read-only
:class:`StoredTagState`). The digest, :meth:`TagStates.rows` and ``iter(tags)`` merge (``heapq.merge``)
the sorted cache, the sorted records not yet written and the table read in key order, keeping each tag's
newest copy: the same rows, byte for byte, in the same order, as every state kept in a dict.
:meth:`TagStates.counts` and ``len`` are kept up to date as states come and go.

**Memory**: ``cache_tags`` states (~750 bytes each with the cache's links: ~12 MB for the default), up to
``write_bytes`` of records waiting, SQLite's page cache (:data:`verification.spill_db.PAGE_CACHE_BYTES`):
the same at a thousand tags as at ten million. **Disk**: about ``len(tag) + len(record)`` plus the B-tree's
overhead per tag (~650 bytes for a bag), deleted with the replay.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from verification.custody_state import FINISHED, TagState
from verification.entry_checks import CheckedEntry
from verification.spill_db import SpillDatabase

__all__ = ["CACHE_TAGS", "StoredTagState", "TagStates", "WRITE_BYTES"]

CACHE_TAGS = 16_384
"""The most tag states kept in memory between entries."""
WRITE_BYTES = 1 << 20
"""Bytes of records (and tag ids) gathered in memory before they are written to disk together."""
_QUERY_TAGS = 500  # tag ids per `IN (...)` query (SQLite's limit on parameters may be as low as 999)
_SCHEMA = "CREATE TABLE tags (tag TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;"
_CACHED, _WAITING, _ON_DISK = 0, 1, 2  # in a merge, (tag, rank, record): a tag's lowest rank is its newest copy


class StoredTagState(TagState):
    """A tag's state read back from the store by :meth:`TagStates.peek`: a read-only copy."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"tag {self.tag}: this is a read-only copy of a stored state")


def _newest(rows: Iterable[tuple[str, int, bytes]]) -> Iterator[tuple[str, bytes]]:
    """(tag, record) of the first (lowest rank: newest) row of each tag, from rows sorted by (tag, rank)."""
    previous = None
    for tag, _rank, record in rows:
        if tag != previous:
            previous = tag
            yield tag, record


class TagStates(Mapping[str, TagState]):
    """``tag id -> TagState`` for every tag issued: a bounded cache over a store on disk (module docstring).

    ``tags[tag]`` and ``tags.get(tag)`` give a tag's state, reading it back into the cache if needed;
    :meth:`peek` reads without caching. ``tags[tag] = state`` adds a tag (one not issued yet: the replay
    checks ``tag.already_issued`` first). Call :meth:`settle` after each entry. Iteration, :meth:`rows`,
    :meth:`counts` and ``len`` cover every tag, in ascending order of the tag ids.
    """

    def __init__(self, *, cache_tags: int | None = None, write_bytes: int | None = None) -> None:
        cache_tags = CACHE_TAGS if cache_tags is None else cache_tags  # the module's values when this is made
        write_bytes = WRITE_BYTES if write_bytes is None else write_bytes
        if cache_tags < 0 or write_bytes < 1:
            raise ValueError("cache_tags must be at least 0 and write_bytes at least 1")
        self.cache: OrderedDict[str, TagState] = OrderedDict()  # least recently used first
        self._cache_tags = cache_tags
        self._waiting: dict[str, bytes] = {}  # tag -> record, out of the cache, not yet written
        self._waiting_bytes = 0
        self._write_bytes = write_bytes
        self._db = SpillDatabase("tags", _SCHEMA)
        self._stored = 0  # tags whose state is stored (waiting or on disk), not in the cache
        self._stored_counts: dict[str, int] = {}  # ... by status
        self.reads = 0  # states read back from the store into the cache
        self.writes = 0  # states that left the cache

    # -- reading and adding -----------------------------------------------------------------------------

    def __getitem__(self, tag: str) -> TagState:
        state = self.cache.get(tag)
        if state is not None:
            self.cache.move_to_end(tag)
            return state
        state = self._read_back(tag)
        if state is None:
            raise KeyError(tag)
        return state

    def get(self, tag: str, default: Any = None) -> Any:
        state = self.cache.get(tag)
        if state is not None:
            self.cache.move_to_end(tag)
            return state
        state = self._read_back(tag)
        return default if state is None else state

    def _record(self, tag: str) -> bytes | None:
        """The stored record of ``tag`` (waiting or on disk), or None."""
        record = self._waiting.get(tag)
        if record is not None or not self._db.opened:
            return record
        row = self._db.connection.execute("SELECT record FROM tags WHERE tag = ?", (tag,)).fetchone()
        return None if row is None else row[0]

    def _read_back(self, tag: str) -> TagState | None:
        if not isinstance(tag, str):
            return None
        record = self._record(tag)
        if record is None:
            return None
        state = TagState.from_record(record)
        waiting = self._waiting.pop(tag, None)  # the cache holds it now (a copy on disk stays, superseded)
        if waiting is not None:
            self._waiting_bytes -= len(tag) + len(waiting)
        self._stored -= 1
        self._uncount(state.status)
        self.cache[tag] = state
        self.reads += 1
        return state

    def peek(self, tag: str) -> TagState | None:
        """``tag``'s state without caching it (a stored one as a read-only copy); None if never issued."""
        state = self.cache.get(tag)
        if state is not None:
            return state
        if not isinstance(tag, str):
            return None
        record = self._record(tag)
        return None if record is None else StoredTagState.from_record(record)

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, str) and (tag in self.cache or self._record(tag) is not None)

    def first_issued(self, tags: Sequence[str]) -> int | None:
        """The index in ``tags`` of the first one that is already issued, or None (a few queries in all)."""
        cache, waiting = self.cache, self._waiting
        first = next((i for i, tag in enumerate(tags) if tag in cache or tag in waiting), None)
        unknown = tags if first is None else tags[:first]
        if not unknown or not self._db.opened:
            return first
        found: set[str] = set()
        connection = self._db.connection
        for start in range(0, len(unknown), _QUERY_TAGS):
            part = list(unknown[start:start + _QUERY_TAGS])
            query = f"SELECT tag FROM tags WHERE tag IN ({','.join('?' * len(part))})"
            found.update(row[0] for row in connection.execute(query, part))
        if not found:
            return first
        return next(i for i, tag in enumerate(unknown) if tag in found)

    def __setitem__(self, tag: str, state: TagState) -> None:
        # A tag not issued yet (the replay checked `tag.already_issued`), so not stored either.
        self.cache[tag] = state
        self.cache.move_to_end(tag)

    def __len__(self) -> int:
        return len(self.cache) + self._stored

    def __iter__(self) -> Iterator[str]:
        return (tag for tag, _ in self._merged(records=False))

    def __repr__(self) -> str:
        return f"TagStates(cached={len(self.cache)}, stored={self._stored})"

    # -- after each entry: out of the cache -------------------------------------------------------------

    def settle(self, entry: CheckedEntry) -> None:
        """After ``entry`` was folded: write out the finished tags it names (its stream and links), then the
        least recently used states until the cache holds ``cache_tags``."""
        cache = self.cache
        stream = entry.stream
        if stream.startswith("tag:"):
            self._write_if_finished(stream[4:])
        for name, _ in entry.links or ():
            if name.startswith("tag:"):
                self._write_if_finished(name[4:])
        while len(cache) > self._cache_tags:
            self._write(*cache.popitem(last=False))

    def _write_if_finished(self, tag: str) -> None:
        state = self.cache.get(tag)
        if state is not None and state.status in FINISHED:
            del self.cache[tag]
            self._write(tag, state)

    def _write(self, tag: str, state: TagState) -> None:
        record = state.canonical()
        old = self._waiting.get(tag)
        if old is not None:  # not in the replay (a tag read back leaves `_waiting`)
            self._waiting_bytes -= len(tag) + len(old)
        self._waiting[tag] = record
        self._waiting_bytes += len(tag) + len(record)
        self._stored += 1
        self._stored_counts[state.status] = self._stored_counts.get(state.status, 0) + 1
        self.writes += 1
        if self._waiting_bytes >= self._write_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the records waiting in memory to disk."""
        if not self._waiting:
            return
        waiting, self._waiting, self._waiting_bytes = self._waiting, {}, 0
        self._db.write_many("INSERT OR REPLACE INTO tags VALUES (?, ?)", sorted(waiting.items()))

    def _uncount(self, status: str) -> None:
        left = self._stored_counts[status] - 1
        if left:
            self._stored_counts[status] = left
        else:
            del self._stored_counts[status]

    # -- every tag, in order ----------------------------------------------------------------------------

    def _merged(self, *, records: bool = True) -> Iterator[tuple[str, bytes]]:
        cache = self.cache
        cached = ((tag, _CACHED, cache[tag].canonical() if records else b"") for tag in sorted(cache))
        waiting = ((tag, _WAITING, record) for tag, record in sorted(self._waiting.items()))
        sources: list[Iterable[tuple[str, int, bytes]]] = [cached, waiting]
        if self._db.opened:
            what = "record" if records else "x''"
            sql = f"SELECT tag, ?, {what} FROM tags ORDER BY tag"  # the primary key's order: the ids' bytes
            sources.append(self._db.connection.execute(sql, (_ON_DISK,)))
        return _newest(heapq.merge(*sources))

    def rows(self) -> Iterator[tuple[str, bytes]]:
        """(tag, jcs(state)) for every tag, in ascending order of the tag ids' bytes (the digest's order).

        Read it to the end before folding more entries (it reads the table as it goes)."""
        return self._merged()

    def counts(self) -> dict[str, int]:
        """How many tags are in each status (only the statuses that occur), sorted by status."""
        counts = dict(self._stored_counts)
        for state in self.cache.values():
            counts[state.status] = counts.get(state.status, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def stored(self) -> int:
        """How many tags' states are out of the cache (waiting to be written, or on disk)."""
        return self._stored

    @property
    def on_disk(self) -> bool:
        """Whether some states were written to disk."""
        return self._db.opened

    @property
    def directory(self) -> str | None:
        """The temporary directory of the file on disk, if there is one."""
        return self._db.directory

    def close(self) -> None:
        """Delete the file on disk and forget the stored states (only the cached ones remain)."""
        self._db.close()
        self._waiting, self._waiting_bytes = {}, 0
        self._stored, self._stored_counts = 0, {}
