"""Micro-benchmark: verification.canonical.jcs against the reference ``rfc8785`` package.

Encodes a realistic event body (a ``custody_dispatched``, about 370 bytes canonical) and prints
objects per second for each implementation, best of ``--repeat`` runs.  Not a test.

    python bench/bench_canonical.py [--number 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verification.canonical import jcs

BODY: dict[str, Any] = {
    "v": 1,
    "id": "0b8a4c1e-3f7d-4e2a-9c61-5d2f8e7a1b3c",
    "type": "custody_dispatched",
    "stream": "tag:CD-KOL-000123",
    "prev": "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f",
    "actor": "coop-kolwezi-01",
    "key": "3fa85f6457174562",
    "time": "2026-11-23T08:15:00.123456Z",
    "data": {
        "to": "trader-likasi",
        "mass_g": 48250,
        "location": "Kolwezi depot",
        "gps": {"lat": "-10.712345", "lon": "25.467890"},
    },
}


def rate(function: Callable[[Any], bytes], number: int, repeat: int) -> float:
    """Best objects per second over ``repeat`` runs of ``number`` calls."""
    best = min(timeit.repeat(lambda: function(BODY), number=number, repeat=repeat))
    return number / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best one counts")
    args = parser.parse_args()

    print(f"body: {len(jcs(BODY))} bytes canonical")
    ours = rate(jcs, args.number, args.repeat)
    print(f"verification.canonical.jcs  {ours:>12,.0f} objects/s")
    try:
        import rfc8785
    except ImportError:
        print("rfc8785                     (not installed)")
        return
    if rfc8785.dumps(BODY) != jcs(BODY):
        sys.exit("jcs and rfc8785 disagree on the benchmark body")
    theirs = rate(rfc8785.dumps, args.number, args.repeat)
    print(f"rfc8785.dumps               {theirs:>12,.0f} objects/s  (jcs is {ours / theirs:.1f}x)")


if __name__ == "__main__":
    main()
