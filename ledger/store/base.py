"""The storage interface of the ledger, and `open_store(url)`.

Events are stored the way `eventsourcing.dcb` stores them: one row per event with a position, a type, the
data bytes and the tags (here: the streams the event joins, its id, and `registry` for registry events).
The ledger needs two things on top of the library's `DCBRecorder`:

- positions that are gapless and equal to the log index + 1, because the log entry bytes embed `seq`;
- a write session that holds the store's write lock while the writer reads stream heads, checks a whole
  batch of envelopes and inserts the accepted ones, all in one transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from eventsourcing.dcb.api import DCBQuery, DCBQueryItem, DCBRecorder
from eventsourcing.persistence import OperationalError

from ledger.tree.log_tree import LEVEL_ONE


@dataclass(frozen=True)
class StoredEvent:
    """One row of the log: `position` = seq + 1, `data` = the exact log entry bytes.

    `tags` are stored with the row and indexed; `index_only` tags are indexed but not stored with the row
    (the up to 10,000 tag streams a `tags_issued` event creates: every read of one of those tags would
    otherwise carry all of them).
    """

    position: int
    type: str
    data: bytes
    tags: tuple[str, ...]
    index_only: tuple[str, ...] = ()

    @property
    def indexed(self) -> tuple[str, ...]:
        return self.tags + self.index_only

    @property
    def seq(self) -> int:
        return self.position - 1


CHECKPOINTS = "tagledger_checkpoints"
NODES = "tagledger_merkle_nodes"
SEALED_DETAILS = "tagledger_sealed_details"
SEALED_EVIDENCE = "tagledger_sealed_evidence"


@dataclass(frozen=True)
class ViewRead:
    """`LogStore.read_view`'s answer."""

    groups: list[list[StoredEvent]]
    checkpoint: StoredCheckpoint | None
    tracked: int | None
    """The projection's position (0 if it has read nothing), None if none was asked for."""
    own_flags: list[dict[str, Any]] | None = None
    """Rows (tag, state) of `tagledger_flags_tags` with flags for the tags named `own`, if read with the rest."""
    own_attempts: list[dict[str, Any]] | None = None
    """Rows of `tagledger_rejected_attempts` for the tags named `own`, if read with the rest."""
    nodes: dict[int, bytes] = field(default_factory=dict)
    """The stored Merkle tree nodes named `nodes`, by id (the proofs of a view, read with the rest)."""


class CommitOutcomeUnknown(OperationalError):
    """The store failed while committing a write transaction (the connection died during or around COMMIT): the
    transaction may or may not have been committed. Only a look at the log afterwards can tell
    (`ledger.write_outcomes.resolve`)."""


class SchemaError(RuntimeError):
    """The database lacks what makes the log immutable: the service refuses to run on it."""


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint the ledger signed: tree `size`, `root` hash, the signed note, and when it was signed."""

    size: int
    root: bytes
    note: str
    signed_at: str


@dataclass(frozen=True)
class StoredDetails:
    """An incident's sealed details (protocol 16.2): `data` = jcs(details), whose SHA-256 is `sha256`."""

    incident: str
    sha256: str
    data: bytes
    stored_at: str


@dataclass(frozen=True)
class StoredEvidence:
    """An evidence file of an incident (protocol 16.2): `data`, whose SHA-256 is `sha256`, named with `media_type`
    by a signed event of the incident."""

    incident: str
    sha256: str
    media_type: str
    data: bytes
    stored_at: str


class WriteSession(ABC):
    """A transaction holding the store's write lock. Reads see everything committed before it."""

    @abstractmethod
    def size(self) -> int:
        """Number of entries in the log (= the next entry's seq)."""

    @abstractmethod
    def read_tagged(self, tags: Sequence[str], after: int = 0) -> list[StoredEvent]:
        """Events carrying any of `tags`, with position > `after`, in log order."""

    @abstractmethod
    def read_range(self, start: int, end: int) -> list[StoredEvent]:
        """Events with seq in [start, end), in order."""

    @abstractmethod
    def insert(self, events: Sequence[StoredEvent]) -> None:
        """Insert events whose positions continue the log exactly, and the Merkle tree nodes they complete."""

    @abstractmethod
    def insert_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Insert Merkle tree nodes (`ledger.tree.proofs.node_id`, hash)."""

    @abstractmethod
    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Stored Merkle tree nodes by id (missing ones are absent from the answer)."""

    def keep_rejected(self, rows: Sequence[tuple[str, str, str, int, str, bytes]]) -> None:
        """Keep refused envelopes as evidence in `tagledger_rejected_attempts` (migration 005): rows of (tag,
        rule, received, log_size, hash, canonical envelope), each once (by hash), at most `MAX_ATTEMPTS_PER_TAG`
        per tag. In a savepoint: a failure is logged and rolled back, and never fails the batch."""


MAX_ATTEMPTS_PER_TAG = 100
REJECTED = "tagledger_rejected_attempts"


def keep_rejected(curs: Any, ph: str, rows: Sequence[tuple[str, str, str, int, str, bytes]]) -> None:
    """`WriteSession.keep_rejected` on a DB-API cursor inside the write transaction (`ph`: placeholder)."""
    if not rows:
        return
    curs.execute("SAVEPOINT tagledger_keep_rejected")
    try:
        curs.executemany(
            f"INSERT INTO {REJECTED} (tag, rule, received, log_size, hash, envelope) "
            f"SELECT {ph}, {ph}, {ph}, {ph}, {ph}, {ph} "
            f"WHERE (SELECT COUNT(*) FROM {REJECTED} WHERE tag = {ph}) < {MAX_ATTEMPTS_PER_TAG} "
            "ON CONFLICT (hash) DO NOTHING",
            [(*row, row[0]) for row in rows],
        )
    except Exception:  # noqa: BLE001 - evidence is kept on a best-effort basis; the accepted entries are not
        logging.getLogger("tagledger.writer").exception("could not keep %d refused attempt(s)", len(rows))
        curs.execute("ROLLBACK TO SAVEPOINT tagledger_keep_rejected")
    curs.execute("RELEASE SAVEPOINT tagledger_keep_rejected")


class LogWatcher:
    """Waits for the log to grow, without a transaction while nothing happens (issue 13: an idle service waits,
    it does not poll). This base class (SQLite, which has no LISTEN/NOTIFY) asks the log's size with a backing-off
    period: `POLL_MIN` after a change, doubling up to `POLL_MAX` while the log stays still. PostgreSQL's watcher
    (ledger/store/postgres.py) LISTENs to the channel every write session NOTIFYs when it commits."""

    POLL_MIN = 0.2
    POLL_MAX = 2.0

    def __init__(self, store: LogStore):
        self.store = store
        self._stop = threading.Event()
        self._known = -1
        self._period = self.POLL_MIN

    def wait(self, timeout: float) -> bool:
        """Block until the log may have grown (True) or `timeout` seconds pass or `stop` is called (False).
        A True may be spurious (the caller reads what is new); growth is never missed: the first call returns
        True, and each one after a growth that the previous calls did not report."""
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            size = self.store.size()
            if size != self._known:
                self._known, self._period = size, self.POLL_MIN
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(self._period, left))
            self._period = min(self._period * 2, self.POLL_MAX)
        return False

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.stop()


class LogStore(ABC):
    url: str
    backend: str
    read_only: bool = False
    """A replica opened only to read (PostgreSQL hot standby, ledger/replicas.py): nothing may write to it."""
    recorder: DCBRecorder
    """The `eventsourcing.dcb` recorder over the same tables: reads by tag, and subscriptions."""

    @abstractmethod
    def write_session(self) -> AbstractContextManager[WriteSession]:
        """Open a transaction under the write lock; commit on normal exit, roll back on error.

        A failure before the commit raises a `PersistenceError` and nothing was written; a failure of the
        commit itself raises `CommitOutcomeUnknown`."""

    @abstractmethod
    def size(self) -> int: ...

    def watch(self) -> LogWatcher:
        """A `LogWatcher` of this store: how background threads wait for new entries (close it when done)."""
        return LogWatcher(self)

    def read_tagged(self, tags: Sequence[str], after: int = 0) -> list[StoredEvent]:
        """Events carrying any of `tags`, after `after`, through the library's DCB recorder interface."""
        query = DCBQuery(items=[DCBQueryItem(tags=[tag]) for tag in dict.fromkeys(tags)])
        if not query.items:
            return []
        return [
            StoredEvent(e.position, e.event.type, bytes(e.event.data), tuple(e.event.tags))
            for e in self.recorder.read(query, after=after)
        ]

    def read_tagged_groups(self, groups: Sequence[tuple[Sequence[str], int]]) -> list[list[StoredEvent]]:
        """`read_tagged(tags, after)` of each (tags, after) group; PostgreSQL answers them in one query."""
        return [self.read_tagged(tags, after) for tags, after in groups]

    def read_view(self, groups: Sequence[tuple[Sequence[str], int]], tracking: str | None = None,
                  own: Sequence[str] | None = None, nodes: Sequence[int] = ()) -> ViewRead:
        """What a tag view reads first: `read_tagged_groups(groups)`, the latest checkpoint, the Merkle tree nodes
        `nodes` and, if `tracking` names a projection, how far it has read. PostgreSQL answers all of it in one
        query (issue 13), with the flags (if `tracking`) and the refused attempts of the tags `own`; elsewhere
        those are left to be read."""
        tracked = None
        if tracking is not None:
            table = "tracking" if self.backend == "sqlite" else "tagledger_projection_tracking"
            with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
                curs.execute(f"SELECT MAX(notification_id) AS n FROM {table} WHERE application_name = "
                             f"{self.placeholder}", [tracking])
                row = curs.fetchone()
                tracked = int(row["n"] or 0)
        return ViewRead(self.read_tagged_groups(groups), self.latest_checkpoint(), tracked,
                        nodes=self.read_nodes(nodes) if nodes else {})

    def read_site_streams(self, site: str) -> list[StoredEvent]:
        """Every event of the site's monitoring stream (`site:<site>`) and of each incident reported at it, in log
        order: the streams its incident reports (tagged `risk:<site>`, ledger/writer.py `stored_tags`) join, which
        each report's row names first. PostgreSQL reads them in one query."""
        reports = self.read_tagged([f"risk:{site}"])
        return self.read_tagged(sorted({r.tags[0] for r in reports} | {f"site:{site}"}))

    def reading(self) -> AbstractContextManager[None]:
        """A block whose reads (in this thread) see one snapshot of the store; on PostgreSQL one transaction
        (`PostgresLogStore.reading`). Elsewhere a no-op: a SQLite read is local and costs no round trip."""
        return nullcontext()

    @abstractmethod
    def read_range(self, start: int, end: int) -> list[StoredEvent]:
        """Events with seq in [start, end), in order."""

    def iter_all(self, after_seq: int = -1, batch: int = 2000) -> Iterator[StoredEvent]:
        """Every event after `after_seq`, in log order, read in pages."""
        start = after_seq + 1
        while True:
            page = self.read_range(start, start + batch)
            yield from page
            if len(page) < batch:
                return
            start += batch

    # -- the verifiable log (Merkle tree nodes and signed checkpoints) ------------------------------

    @abstractmethod
    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Stored Merkle tree nodes by id (missing ones are absent from the answer)."""

    def tree_size(self) -> int:
        """Number of leaves in the stored tree (equal to `size()` unless the tree is being back-filled): the
        last leaf's id + 1, since a leaf's node id is its index."""
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT MAX(id) AS n FROM {NODES} WHERE id < {self.placeholder}", [LEVEL_ONE])
            row = curs.fetchone()
            return 0 if row["n"] is None else int(row["n"]) + 1

    @abstractmethod
    def insert_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store a signed checkpoint; False if one of that size exists already (the same, being deterministic)."""

    placeholder = "?"
    """The DB-API parameter marker of the backend's driver."""

    @staticmethod
    def _checkpoint_of(row: Any) -> StoredCheckpoint:
        return StoredCheckpoint(int(row["size"]), bytes(row["root"]), row["note"], str(row["signed_at"]))

    def _select_checkpoints(self, clause: str, params: Sequence[Any]) -> list[StoredCheckpoint]:
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT size, root, note, signed_at FROM {CHECKPOINTS} {clause}", list(params))
            return [self._checkpoint_of(row) for row in curs.fetchall()]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        found = self._select_checkpoints("ORDER BY size DESC LIMIT 1", [])
        return found[0] if found else None

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        found = self._select_checkpoints(f"WHERE size = {self.placeholder}", [size])
        return found[0] if found else None

    def checkpoints(self, *, after_size: int = -1, limit: int = 1000) -> list[StoredCheckpoint]:
        """Signed checkpoints in increasing size, the smallest after `after_size` first."""
        ph = self.placeholder
        return self._select_checkpoints(f"WHERE size > {ph} ORDER BY size LIMIT {ph}", [after_size, limit])

    # -- sealed incident details (protocol section 16.2; migration 006) ---------------------------

    def insert_sealed_details(self, details: StoredDetails) -> bool:
        """Store an incident's sealed details unless (incident, sha256) is stored already (append-only: never
        replaced); True if this call stored them."""
        raise NotImplementedError

    def read_sealed_details(self, incident: str) -> list[StoredDetails]:
        """The sealed details stored for `incident` (at most one per sha256), oldest first."""
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(
                f"SELECT incident, sha256, details, stored_at FROM {SEALED_DETAILS} WHERE incident = "
                f"{self.placeholder} ORDER BY stored_at, sha256", [incident],
            )
            return [StoredDetails(r["incident"], r["sha256"], bytes(r["details"]), r["stored_at"])
                    for r in curs.fetchall()]

    # -- sealed evidence files (protocol section 16.2, since 1.10; migration 007) ----------------

    def insert_sealed_evidence(self, evidence: StoredEvidence) -> bool:
        """Store an evidence file unless (incident, sha256) is stored already; True if this call stored it."""
        ph = self.placeholder
        with self._append_transaction() as curs:
            curs.execute(
                f"INSERT INTO {SEALED_EVIDENCE} (incident, sha256, media_type, data, stored_at) VALUES "
                f"({ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (incident, sha256) DO NOTHING",
                [evidence.incident, evidence.sha256, evidence.media_type, evidence.data, evidence.stored_at],
            )
            return self._inserted(curs)

    def sealed_evidence(self, incident: str, sha256: str) -> StoredEvidence | None:
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT incident, sha256, media_type, data, stored_at FROM {SEALED_EVIDENCE} WHERE "
                         f"incident = {self.placeholder} AND sha256 = {self.placeholder}", [incident, sha256])
            row = curs.fetchone()
        if row is None:
            return None
        return StoredEvidence(row["incident"], row["sha256"], row["media_type"], bytes(row["data"]),
                              row["stored_at"])

    def sealed_evidence_list(self, incident: str) -> list[tuple[str, str, int, str]]:
        """(sha256, media type, size in bytes, stored at) of every evidence file stored for `incident`."""
        with self.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT sha256, media_type, length(data) AS size, stored_at FROM {SEALED_EVIDENCE} "
                         f"WHERE incident = {self.placeholder} ORDER BY stored_at, sha256", [incident])
            return [(r["sha256"], r["media_type"], int(r["size"]), r["stored_at"]) for r in curs.fetchall()]

    def _append_transaction(self) -> Any:
        """A transaction for a row appended outside the log (the SQLite store takes its write lock)."""
        return self.datastore.transaction(commit=True)  # type: ignore[attr-defined]

    def _inserted(self, curs: Any) -> bool:
        return curs.rowcount == 1

    @abstractmethod
    def close(self) -> None: ...


def open_store(url: str, *, migrate: bool = True) -> LogStore:
    """Open (and by default migrate) the store at `url`: `sqlite:///path` or `postgresql://...`."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from ledger.store.sqlite import SQLiteLogStore

        return SQLiteLogStore(url, migrate=migrate)
    if scheme in {"postgresql", "postgres"}:
        from ledger.store.postgres import PostgresLogStore

        return PostgresLogStore(url, migrate=migrate)
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///path or postgresql://...")
