"""The production store: PostgreSQL, through the `eventsourcing` library's datastore and DCB recorder.

`PostgresLogStore` reuses `eventsourcing.dcb.postgres_tt.PostgresDCBRecorderTT` for reading by tags and for
LISTEN/NOTIFY subscriptions, on a schema created from `migrations/postgres/`. Writes do not use the library's
append functions: one appender at a time holds an advisory lock (the library's `LOCK TABLE ... IN EXCLUSIVE
MODE` needs UPDATE, DELETE or TRUNCATE privilege, which the service's role `tagledger_app` does not have) and
assigns positions explicitly, so that the log stays gapless (a `bigserial` can skip numbers) and a whole batch
of envelopes commits in one transaction, with the Merkle tree nodes it completes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from eventsourcing import persistence
from eventsourcing.dcb.postgres_tt import PostgresDCBRecorderTT
from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import dict_row

from ledger.store import migrate
from ledger.store.base import (
    CHECKPOINTS,
    NODES,
    REJECTED,
    CommitOutcomeUnknown,
    SEALED_DETAILS,
    SEALED_EVIDENCE,
    LogStore,
    LogWatcher,
    SchemaError,
    StoredCheckpoint,
    StoredDetails,
    StoredEvent,
    ViewRead,
    WriteSession,
    keep_rejected,
)
from ledger.tree.log_tree import LogTree

TABLE_PREFIX = "tagledger_events"
MAIN = TABLE_PREFIX + "_tt_main"
TAGS = TABLE_PREFIX + "_tt_tag"
FLAG_TAGS = "tagledger_flags_tags"  # ledger/flags.py TAGS (migration 005)
WRITER_LOCK = 0x7461676C6F67  # advisory lock key held by the one transaction that appends to the log


class _SnapshotDatastore(PostgresDatastore):
    """The library's datastore, plus a read snapshot a thread can hold (`PostgresLogStore.reading`): while it is
    held, every `transaction()` and `cursor()` of that thread (the store's reads, the library's recorders, the
    projections' reads, `get_connection()` of the library's tracking recorder) runs on the snapshot's connection, inside its one transaction, instead of taking a pool
    connection and a transaction per statement."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.snapshots = threading.local()

    def pinned(self) -> psycopg.Connection[Any] | None:
        return getattr(self.snapshots, "conn", None)

    @contextmanager
    def get_connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self.pinned()
        if conn is None:
            with super().get_connection() as conn:
                yield conn
            return
        yield conn

    @contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        conn = self.pinned()
        if conn is None or commit:  # a write in a snapshot fails on its READ ONLY transaction: loudly
            with super().transaction(commit=commit) as curs:
                yield curs
            return
        with conn.cursor() as curs:
            yield curs

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        conn = self.pinned()
        if conn is None:
            with super().cursor() as curs:
                yield curs
            return
        with conn.cursor() as curs:
            yield curs


def _connect_kwargs(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "dbname": unquote(parts.path.lstrip("/")) or "postgres",
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "") or "postgres",
        "password": unquote(parts.password or ""),
        "schema": query.get("schema", ""),
    }


def _persistence_error(exc: psycopg.Error) -> persistence.PersistenceError:
    """psycopg's error as the `eventsourcing` library's (as its datastore does for the pool's connections)."""
    for psycopg_class, library_class in (
        (psycopg.IntegrityError, persistence.IntegrityError), (psycopg.DataError, persistence.DataError),
        (psycopg.OperationalError, persistence.OperationalError), (psycopg.InterfaceError, persistence.InterfaceError),
        (psycopg.ProgrammingError, persistence.ProgrammingError), (psycopg.InternalError, persistence.InternalError),
        (psycopg.DatabaseError, persistence.DatabaseError),
    ):
        if isinstance(exc, psycopg_class):
            return library_class(str(exc))
    return persistence.PersistenceError(str(exc))


def _close_quietly(conn: psycopg.Connection[Any] | None) -> None:
    """Close a connection given up on (it may already be broken: that is why)."""
    if conn is not None:
        try:
            conn.close()
        except psycopg.Error:
            pass


def _row(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(row["id"], row["type"], bytes(row["data"]), tuple(row["tags"]))


_SELECT_TAGGED = (
    f"SELECT id, type, data, tags FROM {MAIN} WHERE id IN "
    f"(SELECT main_id FROM {TAGS} WHERE tag = ANY(%s) AND main_id > %s) ORDER BY id"
)


APPEND_ONLY_TABLES = (MAIN, TAGS, NODES, CHECKPOINTS, "tagledger_labels", "tagledger_rejected_attempts",
                      SEALED_DETAILS, SEALED_EVIDENCE)
APP_ROLE = "tagledger_app"


def _read_nodes(curs: psycopg.Cursor[Any], ids: Sequence[int]) -> dict[int, bytes]:
    # the ids as one array literal in text: psycopg adapts a Python list item by item (a third of the client's CPU
    # for a proof's few nodes, issue 13); the same index scan (`id = ANY('{...}'::bigint[])`)
    curs.execute(f"SELECT id, hash FROM {NODES} WHERE id = ANY(%s::bigint[])", ["{" + ",".join(map(str, ids)) + "}"])
    return {int(r["id"]): bytes(r["hash"]) for r in curs.fetchall()}


def _copy(curs: psycopg.Cursor[Any], table: str, columns: Sequence[str], types: Sequence[str],
          rows: Sequence[Sequence[Any]]) -> None:
    """Append `rows` to `table` with one binary `COPY FROM STDIN` (needs only INSERT privilege)."""
    if not rows:
        return
    with curs.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


class _Session(WriteSession):
    def __init__(self, curs: psycopg.Cursor[Any], tree: LogTree):
        self._curs = curs
        self._tree = tree

    def size(self) -> int:
        self._curs.execute(f"SELECT COALESCE(MAX(id), 0) AS n FROM {MAIN}")
        return int(self._curs.fetchone()["n"])

    def read_tagged(self, tags: Sequence[str], after: int = 0) -> list[StoredEvent]:
        self._curs.execute(_SELECT_TAGGED, [list(dict.fromkeys(tags)), after])
        return [_row(r) for r in self._curs.fetchall()]

    def read_range(self, start: int, end: int) -> list[StoredEvent]:
        self._curs.execute(
            f"SELECT id, type, data, tags FROM {MAIN} WHERE id > %s AND id <= %s ORDER BY id", [start, end]
        )
        return [_row(r) for r in self._curs.fetchall()]

    def insert(self, events: Sequence[StoredEvent]) -> None:
        """The rows by `COPY ... FROM STDIN` in binary: the same rows as INSERTs, and the same triggers run for
        each (gapless positions, append-only), at a fraction of the client's CPU (issue 13: psycopg's dumping
        of the tag arrays in text was a twentieth of the server's profile)."""
        if not events:
            return
        _copy(self._curs, MAIN, ("id", "type", "data", "tags"), ("int8", "text", "bytea", "text[]"),
              [(e.position, e.type, e.data, list(e.tags)) for e in events])
        _copy(self._curs, TAGS, ("tag", "main_id"), ("text", "int8"),
              [(t, e.position) for e in events for t in e.indexed])
        self._tree.append(self, events)
        self._curs.execute(f"NOTIFY {MAIN}")

    def insert_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        _copy(self._curs, NODES, ("id", "hash"), ("int8", "bytea"), rows)

    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        return _read_nodes(self._curs, ids)

    def keep_rejected(self, rows: Sequence[tuple[str, str, str, int, str, bytes]]) -> None:
        keep_rejected(self._curs, "%s", rows)


class PostgresLogStore(LogStore):
    backend = "postgres"
    placeholder = "%s"

    @staticmethod
    def _checkpoint_of(row: Any) -> StoredCheckpoint:
        signed_at = row["signed_at"].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return StoredCheckpoint(int(row["size"]), bytes(row["root"]), row["note"], signed_at)

    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 4, read_only: bool = False):
        """`read_only`: a hot standby that public reads are sent to (ledger/replicas.py): nothing is migrated,
        checked or back-filled, and every transaction of its pool is READ ONLY, so that a read which tried to
        write would fail loudly rather than write (a standby refuses any write anyway)."""
        self.url = url
        self.read_only = read_only
        kwargs = _connect_kwargs(url)
        self._conninfo = {k: v for k, v in kwargs.items() if k != "schema"}
        if migrate and not read_only:
            self.migrate()
        self.datastore = _SnapshotDatastore(**kwargs, pool_size=pool_size, max_overflow=4, lock_timeout=30)
        if read_only:  # before the pool opens (the recorder below opens it)
            self.datastore.pool.kwargs["options"] = "-c default_transaction_read_only=on"
        self._writer: psycopg.Connection[Any] | None = None  # the write sessions' own connection
        self._writer_lock = threading.Lock()
        self.recorder = PostgresDCBRecorderTT(self.datastore, events_table_name=TABLE_PREFIX)
        self.tree = LogTree(self)
        if read_only:
            return
        self.check_append_only()
        if self.tree_size() < self.size():
            self.tree.backfill()

    def _connect(self, **options: Any) -> psycopg.Connection[Any]:
        info = self._conninfo
        return psycopg.connect(
            dbname=info["dbname"], host=info["host"], port=info["port"], user=info["user"],
            password=info["password"] or None, connect_timeout=5, **options,
        )

    # -- schema ---------------------------------------------------------------------------------

    def applied_migrations(self) -> set[int]:
        with self._connect() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", [migrate.TABLE]).fetchone()[0]
            if exists is None:
                return set()
            return {r[0] for r in conn.execute(f"SELECT version FROM {migrate.TABLE}")}

    def migrate(self) -> list[str]:
        done = []
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7461676)")  # one migrator at a time
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {migrate.TABLE} (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {r[0] for r in conn.execute(f"SELECT version FROM {migrate.TABLE}")}
            for m in migrate.pending(applied, "postgres"):
                conn.execute(m.sql)
                conn.execute(f"INSERT INTO {migrate.TABLE} (version, name) VALUES (%s, %s)", [m.version, m.name])
                done.append(m.name)
        return done

    def check_append_only(self) -> None:
        """Refuse a schema on which the log could be changed: every log table must have its enabled triggers
        refusing UPDATE, DELETE and TRUNCATE, and the application role no privilege to do either."""
        problems = []
        with self.datastore.transaction(commit=False) as curs:
            for table in APPEND_ONLY_TABLES:
                curs.execute(
                    "SELECT t.tgtype, t.tgenabled FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                    "WHERE t.tgrelid = to_regclass(%s) AND p.proname = 'tagledger_refuse_change' AND NOT t.tgisinternal",
                    [table],
                )
                refused = set()
                for row in curs.fetchall():
                    if row["tgenabled"] == "D":
                        continue
                    tgtype = int(row["tgtype"])  # pg_trigger.tgtype bits: 8 DELETE, 16 UPDATE, 32 TRUNCATE
                    refused |= {op for bit, op in ((8, "DELETE"), (16, "UPDATE"), (32, "TRUNCATE")) if tgtype & bit}
                missing = {"UPDATE", "DELETE", "TRUNCATE"} - refused
                if missing:
                    problems.append(f"{table}: no enabled trigger refusing {', '.join(sorted(missing))}")
                curs.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE])
                if curs.fetchone() is None:
                    problems.append(f"role {APP_ROLE} does not exist")
                    continue
                curs.execute(
                    "SELECT has_table_privilege(%s, %s, 'UPDATE') OR has_table_privilege(%s, %s, 'DELETE') "
                    "OR has_table_privilege(%s, %s, 'TRUNCATE') AS can", [APP_ROLE, table] * 3,
                )
                if curs.fetchone()["can"]:
                    problems.append(f"{table}: role {APP_ROLE} may UPDATE, DELETE or TRUNCATE it")
        if problems:
            raise SchemaError("refusing to run on a log that is not append-only: " + "; ".join(problems))

    # -- writing --------------------------------------------------------------------------------

    @contextmanager
    def write_session(self) -> Iterator[WriteSession]:
        """A transaction on the writer's own connection (never one of the readers' pool: a burst of reads
        cannot make a write wait for a connection), holding the log's advisory lock.

        One appender at a time. An advisory lock rather than `LOCK TABLE ... IN EXCLUSIVE MODE`, which needs
        UPDATE, DELETE or TRUNCATE privilege: the service's role has none of these (migration 003). A failure
        before COMMIT rolls back and raises a `PersistenceError` (nothing was written); a failure of COMMIT
        itself raises `CommitOutcomeUnknown`.
        """
        if self.read_only:
            raise persistence.OperationalError("this store is opened read-only (a replica): nothing is written there")
        # BEGIN, COMMIT and ROLLBACK are sent as plain statements (`prepare=False`), never as prepared ones.
        with self._writer_lock, self.tree.transaction():
            conn = self._begin()
            try:
                curs = conn.cursor()
                curs.execute("SET LOCAL lock_timeout = '30s'")
                curs.execute("SELECT pg_advisory_xact_lock(%s)", [WRITER_LOCK])
                yield _Session(curs, self.tree)
            except BaseException as exc:
                self._rollback(conn)
                if isinstance(exc, psycopg.Error):
                    raise _persistence_error(exc) from exc
                raise
            try:
                conn.execute("COMMIT", prepare=False)
            except psycopg.Error as exc:
                self._drop_writer()
                raise CommitOutcomeUnknown(f"the connection failed during COMMIT: {exc}") from exc

    def _begin(self) -> psycopg.Connection[Any]:
        """BEGIN on the writer's connection, opened on first use; reopened once if it was lost while idle
        (nothing was sent yet, so nothing can have been written)."""
        for attempt in (1, 2):
            conn = self._writer
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._writer = self._connect(autocommit=True, row_factory=dict_row)
                conn.execute("BEGIN", prepare=False)
                return conn
            except psycopg.Error as exc:
                self._drop_writer()
                if attempt == 2 or not isinstance(exc, psycopg.OperationalError):
                    raise _persistence_error(exc) from exc
        raise AssertionError("unreachable")

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        try:
            if not conn.broken:
                conn.execute("ROLLBACK", prepare=False)
                return
        except psycopg.Error:
            pass
        self._drop_writer()

    def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        _close_quietly(conn)

    # -- reading --------------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Every read of this thread in the block sees one snapshot of the store, in one READ ONLY, REPEATABLE
        READ transaction on one pool connection (a tag view: one transaction rather than one per statement;
        issue 13). Nested blocks join the outer one. Allowed on a hot standby too."""
        datastore: _SnapshotDatastore = self.datastore  # type: ignore[assignment]
        if datastore.pinned() is not None:
            yield
            return
        with PostgresDatastore.get_connection(datastore) as conn:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                datastore.snapshots.conn = conn
                try:
                    yield
                finally:
                    datastore.snapshots.conn = None

    def read_tagged(self, tags: Sequence[str], after: int = 0) -> list[StoredEvent]:
        """Events carrying any of `tags`, after `after`: one query (the library's recorder sends two, the first
        for a log head this store does not use). The same rows, in the same order (tests/ledger/
        test_tag_view_queries.py compares the two)."""
        wanted = list(dict.fromkeys(tags))
        if not wanted:
            return []
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_TAGGED, [wanted, after])
            return [_row(r) for r in curs.fetchall()]

    def read_tagged_groups(self, groups: Sequence[tuple[Sequence[str], int]]) -> list[list[StoredEvent]]:
        """`read_tagged` of several (tags, after) groups in one query: each group's events, in log order."""
        tags = [t for group, _ in groups for t in group]
        group_of = [i for i, (group, _) in enumerate(groups) for _ in group]
        afters = [after for group, after in groups for _ in group]
        found: list[list[StoredEvent]] = [[] for _ in groups]
        if not tags:
            return found
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT m.id, m.type, m.data, m.tags, s.g FROM (SELECT DISTINCT t.main_id, q.g FROM "
                f"unnest(%s::text[], %s::int[], %s::bigint[]) AS q(tag, g, after) JOIN {TAGS} t ON t.tag = q.tag "
                f"AND t.main_id > q.after) s JOIN {MAIN} m ON m.id = s.main_id ORDER BY s.g, m.id",
                [tags, group_of, afters],
            )
            for r in curs.fetchall():
                found[int(r["g"])].append(_row(r))
        return found

    def read_view(self, groups: Sequence[tuple[Sequence[str], int]], tracking: str | None = None,
                  own: Sequence[str] | None = None, nodes: Sequence[int] = ()) -> ViewRead:
        """`LogStore.read_view` in one query, as rows of one shape (id, type, data, tags, g, note, signed_at): the
        groups' events (g >= 0), the projection's position (g = -1), the latest checkpoint (g = -2), for the
        tags `own` their flags (g = -3: tag, state) and their refused attempts (g = -4: id, tag, envelope, [rule,
        received, hash, log_size]), and the Merkle tree nodes `nodes` (g = -5: id, hash)."""
        tags = [t for group, _ in groups for t in group]
        group_of = [i for i, (group, _) in enumerate(groups) for _ in group]
        afters = [after for group, after in groups for _ in group]
        parts = [
            f"SELECT m.id, m.type, m.data, m.tags, s.g, NULL::text AS note, NULL::timestamptz AS signed_at FROM "
            f"(SELECT DISTINCT t.main_id, q.g FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS q(tag, g, after) "
            f"JOIN {TAGS} t ON t.tag = q.tag AND t.main_id > q.after) s JOIN {MAIN} m ON m.id = s.main_id",
            f"SELECT * FROM (SELECT size, NULL::text, root, NULL::text[], -2, note, signed_at FROM {CHECKPOINTS} "
            f"ORDER BY size DESC LIMIT 1) c",
        ]
        params: list[Any] = [tags, group_of, afters]
        if tracking is not None:
            parts.append("SELECT COALESCE(MAX(notification_id), 0), NULL, NULL, NULL, -1, NULL, NULL FROM "
                         "tagledger_projection_tracking WHERE application_name = %s")
            params.append(tracking)
        if own is not None:
            if tracking is not None:
                parts.append(f"SELECT NULL::bigint, tag, state, NULL, -3, NULL, NULL FROM {FLAG_TAGS} "
                             "WHERE codes <> '' AND tag = ANY(%s)")
                params.append(list(own))
            parts.append(f"SELECT id, tag, envelope, ARRAY[rule, received, hash, log_size::text], -4, NULL, NULL "
                         f"FROM {REJECTED} WHERE tag = ANY(%s)")
            params.append(list(own))
        if nodes:
            parts.append(f"SELECT id, NULL, hash, NULL, -5, NULL, NULL FROM {NODES} WHERE id = ANY(%s)")
            params.append(list(nodes))
        found: list[list[StoredEvent]] = [[] for _ in groups]
        found_nodes: dict[int, bytes] = {}
        checkpoint = tracked = None
        flags: list[dict[str, Any]] | None = [] if own is not None and tracking is not None else None
        attempts: list[dict[str, Any]] | None = [] if own is not None else None
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(" UNION ALL ".join(f"({p})" for p in parts) + " ORDER BY g, id", params)
            for r in curs.fetchall():
                g = int(r["g"])
                if g >= 0:
                    found[g].append(_row(r))
                elif g == -2:
                    checkpoint = self._checkpoint_of({**r, "size": r["id"], "root": r["data"]})
                elif g == -1:
                    tracked = int(r["id"])
                elif g == -3:
                    flags.append({"tag": r["type"], "state": r["data"]})  # type: ignore[union-attr]
                elif g == -5:
                    found_nodes[int(r["id"])] = bytes(r["data"])
                else:
                    rule, received, hash_, log_size = r["tags"]
                    attempts.append({"id": r["id"], "tag": r["type"], "rule": rule, "received": received,  # type: ignore[union-attr]
                                     "log_size": int(log_size), "hash": hash_, "envelope": r["data"]})
        return ViewRead(found, checkpoint, tracked, flags, attempts, found_nodes)

    def read_site_streams(self, site: str) -> list[StoredEvent]:
        """`LogStore.read_site_streams` in one query (a report's stream is its row's first tag)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                # the streams as one array (an InitPlan, computed once), so that the tag index is used
                f"SELECT id, type, data, tags FROM {MAIN} WHERE id IN (SELECT main_id FROM {TAGS} WHERE tag = ANY("
                f"ARRAY[%s::text] || ARRAY(SELECT r.tags[1] FROM {TAGS} rt JOIN {MAIN} r ON r.id = rt.main_id "
                "WHERE rt.tag = %s))) ORDER BY id", [f"site:{site}", f"risk:{site}"],
            )
            return [_row(r) for r in curs.fetchall()]

    def size(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT COALESCE(MAX(id), 0) AS n FROM {MAIN}")
            return int(curs.fetchone()["n"])

    def read_range(self, start: int, end: int) -> list[StoredEvent]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT id, type, data, tags FROM {MAIN} WHERE id > %s AND id <= %s ORDER BY id", [start, end]
            )
            return [_row(r) for r in curs.fetchall()]

    # -- the verifiable log ----------------------------------------------------------------------

    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        with self.datastore.transaction(commit=False) as curs:
            return _read_nodes(curs, ids)

    def insert_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {CHECKPOINTS} (size, root, note, signed_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.signed_at],
            )
            return curs.rowcount == 1

    def insert_sealed_details(self, details: StoredDetails) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                f"INSERT INTO {SEALED_DETAILS} (incident, sha256, details, stored_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (incident, sha256) DO NOTHING",
                [details.incident, details.sha256, details.data, details.stored_at],
            )
            return curs.rowcount == 1

    def watch(self) -> LogWatcher:
        return PostgresLogWatcher(self)

    def wake_listeners(self) -> None:
        """Notify the log's channel (without writing anything), so that subscriptions re-check at once."""
        try:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(f"NOTIFY {self.recorder.channel_name}")
        except Exception:  # noqa: BLE001 - only a speed-up of shutting down
            pass

    def close(self) -> None:
        with self._writer_lock:
            self._drop_writer()
        self.datastore.close()


class PostgresLogWatcher(LogWatcher):
    """Waits on `LISTEN` for the `NOTIFY` every write session sends as it commits (`_Session.insert`), on a
    connection of its own: an idle service runs no transaction at all (issue 13). The first `wait` returns True
    (whatever was written before the LISTEN); after losing its connection it reconnects and returns True (a
    notification may have been missed)."""

    CHECK_SECONDS = 1.0
    """Longest wait inside the driver before looking at `stop` again (`stop` also wakes it with a NOTIFY)."""

    def __init__(self, store: PostgresLogStore):
        super().__init__(store)
        self._conn: psycopg.Connection[Any] | None = None
        self._fresh = True  # nothing reported since (re)connecting

    def _listen(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            store: PostgresLogStore = self.store  # type: ignore[assignment]
            self._conn = store._connect(autocommit=True)  # noqa: SLF001
            self._conn.execute(f"LISTEN {MAIN}")
            self._fresh = True
        return self._conn

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            try:
                conn = self._listen()
                if self._fresh:
                    self._fresh = False
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                for _ in conn.notifies(timeout=min(self.CHECK_SECONDS, left), stop_after=1):
                    return not self._stop.is_set()
            except psycopg.Error as exc:
                logging.getLogger("tagledger.store").warning("log watcher lost its connection: %s", exc)
                self._drop()
                self._stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        _close_quietly(conn)

    def stop(self) -> None:
        super().stop()
        self.store.wake_listeners()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._stop.set()
        self._drop()
