"""Rule ``event.duplicate_id`` over a whole log, exactly, in memory that does not grow with the log.

:class:`EventIds` keeps every event id seen with the seq of its entry, so a duplicate is found for certain
(no false alarm, no miss) and named with the entry that used the id first:

- the ids of the last ``batch`` entries (:data:`BATCH`, 4,096) are in a dict; when it is full they are
  written, sorted, in one transaction, to a table keyed by the id in a temporary SQLite file
  (:class:`verification.spill_db.SpillDatabase`, made only then: a shorter log never touches the disk);
- in front of both, a fixed-size bitmap of ``filter_bits`` bits (:data:`FILTER_BITS`, 2**25: 4 MiB), where
  each id sets one bit chosen by its 64-bit keyed *fingerprint* (BLAKE2b keyed with a secret drawn for each
  replay, :func:`verification.entry_checks.fingerprint`). An id whose bit is clear was certainly not seen:
  that is the answer for nearly every entry of a valid log, without a lookup. An id whose bit is set is
  looked up in the dict, then in the table (one indexed read). Collisions in the bitmap only cost reads
  (about ``n / filter_bits`` of the entries after ``n``: 3% at a million entries, more beyond), never an
  answer; and because the key is secret, nobody writing to the ledger can aim ids at the same bits.

Memory: the bitmap, the dict (``batch`` ids) and SQLite's bounded page cache -- the same at a thousand
entries as at a hundred million. Disk: ~50 bytes per entry (the id's 36 characters, its seq, the B-tree).
Every id must be given with the same fingerprint function (the replay gives ``CheckedEntry.id_fingerprint``).
"""

from __future__ import annotations

from verification.spill_db import SpillDatabase

__all__ = ["BATCH", "EventIds", "FILTER_BITS"]

BATCH = 4096
"""Ids kept in memory before they are written to disk together."""
FILTER_BITS = 1 << 25
"""Bits of the bitmap in front of the ids (a power of two): 4 MiB."""

_SCHEMA = "CREATE TABLE ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;"


class EventIds:
    """Every event id seen, with its entry's seq: :meth:`earlier` finds one, :meth:`add` records one.

    ``batch`` and ``filter_bits`` default to the module's :data:`BATCH` and :data:`FILTER_BITS` (read when
    this is made).
    """

    __slots__ = ("_recent", "_batch", "_bits", "_mask", "_db", "_count", "disk_reads")

    def __init__(self, *, batch: int | None = None, filter_bits: int | None = None) -> None:
        batch = BATCH if batch is None else batch
        filter_bits = FILTER_BITS if filter_bits is None else filter_bits
        if batch < 1 or filter_bits < 8 or filter_bits & (filter_bits - 1):
            raise ValueError("batch must be at least 1 and filter_bits a power of two, at least 8")
        self._recent: dict[str, int] = {}  # id -> seq, not yet on disk
        self._batch = batch
        self._bits = bytearray(filter_bits >> 3)
        self._mask = filter_bits - 1
        self._db = SpillDatabase("event-ids", _SCHEMA)
        self._count = 0
        self.disk_reads = 0  # lookups that went to the table (bitmap collisions, or real duplicates)

    def earlier(self, event_id: str, fingerprint: int) -> int | None:
        """The seq given with ``event_id`` when it was added, or None if it never was."""
        bit = fingerprint & self._mask
        if not self._bits[bit >> 3] & (1 << (bit & 7)):
            return None
        seq = self._recent.get(event_id)
        if seq is not None or not self._db.opened:
            return seq
        self.disk_reads += 1
        row = self._db.connection.execute("SELECT seq FROM ids WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else row[0]

    def add(self, event_id: str, fingerprint: int, seq: int) -> None:
        """Record ``event_id`` (not seen before: ask :meth:`earlier` first), used by entry ``seq``."""
        bit = fingerprint & self._mask
        self._bits[bit >> 3] |= 1 << (bit & 7)
        recent = self._recent
        recent[event_id] = seq
        self._count += 1
        if len(recent) >= self._batch:
            self._recent = {}
            self._db.write_many("INSERT OR IGNORE INTO ids VALUES (?, ?)", sorted(recent.items()))

    def __len__(self) -> int:
        """How many ids were added."""
        return self._count

    @property
    def on_disk(self) -> bool:
        """Whether some ids were written to disk."""
        return self._db.opened

    def close(self) -> None:
        """Delete the file (the ids written to it are forgotten: use only when done)."""
        self._db.close()
