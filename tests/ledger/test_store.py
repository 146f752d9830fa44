"""The log store on both backends: gapless positions, append-only enforced by the database, migrations."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from ledger.store import migrate
from ledger.store import StoredEvent, open_store
from ledger.store.base import SchemaError, StoredCheckpoint
from tests.ledger.raw_sql import raw_execute
from verification.merkle import leaf_hash, root_from_leaf_hashes


def _event(position: int, tags=("tag:A",)) -> StoredEvent:
    return StoredEvent(position, "test", b'{"x":%d}' % position, tuple(tags))


def test_positions_are_gapless_and_reads_follow_tags(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.write_session() as session:
            assert session.size() == 0
            session.insert([_event(1), _event(2, ("tag:B",)), _event(3, ("tag:A", "tag:B"))])
        assert store.size() == 3
        assert [e.position for e in store.read_tagged(["tag:A"])] == [1, 3]
        assert [e.position for e in store.read_tagged(["tag:B"], after=2)] == [3]
        assert [e.seq for e in store.read_range(1, 3)] == [1, 2]
        assert [e.position for e in store.iter_all(batch=2)] == [1, 2, 3]
        with pytest.raises(Exception, match="gapless"):
            with store.write_session() as session:
                session.insert([_event(5)])
        with pytest.raises(Exception, match="gapless"):  # a gap after a good row of the same insert (COPY)
            with store.write_session() as session:
                session.insert([_event(4), _event(6)])
        assert store.size() == 3
    finally:
        store.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE tagledger_events_tt_main SET type = 'forged' WHERE id = 1",
        "DELETE FROM tagledger_events_tt_main WHERE id = 2",
        "UPDATE tagledger_events_tt_tag SET tag = 'tag:Z'",
        "DELETE FROM tagledger_events_tt_tag",
        "UPDATE tagledger_merkle_nodes SET hash = hash",
        "DELETE FROM tagledger_merkle_nodes WHERE id = 0",
        "UPDATE tagledger_checkpoints SET note = 'forged'",
        "DELETE FROM tagledger_checkpoints",
    ],
)
def test_the_database_refuses_to_change_history(store_url: str, statement: str) -> None:
    store = open_store(store_url)
    try:
        with store.write_session() as session:
            session.insert([_event(1), _event(2)])
        store.insert_checkpoint(StoredCheckpoint(2, store.tree.root(2), "note\n", "2026-11-23T00:00:00.000000Z"))
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            raw_execute(store_url, statement)
        assert [e.data for e in store.read_range(0, 10)] == [b'{"x":1}', b'{"x":2}']
        assert [e.tags for e in store.read_tagged(["tag:A"])] == [("tag:A",), ("tag:A",)]
        assert store.tree.root(2) == root_from_leaf_hashes([leaf_hash(b'{"x":1}'), leaf_hash(b'{"x":2}')])
        assert store.latest_checkpoint().note == "note\n"
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_refuses_truncate(fresh_pg_url: str) -> None:
    store = open_store(fresh_pg_url)
    try:
        with store.write_session() as session:
            session.insert([_event(1)])
        with pytest.raises(psycopg.Error, match="append-only"):
            raw_execute(fresh_pg_url, "TRUNCATE tagledger_events_tt_main CASCADE")
        assert store.size() == 1
    finally:
        store.close()


def test_migrations_are_recorded_and_idempotent(store_url: str) -> None:
    store = open_store(store_url)
    every = {m.version for m in migrate.migrations_for(store.backend)}
    try:
        assert store.applied_migrations() == every
        assert store.migrate() == []
    finally:
        store.close()
    again = open_store(store_url)
    try:
        assert again.applied_migrations() == every
    finally:
        again.close()


def test_failed_write_session_leaves_nothing(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with pytest.raises(RuntimeError):
            with store.write_session() as session:
                session.insert([_event(1)])
                raise RuntimeError("crash before commit")
        assert store.size() == 0
        assert store.read_tagged(["tag:A"]) == []
    finally:
        store.close()


def test_sqlite_refuses_a_log_without_its_triggers(tmp_sqlite_url: str) -> None:
    open_store(tmp_sqlite_url).close()
    raw_execute(tmp_sqlite_url, "DROP TRIGGER tagledger_merkle_no_delete")
    with pytest.raises(SchemaError, match="tagledger_merkle_nodes: no trigger refusing DELETE"):
        open_store(tmp_sqlite_url)


def test_a_store_written_before_the_tree_existed_is_back_filled(tmp_sqlite_url: str) -> None:
    """A ledger created by a version without the Merkle tree gets its tree nodes when opened."""
    store = open_store(tmp_sqlite_url)
    with store.write_session() as session:
        session.insert([_event(1), _event(2), _event(3)])
    store.close()
    raw_execute(tmp_sqlite_url, "DROP TRIGGER tagledger_merkle_no_delete")
    raw_execute(tmp_sqlite_url, "DELETE FROM tagledger_merkle_nodes")
    raw_execute(tmp_sqlite_url, """CREATE TRIGGER tagledger_merkle_no_delete BEFORE DELETE ON tagledger_merkle_nodes
        BEGIN SELECT RAISE(ABORT, 'tagledger: the log is append-only (DELETE refused)'); END""")
    store = open_store(tmp_sqlite_url)
    try:
        assert store.tree_size() == 3
        assert store.tree.root(3) == root_from_leaf_hashes([leaf_hash(b'{"x":%d}' % i) for i in (1, 2, 3)])
    finally:
        store.close()
