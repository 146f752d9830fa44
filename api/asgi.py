"""The ASGI entry point of one HTTP worker process started by `tagledger serve` (a uvicorn factory).

`tagledger serve` runs uvicorn's process supervisor: it binds the socket, keeps the custody projection up to
date in its own process, and starts `--workers` worker processes, each of which calls `create_app_from_env()`
and so has its own `Ledger` (connection pool and writer thread) on the same store. Writes from several
workers stay correct because every write transaction holds the store's write lock (docs/architecture.md).

A worker dies with its supervisor and drains when asked to stop (ledger/supervision.py), and refuses writes
while the log's checkpoints lag beyond the bound the supervisor hands it (api/routes_health.py).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.app import create_app
from ledger.gc_tuning import tune_for_serving
from ledger.health import CHECKPOINT_BOUND_SECONDS
from ledger.replicas import DEFAULT_MAX_LAG_SECONDS, MAX_LAG_ENV, READ_DB_ENV, ReadRouter, read_db_urls
from ledger.service import Ledger
from ledger.supervision import CHECKPOINT_BOUND_ENV, STORE_ENV, follow_supervisor


def create_app_from_env() -> FastAPI:
    follow_supervisor()  # first: a worker whose supervisor is gone must not serve
    ledger = Ledger.open(os.environ[STORE_ENV])
    bound = float(os.environ.get(CHECKPOINT_BOUND_ENV) or CHECKPOINT_BOUND_SECONDS)
    # public reads from hot standbys (`serve --read-db`): each worker probes and chooses on its own
    router = ReadRouter(ledger, read_db_urls(os.environ.get(READ_DB_ENV)),
                        max_lag=float(os.environ.get(MAX_LAG_ENV) or DEFAULT_MAX_LAG_SECONDS))
    app = create_app(ledger, follow_projection=False, close_ledger_on_shutdown=True, checkpoint_bound=bound,
                     read_router=router)
    tune_for_serving()  # after the app and its schemas are built: they are never scanned again
    return app
