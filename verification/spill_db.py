"""A replay's scratch database on disk: a temporary SQLite file, made on first use, deleted after.

The replay keeps what grows with the log -- every tag's custody state, every event id -- in memory only up
to a constant amount and puts the rest here (:mod:`verification.tag_store`, :mod:`verification.event_ids`).
:class:`SpillDatabase` is one SQLite database (the standard library's ``sqlite3``) in a directory of its
own under ``$TMPDIR`` (:func:`tempfile.mkdtemp`), created only when :attr:`SpillDatabase.connection` is first
used, so a short replay never touches the disk. It is scratch space, not a store: no journal, no ``fsync``,
an exclusive lock, and a page cache of at most :data:`PAGE_CACHE_BYTES`. The directory is deleted by
:meth:`SpillDatabase.close`, or when the object is garbage-collected, or when the interpreter exits.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import weakref

__all__ = ["PAGE_CACHE_BYTES", "PAGE_SIZE", "SpillDatabase"]

PAGE_CACHE_BYTES = 4 << 20
"""SQLite's page cache for one scratch database (its memory does not grow with the file)."""
PAGE_SIZE = 16384
"""Bytes per page: tag state records are ~600 bytes, so a larger page keeps the B-tree shallow."""


def _remove(connection: sqlite3.Connection, directory: str, owner: int) -> None:
    if os.getpid() != owner:  # a forked child's copy: the file is its parent's
        return
    connection.close()
    shutil.rmtree(directory, ignore_errors=True)


class SpillDatabase:
    """A temporary SQLite database with ``schema`` (SQL statements run when it is made)."""

    def __init__(self, name: str, schema: str) -> None:
        self._name = name
        self._schema = schema
        self._connection: sqlite3.Connection | None = None
        self._directory: str | None = None
        self._cleanup: weakref.finalize | None = None

    @property
    def opened(self) -> bool:
        """Whether the database exists (it is made by the first use of :attr:`connection`)."""
        return self._connection is not None

    @property
    def directory(self) -> str | None:
        """The temporary directory holding the file, once made."""
        return self._directory

    @property
    def connection(self) -> sqlite3.Connection:
        connection = self._connection
        if connection is None:
            connection = self._open()
        return connection

    def _open(self) -> sqlite3.Connection:
        directory = tempfile.mkdtemp(prefix="tagledger-replay-")
        try:
            # isolation_level=None: no implicit transactions; the callers batch their writes explicitly
            connection = sqlite3.connect(os.path.join(directory, self._name + ".sqlite"), isolation_level=None,
                                         check_same_thread=False)  # the finalizer may close it from any thread
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._cleanup = weakref.finalize(self, _remove, connection, directory, os.getpid())
        self._connection, self._directory = connection, directory
        connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        connection.execute(f"PRAGMA cache_size = {-(PAGE_CACHE_BYTES >> 10)}")  # negative: in KiB
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "locking_mode = EXCLUSIVE", "temp_store = FILE"):
            connection.execute(f"PRAGMA {pragma}")
        connection.executescript(self._schema)
        return connection

    def write_many(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        """``sql`` for each of ``rows``, in one transaction."""
        connection = self.connection
        connection.execute("BEGIN")
        try:
            connection.executemany(sql, rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        """Close the database and delete its directory (a later use makes a new, empty one)."""
        if self._cleanup is not None:
            self._cleanup()
        self._connection = None
        self._directory = None
        self._cleanup = None
