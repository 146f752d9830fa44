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
