"""The ASGI entry point of one HTTP worker process started by `tagledger serve` (a uvicorn factory).

`tagledger serve` runs uvicorn's process supervisor: it binds the socket, keeps the custody projection up to
date in its own process, and starts `--workers` worker processes, each of which calls `create_app_from_env()`
and so has its own `Ledger` (connection pool and writer thread) on the same store. Writes from several
workers stay correct because every write transaction holds the store's write lock (docs/architecture.md).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.app import create_app
from ledger.replicas import DEFAULT_MAX_LAG_SECONDS, MAX_LAG_ENV, READ_DB_ENV, ReadRouter, read_db_urls
from ledger.service import Ledger

STORE_ENV = "TAGLEDGER_SERVE_DB"
"""The store URL the supervisor hands to its workers."""


def create_app_from_env() -> FastAPI:
    ledger = Ledger.open(os.environ[STORE_ENV])
    # public reads from hot standbys (`serve --read-db`): each worker probes and chooses on its own
    router = ReadRouter(ledger, read_db_urls(os.environ.get(READ_DB_ENV)),
                        max_lag=float(os.environ.get(MAX_LAG_ENV) or DEFAULT_MAX_LAG_SECONDS))
    return create_app(ledger, follow_projection=False, close_ledger_on_shutdown=True, read_router=router)
