"""Print the tables of one or more result files (bench/results/*.json) as markdown, e.g. for docs/benchmarks.md.

    python bench/report.py bench/results/ingest-asis.json bench/results/verify-asis.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table  # noqa: E402

INGEST = [("mode", "mode"), ("backend", "store"), ("workers", "uvicorn workers"), ("concurrency", "concurrency"),
          ("batch", "batch"), ("events", "events"), ("wall_s", "wall s"), ("events_per_s", "events/s"),
          ("mean_batch", "events/commit"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
          ("cpu_server_s", "server CPU s"), ("cpu_bench_s", "in-proc CPU s"), ("cpu_postgres_s", "PG CPU s"),
          ("cpu_client_s", "client CPU s"), ("valid", "valid"), ("patches", "patch (experiment)"),
          ("server_variant", "server")]
VERIFY = [("backend", "store"), ("workers", "uvicorn workers"), ("concurrency", "concurrency"),
          ("requests", "requests"), ("req_per_s", "req/s"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
          ("p99_ms", "p99 ms"), ("bag_p50_ms", "bag p50"), ("lot_p50_ms", "lot p50"),
          ("unused_p50_ms", "unused p50"), ("unknown_p50_ms", "unknown p50"), ("cpu_server_s", "server CPU s"),
          ("cpu_postgres_s", "PG CPU s"), ("cpu_client_s", "client CPU s"), ("valid", "valid"),
          ("patches", "patch (experiment)"), ("server_variant", "server")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    args = p.parse_args()
    for f in args.files:
        doc = json.loads(f.read_text(encoding="utf-8"))
        rows = doc["rows"]
        columns = VERIFY if doc.get("benchmark") == "verify_latency" else INGEST
        m = doc.get("machine", {})
        print(f"\n{f.name}: commit {m.get('git_commit', '?')[:10]}"
              f"{' + uncommitted changes' if m.get('uncommitted_changes_in_code') else ''}\n")
        print_table(rows, [c for c in columns if any(r.get(c[0]) is not None for r in rows)])


if __name__ == "__main__":
    main()
