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
from ledger.service import Ledger

STORE_ENV = "TAGLEDGER_SERVE_DB"
"""The store URL the supervisor hands to its workers."""


def create_app_from_env() -> FastAPI:
    ledger = Ledger.open(os.environ[STORE_ENV])
    return create_app(ledger, follow_projection=False, close_ledger_on_shutdown=True)
