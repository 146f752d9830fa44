"""SQL run straight against a store's database, bypassing the application, as an intruder would."""

from __future__ import annotations

import sqlite3

import psycopg

from ledger.store.sqlite import sqlite_path


def raw_execute(url: str, sql: str) -> None:
    """Run `sql` on the database at `url` (sqlite:/// or postgresql://) in its own connection, committed."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url))
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)


def update_behind_the_triggers(url: str, table: str, key_column: str, key: int, column: str, value: bytes) -> None:
    """`UPDATE table SET column = value WHERE key_column = key` on an append-only table, as someone with the
    rights to do it would: the table's triggers are set aside for the statement and put back as they were, in
    one transaction, so that the store looks untouched (the service starts on it)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                                    [table]).fetchall()
            for name, _ in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            changed = conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key_column} = ?", [value, key]).rowcount
            for _, sql in triggers:
                conn.execute(sql)
            assert changed == 1, f"no row {key_column} = {key} in {table}"
            conn.execute("COMMIT")
        finally:
            conn.close()
    else:
        with psycopg.connect(url) as conn, conn.transaction():
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            changed = conn.execute(f"UPDATE {table} SET {column} = %s WHERE {key_column} = %s", [value, key]).rowcount
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            assert changed == 1, f"no row {key_column} = {key} in {table}"
