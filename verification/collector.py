"""The cyclic garbage collector during a replay: rarer collections, same memory bound.

A replay allocates and frees millions of small containers (each entry's decoded JSON, the results that come
back from a worker, the tags' states), nearly all freed by reference counting the moment they are done with:
they never form cycles. With the interpreter's default thresholds (a collection every 700 net allocations of
containers) the collector still walks the young objects several times per chunk of 1,000 entries, and from time
to time the whole heap (the tags' states in the cache): ~1.5 us per entry in a worker and more in the process
that folds, measured in docs/benchmarks.md section 11.10, for cycles that are not there.

:func:`rare_collections` raises the first threshold to :data:`YOUNG_THRESHOLD` while a replay runs and puts
back what was there after. Collections still happen (a cycle is still freed, only later), and what can wait
to be freed is bounded by the threshold, not by the log: memory stays flat. :func:`freeze_startup` moves what a
worker process imported out of the collector's sight for good (it lives as long as the process).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "freeze_startup", "rare_collections"]

YOUNG_THRESHOLD = 50_000
"""Net allocations of containers between two collections of the youngest generation (the default is 700)."""


@contextmanager
def rare_collections() -> Iterator[None]:
    """Collect with a first threshold of :data:`YOUNG_THRESHOLD` inside the block (not lower than the caller's)."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], YOUNG_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def freeze_startup() -> None:
    """In a worker process, before its work: what is alive now (modules, classes, compiled patterns) is never
    garbage, so no later collection walks it; and the first threshold is :data:`YOUNG_THRESHOLD` for good."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], YOUNG_THRESHOLD), *before[1:])
