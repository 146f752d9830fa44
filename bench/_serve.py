"""uvicorn factory for the benchmarks: what `tagledger serve` does, minus `init` and the banner.

    TAGLEDGER_BENCH_DB=sqlite:///... TAGLEDGER_BENCH_PROJECTION=1 \
        python -m uvicorn --app-dir bench --factory _serve:create_app --workers 2

Each uvicorn worker process calls `create_app()` and so has its own `Ledger` (store pool, writer thread and,
unless TAGLEDGER_BENCH_PROJECTION=0, the custody projection follower, as `tagledger serve` starts it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import patches  # noqa: E402  (experiments only: applies nothing unless TAGLEDGER_BENCH_PATCHES is set)
from api.app import create_app as _create_app  # noqa: E402
from ledger.service import Ledger  # noqa: E402


def _misbehave_for_tests() -> None:
    """tests/test_bench_cleanup.py: a worker that ignores SIGINT and SIGTERM (TAGLEDGER_BENCH_IGNORE_SIGNALS=1)
    and is slow to start (TAGLEDGER_BENCH_START_DELAY seconds), as a busy or stuck server can be."""
    import signal
    import time

    if os.environ.get("TAGLEDGER_BENCH_IGNORE_SIGNALS") == "1":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    delay = float(os.environ.get("TAGLEDGER_BENCH_START_DELAY", "0") or 0)
    if delay:
        time.sleep(delay)


def create_app():  # noqa: ANN201
    _misbehave_for_tests()
    patches.apply_from_env()
    ledger = Ledger.open(os.environ["TAGLEDGER_BENCH_DB"])
    if os.environ.get("TAGLEDGER_BENCH_PROJECTION", "1") == "1":
        ledger.start_projection()  # `create_app` starts it too (idempotent); older versions only did it here
    else:
        # EXPERIMENT (bench --no-projection): a projection object without its follower thread, so that
        # `start_projection()` (called by create_app) finds one and starts nothing.
        from ledger.projection import CustodyProjection

        ledger.projection = CustodyProjection(ledger.store)
    import ledger as _ledger_pkg

    print(f"bench server: code from {Path(_ledger_pkg.__file__).parent.parent}, store {ledger.store.backend}, "
          f"patches {patches.APPLIED or 'none'}", file=sys.stderr, flush=True)
    # --no-projection: no follower at all (create_app starts them unless told not to), e.g. to measure reads on a
    # store whose projections are still being built without their catching up in the measurement
    return _create_app(ledger, follow_projection=os.environ.get("TAGLEDGER_BENCH_PROJECTION", "1") == "1")
