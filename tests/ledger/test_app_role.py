"""PostgreSQL: the service's own role cannot change history, and the service refuses a schema that would let it.

Migration 003 creates the role `tagledger_app` with SELECT and INSERT on the log's tables (events, tags,
Merkle nodes, checkpoints) and nothing more; not owning them, it can neither drop nor disable the append-only
triggers. These tests log in as a member of that role, as a production deployment does.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from ledger.store import open_store
from ledger.store.postgres import APPEND_ONLY_TABLES, SchemaError
from tests.ledger.world import attach_and_deliver, make_world

pytestmark = pytest.mark.postgres


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture
def app_url(fresh_pg_url: str) -> Iterator[str]:
    """The fresh database, migrated by its owner, and a URL that logs in as a new member of tagledger_app."""
    open_store(fresh_pg_url).close()  # the owner (a superuser here) applies the migrations
    user = "tl_app_" + secrets.token_hex(4)
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN IN ROLE tagledger_app")
    try:
        yield _as_user(fresh_pg_url, user)
    finally:
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [user]
            )
        # the role owns nothing; it may still have connected to other databases' fixtures: none here
        with psycopg.connect(fresh_pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {user}")


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET {column} = {column}",
        "DELETE FROM {table}",
        "TRUNCATE {table} CASCADE",
        "ALTER TABLE {table} DISABLE TRIGGER ALL",
        "DROP TABLE {table} CASCADE",
    ],
)
def test_the_application_role_cannot_change_history(app_url: str, table: str, statement: str) -> None:
    world = make_world(app_url, tags=3)  # the service, logged in as the application role, writes fine
    try:
        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        size = world.ledger.store.size()
    finally:
        world.ledger.close()
    column = {"tagledger_events_tt_main": "type", "tagledger_events_tt_tag": "tag",
              "tagledger_merkle_nodes": "hash", "tagledger_checkpoints": "note", "tagledger_labels": "sig",
              "tagledger_rejected_attempts": "rule", "tagledger_sealed_details": "sha256",
              "tagledger_sealed_evidence": "sha256"}[table]
    with psycopg.connect(app_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement.format(table=table, column=column))
    store = open_store(app_url)
    try:
        assert store.size() == size and store.tree_size() == size
        assert store.latest_checkpoint() is not None and store.latest_checkpoint().size == size
    finally:
        store.close()


def test_the_service_runs_as_the_application_role(app_url: str) -> None:
    """Write, follow and rebuild the projection, publish checkpoints: all with SELECT/INSERT on the log."""
    world = make_world(app_url, tags=4)
    try:
        attach_and_deliver(world, "KAL-000001")
        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        projection = world.ledger.start_projection(follow=False)
        projection.catch_up()
        before = projection.summary()
        projection.drop()
        projection.catch_up()
        assert projection.summary() == before
        assert world.ledger.publish_checkpoint().size == world.ledger.store.size()
    finally:
        world.ledger.close()


@pytest.mark.parametrize(
    "sabotage",
    [
        "ALTER TABLE tagledger_events_tt_main DISABLE TRIGGER tagledger_events_append_only",
        "DROP TRIGGER tagledger_checkpoints_no_truncate ON tagledger_checkpoints",
        "GRANT UPDATE ON tagledger_merkle_nodes TO tagledger_app",
        "GRANT DELETE ON tagledger_events_tt_tag TO tagledger_app",
    ],
)
def test_the_service_refuses_a_schema_that_allows_changes(fresh_pg_url: str, sabotage: str) -> None:
    open_store(fresh_pg_url).close()
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute(sabotage)
    with pytest.raises(SchemaError, match="refusing to run on a log that is not append-only"):
        open_store(fresh_pg_url)
