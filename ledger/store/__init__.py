"""Where the log lives: an embedded SQLite file or a PostgreSQL database, behind one small interface."""

from ledger.store.base import LogStore, StoredEvent, WriteSession, open_store

__all__ = ["LogStore", "StoredEvent", "WriteSession", "open_store"]
