"""The embedded store: one SQLite file in WAL mode, `synchronous=FULL` so an acknowledged entry survives a
crash or power loss.

`SQLiteDCBRecorder` implements the `eventsourcing.dcb` recorder interface (the library ships DCB recorders
only for PostgreSQL and memory) on the library's own `SQLiteDatastore`; `SQLiteLogStore` adds the ledger's
gapless batched write session on top.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBReadResponse,
    DCBRecorder,
    DCBSequencedEvent,
)
from eventsourcing.dcb.persistence import DCBListenNotifySubscription
from eventsourcing.dcb.popo import SimpleDCBReadResponse
from eventsourcing.persistence import IntegrityError, OperationalError
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore

from ledger.store import migrate
from ledger.store.base import (
    CHECKPOINTS,
    NODES,
    CommitOutcomeUnknown,
    SEALED_DETAILS,
    SEALED_EVIDENCE,
    LogStore,
    SchemaError,
    StoredCheckpoint,
    StoredDetails,
    StoredEvent,
    WriteSession,
    keep_rejected,
)
from ledger.tree.log_tree import LogTree

MAIN = "tagledger_events_tt_main"
TAGS = "tagledger_events_tt_tag"
POLL_SECONDS = 0.2
_MAX_VARS = 900  # stay under SQLite's bound-parameter limit
APPEND_ONLY_TABLES = (MAIN, TAGS, NODES, CHECKPOINTS, "tagledger_labels", "tagledger_rejected_attempts",
                      SEALED_DETAILS, SEALED_EVIDENCE)


def sqlite_path(url: str) -> str:
    """`sqlite:///relative/path.db` -> `relative/path.db`; `sqlite:////abs/path.db` -> `/abs/path.db`."""
    return unquote(urlsplit(url).path)[1:]


def _row(row: Any) -> StoredEvent:
    return StoredEvent(row["id"], row["type"], bytes(row["data"]), tuple(json.loads(row["tags"])))


def _select_tagged(curs: SQLiteCursor, tags: Sequence[str], after: int, limit: int | None = None) -> list[StoredEvent]:
    found: dict[int, StoredEvent] = {}
    tags = list(dict.fromkeys(tags))
    for i in range(0, len(tags), _MAX_VARS):
        chunk = tags[i : i + _MAX_VARS]
        marks = ",".join("?" * len(chunk))
        curs.execute(
            f"SELECT id, type, data, tags FROM {MAIN} WHERE id IN "
            f"(SELECT main_id FROM {TAGS} WHERE tag IN ({marks}) AND main_id > ?) ORDER BY id",
            [*chunk, after],
        )
        for row in curs.fetchall():
            found[row["id"]] = _row(row)
    events = [found[k] for k in sorted(found)]
    return events[:limit] if limit is not None else events


def _insert(curs: SQLiteCursor, events: Sequence[StoredEvent]) -> None:
    curs.executemany(
        f"INSERT INTO {MAIN} (id, type, data, tags) VALUES (?, ?, ?, ?)",
        [(e.position, e.type, e.data, json.dumps(list(e.tags))) for e in events],
    )
    curs.executemany(
        f"INSERT INTO {TAGS} (tag, main_id) VALUES (?, ?)",
        [(tag, e.position) for e in events for tag in e.indexed],
    )


def _size(curs: SQLiteCursor) -> int:
    curs.execute(f"SELECT COALESCE(MAX(id), 0) AS n FROM {MAIN}")
    return int(curs.fetchone()["n"])




def _read_nodes(curs: SQLiteCursor, ids: Sequence[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), _MAX_VARS):
        chunk = ids[i : i + _MAX_VARS]
        curs.execute(f"SELECT id, hash FROM {NODES} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        found.update((int(r["id"]), bytes(r["hash"])) for r in curs.fetchall())
    return found


class _Session(WriteSession):
    def __init__(self, curs: SQLiteCursor, tree: LogTree):
        self._curs = curs
        self._tree = tree

    def size(self) -> int:
        return _size(self._curs)

    def read_tagged(self, tags: Sequence[str], after: int = 0) -> list[StoredEvent]:
        return _select_tagged(self._curs, tags, after)

    def read_range(self, start: int, end: int) -> list[StoredEvent]:
        self._curs.execute(
            f"SELECT id, type, data, tags FROM {MAIN} WHERE id > ? AND id <= ? ORDER BY id", [start, end]
        )
        return [_row(r) for r in self._curs.fetchall()]

    def insert(self, events: Sequence[StoredEvent]) -> None:
        _insert(self._curs, events)
        self._tree.append(self, events)

    def insert_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        self._curs.executemany(f"INSERT INTO {NODES} (id, hash) VALUES (?, ?)", rows)

    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        return _read_nodes(self._curs, ids)

    def keep_rejected(self, rows: Sequence[tuple[str, str, str, int, str, bytes]]) -> None:
        keep_rejected(self._curs, "?", rows)


class SQLiteLogStore(LogStore):
    backend = "sqlite"

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        self.path = sqlite_path(url)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.datastore = SQLiteDatastore(self.path, lock_timeout=30, pool_size=4)
        self._write_lock = threading.Lock()
        if migrate:
            self.migrate()
        self.recorder = SQLiteDCBRecorder(self)
        self.tree = LogTree(self)
        self.check_append_only()
        if self.tree_size() < self.size():
            self.tree.backfill()

    # -- schema ---------------------------------------------------------------------------------

    def applied_migrations(self) -> set[int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name=?", [migrate.TABLE]
            )
            if curs.fetchone() is None:
                return set()
            curs.execute(f"SELECT version FROM {migrate.TABLE}")
            return {int(r["version"]) for r in curs.fetchall()}

    def migrate(self) -> list[str]:
        done = []
        with self._locked_transaction() as curs:
            curs.execute(
                f"CREATE TABLE IF NOT EXISTS {migrate.TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            curs.execute(f"SELECT version FROM {migrate.TABLE}")
            applied = {int(r["version"]) for r in curs.fetchall()}
            for m in migrate.pending(applied, "sqlite"):
                for statement in _split_sql(m.sql):
                    curs.execute(statement)
                curs.execute(f"INSERT INTO {migrate.TABLE} (version, name) VALUES (?, ?)", [m.version, m.name])
                done.append(m.name)
        return done

    def check_append_only(self) -> None:
        """Refuse a database whose log tables lack their triggers refusing UPDATE and DELETE (SQLite has no
        TRUNCATE, and no roles: whoever can write the file can change it; `tagledger check` detects that)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            refused = {(row["tbl_name"], op) for row in curs.fetchall() for op in ("UPDATE", "DELETE")
                       if f"BEFORE {op} ON" in row["sql"].upper() and "RAISE(ABORT" in row["sql"].upper()}
        missing = [f"{table}: no trigger refusing {op}" for table in APPEND_ONLY_TABLES
                   for op in ("UPDATE", "DELETE") if (table, op) not in refused]
        if missing:
            raise SchemaError("refusing to run on a log that is not append-only: " + "; ".join(missing))

    # -- writing --------------------------------------------------------------------------------

    @contextmanager
    def _locked_transaction(self) -> Iterator[SQLiteCursor]:
        with self._write_lock, self.datastore.get_connection(commit=True) as conn:
            curs = conn.cursor()
            curs.execute("PRAGMA synchronous=FULL")
            try:
                curs.execute("BEGIN IMMEDIATE")
                try:
                    yield curs
                except BaseException:
                    conn.rollback()
                    raise
            except sqlite3.Error as exc:  # the library's persistence errors, as on PostgreSQL
                raise OperationalError(str(exc)) from exc
            try:
                conn.commit()
            except sqlite3.Error as exc:  # e.g. a disk I/O error: whether it was written, only the file can tell
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
                raise CommitOutcomeUnknown(f"the commit failed: {exc}") from exc

    @contextmanager
    def write_session(self) -> Iterator[WriteSession]:
        with self.tree.transaction(), self._locked_transaction() as curs:
            yield _Session(curs, self.tree)

    # -- reading --------------------------------------------------------------------------------

    def size(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            return _size(curs)

    def read_range(self, start: int, end: int) -> list[StoredEvent]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT id, type, data, tags FROM {MAIN} WHERE id > ? AND id <= ? ORDER BY id",
                [start, end],
            )
            return [_row(r) for r in curs.fetchall()]

    # -- the verifiable log ----------------------------------------------------------------------

    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        with self.datastore.transaction(commit=False) as curs:
            return _read_nodes(curs, ids)

    def insert_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        with self._locked_transaction() as curs:
            curs.execute(
                f"INSERT INTO {CHECKPOINTS} (size, root, note, signed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.signed_at],
            )
            curs.execute("SELECT changes() AS n")
            return int(curs.fetchone()["n"]) == 1

    def insert_sealed_details(self, details: StoredDetails) -> bool:
        with self._locked_transaction() as curs:
            curs.execute(
                f"INSERT INTO {SEALED_DETAILS} (incident, sha256, details, stored_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (incident, sha256) DO NOTHING",
                [details.incident, details.sha256, details.data, details.stored_at],
            )
            curs.execute("SELECT changes() AS n")
            return int(curs.fetchone()["n"]) == 1

    def _append_transaction(self) -> Any:
        return self._locked_transaction()

    def _inserted(self, curs: Any) -> bool:
        curs.execute("SELECT changes() AS n")
        return int(curs.fetchone()["n"]) == 1

    def close(self) -> None:
        self.datastore.close()


class SQLiteDCBRecorder(DCBRecorder):
    """`eventsourcing.dcb` recorder interface over the SQLite log (reads, conditional append, polling)."""

    def __init__(self, store: SQLiteLogStore):
        self.store = store

    def read(
        self, query: DCBQuery | None = None, *, after: int | None = None, limit: int | None = None
    ) -> DCBReadResponse:
        """As the library's PostgreSQL recorder: `head` is the last position in the store when no `limit` is
        given, otherwise the last position returned (None if nothing is)."""
        after = after or 0
        head = self.store.size() if limit is None else None
        if query and query.items:
            events = self._read_query(query, after, limit)
        else:
            events = self.store.read_range(after, self.store.size() if limit is None else after + limit)
        if events:
            head = max(head or 0, events[-1].position)
        sequenced = [DCBSequencedEvent(DCBEvent(e.type, e.data, list(e.tags)), e.position) for e in events]
        return SimpleDCBReadResponse(events=iter(sequenced), head=head)

    def _read_query(self, query: DCBQuery, after: int, limit: int | None) -> list[StoredEvent]:
        """Events matching any item; an event matches an item if it carries all the item's tags (in the tag
        index) and, when the item names types, is of one of them."""
        with self.store.datastore.transaction(commit=False) as curs:
            matched: dict[int, StoredEvent] = {}
            for item in query.items:
                tags = list(dict.fromkeys(item.tags))
                if len(tags) == 1:
                    candidates = _select_tagged(curs, tags, after)
                elif tags:
                    marks = ",".join("?" * len(tags))
                    curs.execute(
                        f"SELECT id, type, data, tags FROM {MAIN} WHERE id IN (SELECT main_id FROM {TAGS} "
                        f"WHERE tag IN ({marks}) AND main_id > ? GROUP BY main_id HAVING COUNT(DISTINCT tag) = ?) "
                        "ORDER BY id",
                        [*tags, after, len(tags)],
                    )
                    candidates = [_row(r) for r in curs.fetchall()]
                else:
                    curs.execute(f"SELECT id, type, data, tags FROM {MAIN} WHERE id > ? ORDER BY id", [after])
                    candidates = [_row(r) for r in curs.fetchall()]
                for e in candidates:
                    if not item.types or e.type in item.types:
                        matched[e.position] = e
        events = [matched[k] for k in sorted(matched)]
        return events[:limit] if limit is not None else events

    def append(self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None) -> int:
        with self.store.write_session() as session:
            if condition is not None:  # an empty query matches every event
                clash = list(self.read(condition.fail_if_events_match, after=condition.after, limit=1))
                if clash:
                    raise IntegrityError(clash)
            start = session.size()
            stored = [StoredEvent(start + i + 1, e.type, e.data, tuple(e.tags)) for i, e in enumerate(events)]
            session.insert(stored)
            return stored[-1].position

    def subscribe(self, query: DCBQuery | None = None, *, after: int | None = None) -> "SQLitePollingSubscription":
        return SQLitePollingSubscription(self, query=query, after=after)


class SQLitePollingSubscription(DCBListenNotifySubscription[SQLiteDCBRecorder]):
    """SQLite has no LISTEN/NOTIFY: wake the library's pull loop every `POLL_SECONDS`."""

    def __init__(self, recorder: SQLiteDCBRecorder, query: DCBQuery | None = None, after: int | None = None):
        super().__init__(recorder=recorder, query=query, after=after)
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._has_been_stopped:
            self._has_been_notified.set()
            threading.Event().wait(POLL_SECONDS)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; CREATE TRIGGER bodies (BEGIN ... END;) stay whole."""
    statements, current = [], []
    in_trigger = False
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        upper = stripped.upper()
        if upper.startswith("CREATE TRIGGER"):
            in_trigger = True
        if (in_trigger and upper == "END;") or (not in_trigger and stripped.endswith(";")):
            statements.append("\n".join(current))
            current, in_trigger = [], False
    if current:
        statements.append("\n".join(current))
    return statements
