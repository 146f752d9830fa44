"""The custody states of a replay with memory for the *live* tags only: finished tags go to disk.

A replay must produce every tag's state (docs/protocol.md section 10: the custody digest covers all tags,
in ascending byte order of their ids) and must still know every finished tag (a re-issue is
``tag.already_issued``, a custody event on it ``tag.finished``, a ``tag_scanned`` moves its head). Held as
:class:`~verification.custody_state.TagState` objects, that is ~700 bytes of memory per tag ever issued, so
the auditor's memory would grow with the log. But a tag that is ``merged``, ``split``, ``consumed`` or
``voided`` is rarely touched again: no custody event can follow, only a ``tag_scanned`` (which moves its
head). So its state is written down as its final record and forgotten:

- :class:`TagStates` is the replay's ``tag id -> TagState`` mapping. It keeps the states of the live tags
  (``issued``, ``in_custody``, ``in_transit``) in a dict; after each entry is folded,
  :meth:`TagStates.archive_finished` moves the tags that entry finished into a :class:`TagArchive`.
  The replay reading a finished tag (``tags[tag]``, ``tags.get(tag)``: its checks and its fold) *revives*
  it: its newest record is read back into a live :class:`~verification.custody_state.TagState`, the very
  state it had, so the rules fail with the same rule, field and message as if it had stayed in memory, and
  the fold can move its head; after the fold it is archived again (a new record, which supersedes the
  old). :meth:`TagStates.peek` reads a state without reviving it (a read-only :class:`ArchivedTagState`).
- :class:`TagArchive` holds the finished tags' records, ``jcs(record)`` from
  :meth:`~verification.custody_state.TagState.canonical`, in *sorted runs*: records are gathered in memory
  until they reach ``run_bytes`` (4 MiB), then sorted by tag id and written to a temporary file as
  ``tag \\n jcs(record) \\n`` -- the very bytes the custody digest hashes. When ``fan_in`` (64) runs of one
  level exist they are merged into one run of the next level (keeping each tag's newest record), so there
  are never more than ``fan_in - 1`` runs per level, and a merge has few files open. Runs are numbered in
  the order they are made; a merged run's records are newer than those of every older run, so "the newest
  record of a tag" is the one in the records not yet written, else in the highest-numbered run holding it.
  The files live in one temporary directory (under ``$TMPDIR``), made only when the first run is written
  and deleted by :meth:`TagArchive.close`, or when the archive is garbage-collected, or at exit.
- The digest, :meth:`TagStates.rows` and ``iter(tags)`` merge (``heapq.merge``) the runs, the records not
  yet written and the sorted live tags, and keep for each tag only its live state or else its newest
  record: the same rows, byte for byte, as the states all kept in memory, in the same order.
  :meth:`TagStates.counts` and ``len`` are kept as tags are archived and revived.

**Exact membership.** For each archived tag the archive keeps a 64-bit fingerprint (BLAKE2b keyed with the
replay's random ``id_key``, with its own personalisation) in a :class:`~verification.event_ids.FingerprintSet`;
each run keeps the sorted fingerprints of its tags and a sparse index (the id of every ``STRIDE``-th record
and its offset). A tag whose fingerprint is absent is certainly not archived: that is the answer for every
new tag of a valid log, with no disk access. A fingerprint that is present is confirmed by reading the
record from the run(s) whose fingerprints hold it (a block of at most ``STRIDE`` records each). So a
fingerprint collision never changes an answer; it only costs a read, with probability at most ``n / 2**64``
per question for ``n`` archived tags (the key is secret and drawn for each replay: nobody can aim for one).

**Memory**: the live tags' states (~700 bytes each: inherent, the rules need them), plus per finished tag
16 bytes of fingerprints (the set's and its run's) and ~1.3 bytes of sparse index, plus at most
``run_bytes`` of records waiting for their run, plus the read buffers of one merge (64 KiB per run). Disk:
``len(tag) + len(record) + 2`` bytes per record (~600 bytes for a bag), rewritten once per level (a level
holds up to ``fan_in`` times as much as the one below: 4 MiB, 256 MiB, 16 GiB per run).
"""

from __future__ import annotations

import hashlib
import heapq
import os
import shutil
import tempfile
import weakref
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from verification.custody_state import FINISHED, FINISHING_TYPES, TagState
from verification.entry_checks import CheckedEntry
from verification.event_ids import FingerprintSet

__all__ = ["ArchivedTagState", "FAN_IN", "RUN_BYTES", "STRIDE", "TagArchive", "TagStates"]

RUN_BYTES = 4 << 20
"""Records gathered in memory before they are sorted and written as a run (bytes of tag ids and records)."""
FAN_IN = 64
"""Runs of one level merged into one run of the next level when there are this many."""
STRIDE = 64
"""The sparse index of a run names every STRIDE-th record: a lookup reads at most STRIDE records of a run."""
_READ_BUFFER = 1 << 16
_WRITE_BUFFER = 1 << 20
_PERSON = b"tagledger-tags"  # BLAKE2b personalisation: these fingerprints are not the event-id ones
_LIVE_RANK = -(1 << 64)  # in a merge, (tag, rank): the lowest rank of a tag is its newest state
_PENDING_RANK = -(1 << 63)


class ArchivedTagState(TagState):
    """A finished tag's state as read back by :meth:`TagStates.peek`: a read-only copy."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"tag {self.tag}: this is a read-only copy of an archived state")


class _Run:
    """One sorted run file: ``tag \\n record \\n`` per tag, ascending; its tags' fingerprints, sorted; and
    every STRIDE-th tag with its offset."""

    __slots__ = ("path", "level", "number", "count", "first_tags", "offsets", "fingerprints")

    def __init__(self, path: str, level: int, number: int) -> None:
        self.path = path
        self.level = level
        self.number = number
        self.count = 0
        self.first_tags: list[str] = []
        self.offsets = array("Q")
        self.fingerprints = array("Q")

    def holds(self, fingerprint: int) -> bool:
        fingerprints = self.fingerprints
        i = bisect_left(fingerprints, fingerprint)
        return i < len(fingerprints) and fingerprints[i] == fingerprint

    def rows(self) -> Iterator[tuple[str, int, bytes]]:
        """(tag, rank, record) in tag order; the rank orders the runs, newest first."""
        rank = -self.number
        with open(self.path, "rb", buffering=_READ_BUFFER) as file:
            for tag_line, record_line in zip(file, file):
                yield tag_line[:-1].decode("ascii"), rank, record_line[:-1]

    def find(self, tag: str) -> bytes | None:
        block = bisect_right(self.first_tags, tag) - 1
        if block < 0:
            return None
        with open(self.path, "rb") as file:
            file.seek(self.offsets[block])
            for _ in range(STRIDE):
                tag_line = file.readline()
                record_line = file.readline()
                if not record_line:
                    return None
                found = tag_line[:-1].decode("ascii")
                if found == tag:
                    return record_line[:-1]
                if found > tag:
                    return None
        return None


def _newest(rows: Iterable[tuple[str, int, bytes]]) -> Iterator[tuple[str, int, bytes]]:
    """The first (lowest rank: newest) row of each tag, from rows sorted by (tag, rank)."""
    previous = None
    for row in rows:
        if row[0] != previous:
            previous = row[0]
            yield row


class TagArchive:
    """The final records of finished tags, on disk in sorted runs (see the module docstring).

    A tag may be archived again (after a ``tag_scanned`` moved its head): its newest record counts.
    :meth:`take` marks a tag as taken back into memory (not counted until it is archived again).
    """

    def __init__(self, key: bytes | None = None, *, run_bytes: int | None = None, fan_in: int | None = None) -> None:
        run_bytes = RUN_BYTES if run_bytes is None else run_bytes  # the module's values when this is made
        fan_in = FAN_IN if fan_in is None else fan_in
        if run_bytes < 1 or fan_in < 2:
            raise ValueError("run_bytes must be at least 1 and fan_in at least 2")
        self._hasher = hashlib.blake2b(digest_size=8, key=key if key is not None else os.urandom(16), person=_PERSON)
        self._run_bytes = run_bytes
        self._fan_in = fan_in
        self._fingerprints = FingerprintSet()
        self._pending: dict[str, bytes] = {}  # tag -> newest record, not yet in a run
        self._pending_bytes = 0
        self._runs: list[_Run] = []  # oldest first
        self._runs_made = 0
        self._count = 0  # archived tags not taken back
        self._counts: dict[str, int] = {}
        self._directory: str | None = None
        self._cleanup: weakref.finalize | None = None

    # -- adding -----------------------------------------------------------------------------------------

    def add(self, tag: str, status: str, record: bytes) -> None:
        """Archive ``tag``'s record (``jcs`` of its state, whose status is ``status``).

        The caller archives a tag that is not archived, or one it has :meth:`take`-n back since.
        """
        if "\n" in tag or b"\n" in record:  # jcs escapes control characters: a record is one line
            raise ValueError(f"tag {tag!r}: a tag id or state record with a line break cannot be archived")
        self._fingerprints.add(self._fingerprint(tag))
        old = self._pending.get(tag)
        if old is not None:
            self._pending_bytes -= len(tag) + len(old) + 2
        self._pending[tag] = record
        self._pending_bytes += len(tag) + len(record) + 2
        self._count += 1
        self._counts[status] = self._counts.get(status, 0) + 1
        if self._pending_bytes >= self._run_bytes:
            self._flush()

    def take(self, tag: str, status: str) -> None:
        """``tag`` (archived, with ``status``) is back in memory: count it no more until it is added again."""
        self._count -= 1
        self._counts[status] -= 1
        if not self._counts[status]:
            del self._counts[status]

    def _fingerprint(self, tag: str) -> int:
        hasher = self._hasher.copy()  # keyed and personalised once
        hasher.update(tag.encode("utf-8"))
        return int.from_bytes(hasher.digest(), "big")

    def _flush(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        self._runs.append(self._write_run(((tag, 0, record) for tag, record in sorted(pending.items())), 0))
        del pending
        level = 0
        while True:
            same = [run for run in self._runs if run.level == level]
            if len(same) < self._fan_in:
                return
            # all of them are newer than every run of a higher level, and there is none of a lower one
            merged = self._write_run(_newest(heapq.merge(*(run.rows() for run in same))), level + 1)
            self._runs = [run for run in self._runs if run.level != level] + [merged]
            for run in same:
                os.remove(run.path)
            level += 1

    def _write_run(self, rows: Iterable[tuple[str, int, bytes]], level: int) -> _Run:
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="tagledger-replay-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._directory, ignore_errors=True)
        self._runs_made += 1
        run = _Run(os.path.join(self._directory, f"run-{self._runs_made:06d}"), level, self._runs_made)
        offset = 0
        count = 0
        first_tags = run.first_tags
        offsets = run.offsets
        fingerprints = []
        fingerprint = self._fingerprint
        with open(run.path, "wb", buffering=_WRITE_BUFFER) as file:
            write = file.write
            for tag, _rank, record in rows:
                if count % STRIDE == 0:
                    first_tags.append(tag)
                    offsets.append(offset)
                offset += write(tag.encode("ascii") + b"\n" + record + b"\n")
                fingerprints.append(fingerprint(tag))
                count += 1
        fingerprints.sort()
        run.fingerprints = array("Q", fingerprints)
        run.count = count
        return run

    # -- reading ----------------------------------------------------------------------------------------

    def get(self, tag: str) -> bytes | None:
        """``tag``'s newest record, or None if it was never archived (exact; see the module docstring)."""
        if not isinstance(tag, str):
            return None
        fingerprint = self._fingerprint(tag)
        if fingerprint not in self._fingerprints:
            return None
        record = self._pending.get(tag)
        if record is not None:
            return record
        for run in reversed(self._runs):  # newest first
            if run.holds(fingerprint):
                record = run.find(tag)
                if record is not None:
                    return record
        return None

    def __contains__(self, tag: object) -> bool:
        """Whether ``tag`` was ever archived (taken back or not)."""
        return isinstance(tag, str) and self.get(tag) is not None

    def __len__(self) -> int:
        """How many tags are archived (and not taken back)."""
        return self._count

    def counts(self) -> dict[str, int]:
        """How many archived tags (not taken back) are in each status."""
        return dict(self._counts)

    def ranked_rows(self) -> Iterator[tuple[str, int, bytes]]:
        """(tag, rank, record) of every record kept, sorted by tag then rank (a tag's newest first).

        Read it to the end before adding more: a run it reads may be merged away (and deleted) by :meth:`add`.
        """
        pending = ((tag, _PENDING_RANK, record) for tag, record in sorted(self._pending.items()))
        return heapq.merge(*(run.rows() for run in self._runs), pending)

    def rows(self) -> Iterator[tuple[str, bytes]]:
        """(tag, newest record) of every tag ever archived, in ascending order of the tag ids."""
        return ((tag, record) for tag, _rank, record in _newest(self.ranked_rows()))

    @property
    def run_count(self) -> int:
        """How many run files there are now."""
        return len(self._runs)

    @property
    def pending_bytes(self) -> int:
        """Bytes of records gathered in memory, not yet in a run (always below ``run_bytes``)."""
        return self._pending_bytes

    def memory_bytes(self) -> int:
        """An estimate of the memory held: fingerprints, sparse indexes and records not yet written."""
        runs = sum(len(run.fingerprints) * 8 + len(run.offsets) * (8 + 8 + 49 + 40) for run in self._runs)
        return self._fingerprints.memory_bytes() + runs + self._pending_bytes + 100 * len(self._pending)

    def close(self) -> None:
        """Delete the run files (the archive is then empty)."""
        if self._cleanup is not None:
            self._cleanup()
        self._runs = []
        self._pending = {}
        self._pending_bytes = 0
        self._fingerprints = FingerprintSet()
        self._count = 0
        self._counts = {}
        self._directory = None
        self._cleanup = None


class TagStates(Mapping[str, TagState]):
    """``tag id -> TagState`` for every tag issued: the live ones in memory, the finished ones archived.

    ``tags[tag]`` and ``tags.get(tag)`` give a tag's state, reviving an archived one (it is then in memory
    until :meth:`archive_finished` archives it again); :meth:`peek` reads without reviving. ``tags[tag] =
    state`` adds a live tag. Iteration, :meth:`rows`, :meth:`counts` and ``len`` cover every tag, in
    ascending order of the tag ids. ``key``, ``run_bytes``, ``fan_in``: see :class:`TagArchive`.
    """

    __slots__ = ("live", "archive", "_revived")

    def __init__(self, key: bytes | None = None, *, run_bytes: int | None = None, fan_in: int | None = None) -> None:
        self.live: dict[str, TagState] = {}
        self.archive = TagArchive(key, run_bytes=run_bytes, fan_in=fan_in)
        self._revived: list[str] = []

    def __getitem__(self, tag: str) -> TagState:
        try:
            return self.live[tag]
        except KeyError:
            pass
        state = self._revive(tag)
        if state is None:
            raise KeyError(tag)
        return state

    def get(self, tag: str, default: Any = None) -> Any:
        state = self.live.get(tag)
        if state is not None:
            return state
        state = self._revive(tag)
        return default if state is None else state

    def _revive(self, tag: str) -> TagState | None:
        record = self.archive.get(tag)
        if record is None:
            return None
        state = TagState.from_record(record)
        self.archive.take(tag, state.status)
        self.live[tag] = state
        self._revived.append(tag)
        return state

    def peek(self, tag: str) -> TagState | None:
        """``tag``'s state without reviving it (an archived one as a read-only copy); None if never issued."""
        state = self.live.get(tag)
        if state is not None:
            return state
        record = self.archive.get(tag)
        return None if record is None else ArchivedTagState.from_record(record)

    def __contains__(self, tag: object) -> bool:
        return tag in self.live or tag in self.archive

    def __setitem__(self, tag: str, state: TagState) -> None:
        # A live tag; the replay checked that it is not issued yet (`tag.already_issued`), so not archived.
        self.live[tag] = state

    def __len__(self) -> int:
        return len(self.live) + len(self.archive)

    def __iter__(self) -> Iterator[str]:
        return (tag for tag, _ in self._merged(canonical=False))

    def __repr__(self) -> str:
        return f"TagStates(live={len(self.live)}, archived={len(self.archive)})"

    def archive_finished(self, entry: CheckedEntry) -> None:
        """After ``entry`` was folded: archive the tags it finished (tag streams it joins, now finished), and
        the archived tags revived to check or fold it (still finished, perhaps with a new head).

        Only events of the :data:`~verification.custody_state.FINISHING_TYPES` are looked at for the first;
        a tag finished by any other type would merely stay in memory (still exact).
        """
        live = self.live
        if self._revived:
            for tag in self._revived:
                state = live.get(tag)
                if state is not None and state.status in FINISHED:
                    del live[tag]
                    self.archive.add(tag, state.status, state.canonical())
            self._revived.clear()
        if entry.type not in FINISHING_TYPES:
            return
        names = [entry.stream, *(name for name, _ in entry.links)] if entry.links else (entry.stream,)
        for name in names:
            if name.startswith("tag:"):
                state = live.get(name[4:])
                if state is not None and state.status in FINISHED:
                    del live[state.tag]
                    self.archive.add(state.tag, state.status, state.canonical())

    def _merged(self, *, canonical: bool = True) -> Iterator[tuple[str, bytes]]:
        live = self.live
        live_rows = ((tag, _LIVE_RANK, live[tag].canonical() if canonical else b"") for tag in sorted(live))
        for tag, _rank, record in _newest(heapq.merge(live_rows, self.archive.ranked_rows())):
            yield tag, record

    def rows(self) -> Iterator[tuple[str, bytes]]:
        """(tag, jcs(state)) for every tag, in ascending order of the tag ids' bytes (the digest's order): a
        live tag's state, or else an archived tag's newest record."""
        return self._merged()

    def counts(self) -> dict[str, int]:
        """How many tags are in each status (only the statuses that occur), sorted by status."""
        counts = self.archive.counts()
        for state in self.live.values():
            counts[state.status] = counts.get(state.status, 0) + 1
        return dict(sorted(counts.items()))

    def close(self) -> None:
        """Delete the archive's files (only the live tags remain)."""
        self.archive.close()
