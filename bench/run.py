"""Run the benchmarks (`make bench`): ingest throughput, then verification latency; print tables, write JSON.

    python bench/run.py            # small defaults: 5,000 events, 20,000 tags (a few minutes)
    python bench/run.py --quick    # smoke run, under a minute
    python bench/run.py --full     # the configuration of docs/benchmarks.md: 20,000 events, 100,000 tags

    make bench ARGS='--quick'

Results go to bench/results/{ingest,verify}-<time>.json unless --no-json. See docs/benchmarks.md for what the
numbers mean and how each one in the document was produced.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest  # noqa: E402
import verify_latency  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke run (under a minute)")
    size.add_argument("--full", action="store_true", help="the full documented configuration (tens of minutes)")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--only", choices=["ingest", "verify"], help="run just one of the two")
    p.add_argument("--no-json", action="store_true", help="do not write bench/results/*.json")
    args = p.parse_args()

    json_flag = [] if args.no_json else ["--json"]
    if args.quick:
        ingest_args = ["--quick", "--events", "1000"]
        verify_args = ["--quick", "--fraction", "0.2", "--requests", "300"]
    elif args.full:
        ingest_args = ["--events", "20000", "--workers", "1,2"]
        verify_args = ["--tags", "100000", "--requests", "2000"]
    else:
        ingest_args = ["--events", "5000", "--workers", "1,2"]
        verify_args = ["--tags", "20000", "--requests", "1000"]
    started = time.perf_counter()
    if args.only in (None, "ingest"):
        print("=" * 30, "ingest", "=" * 30, flush=True)
        ingest.main([*ingest_args, "--backends", args.backends, *json_flag])
    if args.only in (None, "verify"):
        print("\n" + "=" * 30, "verify latency", "=" * 30, flush=True)
        verify_latency.main([*verify_args, "--backends", args.backends, *json_flag])
    print(f"\nbench/run.py done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
