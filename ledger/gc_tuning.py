"""The cyclic garbage collector of `tagledger serve`'s long-running processes (issue 13).

By default Python scans its young objects every 700 allocations and, now and then, every object the process holds:
the modules, the API's routes and schemas, the projections' kept states. In the supervisor (projection followers,
checkpoint publisher) and the HTTP worker these scans were a tenth or more of the CPU spent per recorded event.
Once a process is started, everything it built so far is moved out of the collector's sight (`gc.freeze`: those
objects live as long as the process anyway) and the young generation is scanned less often. Memory is still
reclaimed: reference counting frees almost everything at once, and cycles are still collected, a little later.
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 20, 20)
"""Allocations before a young collection, and young (then middle) collections before an older one."""


def tune_for_serving() -> None:
    """Call once a serving process has built its long-lived objects."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
