"""The production store: PostgreSQL, through the `eventsourcing` library's datastore and DCB recorder.

`PostgresLogStore` reuses `eventsourcing.dcb.postgres_tt.PostgresDCBRecorderTT` for reading by tags and for
LISTEN/NOTIFY subscriptions, on a schema created from `migrations/postgres/`. Writes do not use the library's
append functions: they take the same `LOCK TABLE ... IN EXCLUSIVE MODE` but assign positions explicitly, so
that the log stays gapless (a `bigserial` can skip numbers) and a whole batch of envelopes commits in one
transaction, which is what makes thousands of durable writes per second possible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from eventsourcing.dcb.postgres_tt import PostgresDCBRecorderTT
from eventsourcing.postgres import PostgresDatastore

from ledger.store import migrate
from ledger.store.base import LogStore, StoredEvent, WriteSession

TABLE_PREFIX = "tagledger_events"
MAIN = TABLE_PREFIX + "_tt_main"
TAGS = TABLE_PREFIX + "_tt_tag"


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


def _row(row: dict[str, Any]) -> StoredEvent:
    return StoredEvent(row["id"], row["type"], bytes(row["data"]), tuple(row["tags"]))


_SELECT_TAGGED = (
    f"SELECT id, type, data, tags FROM {MAIN} WHERE id IN "
    f"(SELECT main_id FROM {TAGS} WHERE tag = ANY(%s) AND main_id > %s) ORDER BY id"
)


class _Session(WriteSession):
    def __init__(self, curs: psycopg.Cursor[Any]):
        self._curs = curs

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
        if not events:
            return
        self._curs.executemany(
            f"INSERT INTO {MAIN} (id, type, data, tags) VALUES (%s, %s, %s, %s)",
            [(e.position, e.type, e.data, list(e.tags)) for e in events],
        )
        self._curs.execute(
            f"INSERT INTO {TAGS} (tag, main_id) SELECT * FROM unnest(%s::text[], %s::bigint[])",
            [[t for e in events for t in e.indexed], [e.position for e in events for _ in e.indexed]],
        )
        self._curs.execute(f"NOTIFY {MAIN}")


class PostgresLogStore(LogStore):
    backend = "postgres"

    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 4):
        self.url = url
        kwargs = _connect_kwargs(url)
        self._conninfo = {k: v for k, v in kwargs.items() if k != "schema"}
        if migrate:
            self.migrate()
        self.datastore = PostgresDatastore(**kwargs, pool_size=pool_size, max_overflow=4, lock_timeout=30)
        self.recorder = PostgresDCBRecorderTT(self.datastore, events_table_name=TABLE_PREFIX)

    def _connect(self) -> psycopg.Connection[Any]:
        info = self._conninfo
        return psycopg.connect(
            dbname=info["dbname"], host=info["host"], port=info["port"], user=info["user"],
            password=info["password"] or None, connect_timeout=5,
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

    # -- writing --------------------------------------------------------------------------------

    @contextmanager
    def write_session(self) -> Iterator[WriteSession]:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SET LOCAL lock_timeout = '30s'")
            curs.execute(f"LOCK TABLE {MAIN} IN EXCLUSIVE MODE")
            yield _Session(curs)

    # -- reading --------------------------------------------------------------------------------

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

    def close(self) -> None:
        self.datastore.close()
