"""Count the SQL statements and the transactions a piece of code makes on PostgreSQL (psycopg 3), in-process.

A statement is counted at `Cursor.execute`/`executemany` and `Connection.execute` (transaction control -- BEGIN,
COMMIT, ROLLBACK, SAVEPOINT, RELEASE -- is not a query). A transaction is counted when one starts: a
`Connection.transaction()` block entered on an idle connection, or a statement run on an idle connection (in
autocommit mode it is a transaction of its own; otherwise psycopg opens one implicitly). Only the calling
thread's work is counted, so that background threads (checkpoint publisher, projection followers) do not blur it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg.pq import TransactionStatus

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION", "SET ")


@dataclass
class Counts:
    queries: int = 0
    transactions: int = 0
    statements: list[str] = field(default_factory=list)


def _text(query: object) -> str:
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    if isinstance(query, str):
        return query
    return str(getattr(query, "as_string", lambda _: repr(query))(None)) if hasattr(query, "as_string") else repr(query)


@contextmanager
def counting() -> Iterator[Counts]:
    counts = Counts()
    me = threading.get_ident()
    originals = (psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection.execute,
                 psycopg.Connection.transaction)

    def note(conn: psycopg.Connection, query: object) -> None:
        if threading.get_ident() != me:
            return
        text = _text(query).lstrip()
        if conn.info.transaction_status == TransactionStatus.IDLE:
            counts.transactions += 1
        if not text.upper().startswith(_CONTROL):
            counts.queries += 1
            counts.statements.append(" ".join(text.split())[:160])

    def cursor_execute(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
        note(self.connection, query)
        return originals[0](self, query, *args, **kwargs)

    def cursor_executemany(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
        note(self.connection, query)
        return originals[1](self, query, *args, **kwargs)

    def connection_execute(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
        # Connection.execute runs through a cursor's execute: counted there
        return originals[2](self, query, *args, **kwargs)

    @contextmanager
    def transaction(self, *args, **kwargs):  # noqa: ANN001, ANN202
        if threading.get_ident() == me and self.info.transaction_status == TransactionStatus.IDLE:
            counts.transactions += 1
        with originals[3](self, *args, **kwargs) as tx:
            yield tx

    psycopg.Cursor.execute, psycopg.Cursor.executemany = cursor_execute, cursor_executemany
    psycopg.Connection.execute, psycopg.Connection.transaction = connection_execute, transaction
    try:
        yield counts
    finally:
        (psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection.execute,
         psycopg.Connection.transaction) = originals
