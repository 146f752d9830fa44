"""The custody projection: one row per tag with its current state, rebuilt from the log at will.

Each row holds `jcs(TagState.to_json())`, the same bytes whether the projection was kept up to date event by
event or dropped and rebuilt from entry #0, so `digest()` (SHA-256 over all rows in tag order) is a
fingerprint that an auditor can compare. Progress is tracked with the `eventsourcing` library's tracking
recorders: the view rows and the tracking position are written in one transaction, so the projection is
never ahead of or behind what it says it has processed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from domain import custody
from domain.custody import Status, TagState
from domain.registry import StreamHead
from ledger.entries import Entry, read_entry
from ledger.row_json import row_json
from ledger.store.base import LogStore, StoredEvent
from verification.encoding import parse_time
from verification.envelope import issued_tags

NAME = "custody"
VIEW = "tagledger_custody_view"
TRACKING = "tagledger_projection_tracking"
PAGE = 2000
SUMMARY_PAGE = 5000
PROCESSOR_LOCK = 0x7461676C65646772  # PostgreSQL advisory lock key of the custody projection's processors


def state_from_json(doc: dict[str, Any]) -> TagState:
    """Inverse of `TagState.to_json`."""
    return TagState(
        tag=doc["tag"],
        issued_to=doc["issued_to"],
        head=StreamHead(doc["head"]["hash"], doc["head"]["seq"], parse_time(doc["last_time"])),
        status=Status(doc["status"]),
        holder=doc["holder"],
        pending_recipient=doc["pending_recipient"],
        dispatched_mass_g=doc["dispatched_mass_g"],
        mass_g=doc["mass_g"],
        origin=doc["origin"],
        lot=doc["lot"],
        inputs=list(doc["inputs"]),
        parent=doc["parent"],
        outputs=list(doc["outputs"]),
        void_reason=doc["void_reason"],
        events=doc["events"],
    )


def _touched(event: StoredEvent, body: dict[str, Any]) -> list[str]:
    """The tags whose state an event changes: the tag streams it joins, and those `tags_issued` creates."""
    joined = [t.removeprefix("tag:") for t in event.tags if t.startswith("tag:")]
    return joined + issued_tags(body["data"]) if event.type == "tags_issued" else joined


def read_page(store: LogStore, start: int) -> list[tuple[StoredEvent, Entry]]:
    """The page of the log after position `start` (at most `PAGE` entries), each entry parsed.

    The projections of one process (custody, flags) read the same pages one after the other: the last page read
    is kept on the store, so that each page is read from the database and parsed once, not once per projection.
    A kept page is a prefix of the log from `start` (the log only grows), so reusing it is always right; what it
    lacks is read by the next call.
    """
    kept = getattr(store, "_tagledger_last_page", None)
    if kept is not None and kept[0] == start:
        return kept[1]
    parsed = [(event, read_entry(event.data)) for event in store.read_range(start, start + PAGE)]
    if parsed:
        store._tagledger_last_page = (start, parsed)  # type: ignore[attr-defined]  # one tuple: atomic
    return parsed


def insert_rows(curs: Any, backend: str, table: str, columns: Sequence[str], types: Sequence[str],
                rows: Sequence[Sequence[Any]], conflict: str | None = None) -> None:
    """Insert `rows` into a projection's table; with `conflict` (its key's columns), a row whose key is there
    replaces the other columns (the rows' keys must be distinct). On PostgreSQL one statement over binary arrays
    (`unnest`), a fourth of `executemany`'s client CPU per row (issue 13); on SQLite `executemany`."""
    if not rows:
        return
    names = ", ".join(columns)
    upsert = ""
    if conflict is not None:
        keys = {c.strip() for c in conflict.split(",")}
        upsert = (f" ON CONFLICT ({conflict}) DO UPDATE SET "
                  + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys))
    if backend == "postgres":
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        curs.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){upsert}",
                     [list(column) for column in zip(*rows)])
    else:
        curs.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))}){upsert}", rows)


class TrackedProjection:
    """A disposable view of the log, kept with the `eventsourcing` library's tracking recorders.

    Subclasses name themselves (`name`, the tracking row; `lock_key`, the PostgreSQL advisory lock of their
    processors), list their tables (`tables`, emptied by `drop`; `_create_statements`, run by `create`) and
    fold pages of entries (`_fold`, reading with the cursor it is given) into something `_write_rows` writes.
    The base class reads pages, excludes the other processors of the same projection, checks the tracked
    position inside the transaction and writes the rows and the new position together.
    """

    name: str
    lock_key: int
    tables: tuple[str, ...] = ()

    CACHE_LIMIT = 200_000
    """At most this many folded states kept in memory between pages (then the memory starts again, empty)."""

    def __init__(self, store: LogStore):
        # The states this process last wrote (`_fold` of the subclass decides what they are), as of tracked
        # position `_cached_at` (-1: none to trust). While the tracked position is still that one, nobody else
        # changed the rows, so each page folds onto them rather than reading and decoding them again (issue 13).
        # A subclass's `_write_rows` leaves (states, position) in `_pending`, trusted once the page committed.
        self._cached: dict[str, Any] = {}
        self._cached_at = -1
        self._pending: tuple[dict[str, Any], int] | None = None
        self.store = store
        self.backend = store.backend
        self._ph = "?" if self.backend == "sqlite" else "%s"
        if self.backend == "sqlite":
            self.tracking = SQLiteTrackingRecorder(store.datastore)  # type: ignore[attr-defined]
        else:
            self.tracking = PostgresTrackingRecorder(store.datastore, tracking_table_name=TRACKING)  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self.create()

    # -- schema ---------------------------------------------------------------------------------

    def _create_statements(self) -> list[str]:
        """`CREATE TABLE IF NOT EXISTS` (and index) statements of the projection's tables."""
        return []

    def create(self) -> None:
        if self.store.read_only:  # a replica: the primary created the tables, and a standby cannot
            return
        self.tracking.create_table()
        with self.store.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            for statement in self._create_statements():
                curs.execute(statement)

    def drop(self) -> None:
        """Forget everything: the next `catch_up` rebuilds from entry #0."""
        self._cached, self._cached_at = {}, -1
        with self._lock, self.store.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            self._exclude_other_processors(curs)
            # rows, not tables: on PostgreSQL the tables belong to the schema's owner, not to the service's role
            for table in self.tables:
                curs.execute(f"DELETE FROM {table}")
            curs.execute(f"DELETE FROM {self._tracking_table} WHERE application_name = {self._ph}", [self.name])

    # -- one processor at a time, across processes ----------------------------------------------
    #
    # `tagledger serve` follows the projection while `tagledger projection rebuild`, or another server on the
    # same store, may process it too. Each transaction that changes the projection first excludes the others,
    # then checks the tracked position inside the transaction (see `_process`), so no entry is ever applied
    # twice or on top of a projection dropped in the meantime.

    @property
    def _tracking_table(self) -> str:
        return "tracking" if self.backend == "sqlite" else TRACKING

    def _exclude_other_processors(self, curs: Any) -> None:
        """Hold, until the transaction ends, the lock every change to this projection takes."""
        if self.backend == "postgres":
            curs.execute("SELECT pg_advisory_xact_lock(%s)", [self.lock_key])
        else:
            # SQLite has one writer at a time: take the write lock now, with a write that changes nothing
            # (a deferred transaction takes it at its first write, and fails if another committed meanwhile)
            curs.execute(f"UPDATE {self._tracking_table} SET notification_id = notification_id WHERE 0")

    def _tracked(self, curs: Any) -> int:
        curs.execute(f"SELECT MAX(notification_id) AS n FROM {self._tracking_table} WHERE application_name = "
                     f"{self._ph}", [self.name])
        row = curs.fetchone()
        return int(row["n"] or 0) if row is not None else 0

    # -- processing -----------------------------------------------------------------------------

    def position(self) -> int:
        return self.tracking.max_tracking_id(self.name) or 0

    def catch_up(self, limit: int | None = None) -> int:
        """Process every entry after the tracked position; returns how many were processed."""
        processed = 0
        with self._lock:
            while limit is None or processed < limit:
                start = self.position()
                parsed = read_page(self.store, start)
                if not parsed:
                    break
                self._process(parsed)
                processed += len(parsed)
        return processed

    def _process(self, parsed: list[tuple[StoredEvent, Entry]]) -> None:
        self._pending = None
        try:
            self._process_page(parsed)
        finally:
            pending, self._pending = self._pending, None
        if pending is not None:  # written and committed: these are the rows at that position
            states, position = pending
            self._cached = states if len(states) <= self.CACHE_LIMIT else {}
            self._cached_at = position

    def _process_page(self, parsed: list[tuple[StoredEvent, Entry]]) -> None:
        transaction = self.store.datastore.transaction  # type: ignore[attr-defined]
        if self.backend == "postgres":
            # the advisory lock does not block the ledger's writers: hold it for the whole page
            with transaction(commit=True) as curs:
                self._exclude_other_processors(curs)
                done = self._tracked(curs)
                todo = self._after(parsed, done)
                if todo:
                    self._write(curs, self._fold(curs, todo), todo[-1][0].position)
            return
        # SQLite's lock is the whole database's write lock, which the ledger's writer needs too: read and fold in
        # a read transaction (a snapshot), then hold the lock only to check that the projection is still where
        # it was read (a projection at a given position is the same whoever built it) and to write
        with transaction(commit=False) as curs:
            done = self._tracked(curs)
            todo = self._after(parsed, done)
            folded = self._fold(curs, todo) if todo else None
        if not todo:
            return
        with transaction(commit=True) as curs:
            self._exclude_other_processors(curs)
            if self._tracked(curs) == done:
                self._write(curs, folded, todo[-1][0].position)

    @staticmethod
    def _after(parsed: list[tuple[StoredEvent, Entry]], done: int) -> list[tuple[StoredEvent, Entry]]:
        """The entries to process after position `done`: none unless they continue it exactly (another
        processor went ahead, or dropped the projection: `catch_up` re-reads from the tracked position)."""
        todo = [(event, entry) for event, entry in parsed if event.position > done]
        return todo if todo and todo[0][0].position == done + 1 else []

    def _fold(self, curs: Any, todo: list[tuple[StoredEvent, Entry]]) -> Any:
        """What these entries change, from the stored rows (read with `curs`) and the entries."""
        raise NotImplementedError

    def _write_rows(self, curs: Any, folded: Any) -> None:
        """Write what `_fold` returned."""
        raise NotImplementedError

    def _write(self, curs: Any, folded: Any, position: int) -> None:
        self._write_rows(curs, folded)
        self.tracking._insert_tracking(curs, Tracking(self.name, position))  # noqa: SLF001


class CustodyProjection(TrackedProjection):
    name = NAME
    lock_key = PROCESSOR_LOCK
    tables = (VIEW,)

    def __init__(self, store: LogStore):
        self._summary: dict[str, Any] | None = None
        super().__init__(store)

    def _create_statements(self) -> list[str]:
        blob = "BLOB" if self.backend == "sqlite" else "bytea"
        return [
            f"CREATE TABLE IF NOT EXISTS {VIEW} (tag TEXT PRIMARY KEY, status TEXT NOT NULL, "
            f"holder TEXT, issued_to TEXT NOT NULL, state {blob} NOT NULL)"
        ]

    def _fold(self, curs: Any, todo: list[tuple[StoredEvent, Entry]]) -> list[tuple[str, str, str | None, str, bytes]]:
        """The view rows of the tags these entries change, from their stored states and the entries."""
        touched = [_touched(event, entry.body) for event, entry in todo]
        wanted = {tag for tags in touched for tag in tags}
        done = todo[0][0].position - 1  # `_after` hands on only entries that continue the tracked position
        states, self._cached, cached_at, self._cached_at = self._cached, {}, self._cached_at, -1  # folded in place
        if cached_at != done:
            states = {}
        states.update(self._load(curs, [tag for tag in wanted if tag not in states]))
        changed: set[str] = set()
        for (_, entry), tags in zip(todo, touched):
            custody.apply(states, entry.body, entry.hash, entry.seq)
            changed.update(tags)
        self._folded = (states, todo[-1][0].position)
        return [
            (tag, str(s.status), s.holder, s.issued_to, row_json(s.to_json()))
            for tag in sorted(changed)
            if (s := states.get(tag)) is not None
        ]

    def _write_rows(self, curs: Any, rows: list[tuple[str, str, str | None, str, bytes]]) -> None:
        self._pending = self._folded  # trusted once `_process` returns (the transaction committed)
        insert_rows(curs, self.backend, VIEW, ("tag", "status", "holder", "issued_to", "state"),
                    ("text", "text", "text", "text", "bytea"), rows, conflict="tag")

    def _load(self, curs: Any, tags: Iterable[str]) -> dict[str, TagState]:
        tags = list(tags)
        states: dict[str, TagState] = {}
        for i in range(0, len(tags), 500):
            chunk = tags[i : i + 500]
            if self.backend == "sqlite":
                curs.execute(f"SELECT state FROM {VIEW} WHERE tag IN ({','.join('?' * len(chunk))})", chunk)
            else:
                curs.execute(f"SELECT state FROM {VIEW} WHERE tag = ANY(%s)", [chunk])
            for row in curs.fetchall():
                state = state_from_json(json.loads(bytes(row["state"])))
                states[state.tag] = state
        return states

    # -- reading --------------------------------------------------------------------------------

    def count(self) -> int:
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT COUNT(*) AS n FROM {VIEW}")
            return int(curs.fetchone()["n"])

    def rows(self) -> list[tuple[str, bytes]]:
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            order = 'COLLATE "C"' if self.backend == "postgres" else ""
            curs.execute(f"SELECT tag, state FROM {VIEW} ORDER BY tag {order}")
            return [(r["tag"], bytes(r["state"])) for r in curs.fetchall()]

    def digest(self) -> str:
        """SHA-256 over every row (tag, canonical state) in tag order: equal iff the states are equal."""
        return str(self.summary()["digest"])

    def summary(self) -> dict[str, Any]:
        """`position`, `digest` (docs/protocol.md section 10), `tags` and `by_status`, from one snapshot.

        Rows are read in pages, in byte order of the tag id (`COLLATE "C"` on PostgreSQL, whatever the
        database's locale), so the memory used does not grow with the number of tags.
        """
        cached = self._summary
        position = self.position()
        if cached is not None and cached["position"] == position:
            return cached
        h = hashlib.sha256()
        count, by_status = 0, {}
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            if self.backend == "postgres":
                curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            position = self._tracked(curs)
            last = ""
            while True:
                curs.execute(self.summary_page_sql(), [last])
                rows = curs.fetchall()
                for row in rows:
                    h.update(row["tag"].encode() + b"\n" + bytes(row["state"]) + b"\n")
                    by_status[row["status"]] = by_status.get(row["status"], 0) + 1
                count += len(rows)
                if len(rows) < SUMMARY_PAGE:
                    break
                last = rows[-1]["tag"]
        summary = {"position": position, "digest": h.hexdigest(), "tags": count,
                   "by_status": dict(sorted(by_status.items()))}
        self._summary = summary
        return summary

    def summary_page_sql(self) -> str:
        """One page of `summary`: the rows after a tag id, in byte order (on PostgreSQL the index of migration 008
        serves it, whatever the database's locale)."""
        order = 'COLLATE "C"' if self.backend == "postgres" else ""
        return (f"SELECT tag, status, state FROM {VIEW} WHERE tag {order} > {self._ph} ORDER BY tag {order} "
                f"LIMIT {SUMMARY_PAGE}")

    def query(self, *, holder: str | None = None, status: str | None = None, limit: int = 100,
              after: str = "", issued_to: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [f"tag > {self._ph}"], [after]
        if holder:
            clauses.append(f"holder = {self._ph}")
            params.append(holder)
        if issued_to:
            clauses.append(f"issued_to = {self._ph}")
            params.append(issued_to)
        if status:
            clauses.append(f"status = {self._ph}")
            params.append(status)
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(
                f"SELECT state FROM {VIEW} WHERE {' AND '.join(clauses)} ORDER BY tag LIMIT {int(limit)}", params
            )
            return [json.loads(bytes(r["state"])) for r in curs.fetchall()]

    def states(self, tags: Iterable[str]) -> list[dict[str, Any]]:
        """The current states of these tags (those the projection has), in the order given."""
        tags = list(tags)
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            found = self._load(curs, tags)
        return [found[tag].to_json() for tag in tags if tag in found]

    def counts_by_status(self) -> dict[str, int]:
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT status, COUNT(*) AS n FROM {VIEW} GROUP BY status ORDER BY status")
            return {r["status"]: int(r["n"]) for r in curs.fetchall()}


class ProjectionFollower:
    """Keeps a projection up to date in the background while the service runs.

    It waits for the log to grow with the store's `LogWatcher` (LISTEN/NOTIFY on PostgreSQL: no transaction while
    the service is idle; a backing-off size check on SQLite), so it also sees entries written by other processes;
    each wake-up lets a burst of commits gather (`settle_seconds`), then triggers a `catch_up`, which reads whole
    pages, so a burst of writes costs a few transactions rather than one per event. (Until issue 13 it followed
    the library's DCB subscription, whose own thread read every new event once more only to say that it came.)
    """

    settle_seconds = 0.25
    """How long to let new entries gather before catching up: the projection may lag by this much."""

    def __init__(self, projection: TrackedProjection):
        self.projection = projection
        self._watcher = projection.store.watch()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="projection", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._watcher.stop()
        self._thread.join(timeout=10)

    def _catch_up(self) -> None:
        """Catch up a page at a time, looking for a stop between pages: stopping the service never waits for a
        long backlog (a rebuild, the first start on an imported log) to be folded."""
        while not self._stopped.is_set() and self.projection.catch_up(limit=PAGE):
            pass

    def _run(self) -> None:
        log = logging.getLogger("tagledger.projection")
        try:
            while not self._stopped.is_set():
                try:
                    if self._watcher.wait(60.0):
                        self._catch_up()
                        # let a burst of commits gather, then process it in a few large pages
                        if self._stopped.wait(self.settle_seconds):
                            return
                except Exception:  # noqa: BLE001 - keep following; retry after a pause
                    log.exception("projection follower failed; retrying")
                    self._stopped.wait(1.0)
        finally:
            self._watcher.close()
