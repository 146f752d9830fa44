"""The write path's CPU per event, in Ed25519 verifications (issue 13): the server's total, and each part of it.

For each write mode, the CPU time the server spends per recorded event, divided by the CPU time of one Ed25519
verification with `cryptography` measured in this process in the same run, just before and just after each run
(the machine's speed drifts about 2x between days; the ratio does not):

  http-batch          POST /v1/events/batch, 200 envelopes per request, 4 connections (`tagledger serve`)
  http-single         POST /v1/events, one envelope per request, 64 connections
  inproc-submit-many  `Ledger.submit_many` of the whole workload in this process (bulk import): this process's CPU

What each number counts (HTTP modes; CPU = user + system time from /proc, bench/common.py `ServerCpu`):

  ratio (total)   every process of `tagledger serve`: the HTTP workers and uvicorn's supervisor (and anything else
                  in its process tree, e.g. multiprocessing's resource tracker); not py-spy when --py-spy records
  worker          the HTTP worker processes (api/asgi.py): the write path itself -- HTTP, the strict JSON reader,
                  the envelope and payload checks, the writer thread (signature, rules, the transaction, COPY,
                  the Merkle tree), the answer, the access log. A worker that is restarted, or several with
                  --workers N, all count: every process seen in the tree while the load runs, and the CPU of one
                  that ended (from what its parent reaped)
  supervisor      uvicorn's supervising process (ledger/cli.py `cmd_serve`): the custody and flags projection
                  followers and the checkpoint publisher, which run there, apart from the workers
  other           any other process of the tree (normally about 0)
  PG              PostgreSQL's processes, counted apart (every `postgres` process of the machine: on a shared
                  machine other sessions' databases add to it; read it as a rough figure)

The server is `tagledger serve` exactly as the README runs it (bench/common.py `Server`) with the log key in its
home, the workload the one of bench/ingest.py (tags issued, bags attached, dispatched, received, merged into lots,
lots dispatched and received), each run on a fresh store, its result checked (every event acknowledged once, the
log gapless).

    .venv/bin/python bench/server_cpu.py                                # 6,000 events, 3 repeats, PostgreSQL
    .venv/bin/python bench/server_cpu.py --backends sqlite,postgres --repeat 5 --events 10000
    .venv/bin/python bench/server_cpu.py --modes http-batch --py-spy /tmp/spy   # profile the server

A/B in one sitting: `--ab DIR` runs every HTTP mode also with the server started from the source tree DIR (e.g.
`git archive main | tar -x -C DIR`), alternating A and B: this script (and its split) measures both, only the
server's code differs (it runs `python -m ledger.cli` with DIR as its working directory, so DIR's packages are the
ones imported, in the workers too). In-process A: `bench/frozen.sh --commit main -- bench/server_cpu.py --modes
inproc-submit-many`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import ingest  # noqa: E402
from reference_speed import verification_cpu_seconds  # noqa: E402

from ledger.keys import KeyPair  # noqa: E402

MODES = ("http-batch", "http-single", "inproc-submit-many")
PARTS = ("worker", "supervisor", "server_other")
"""The parts of the server's CPU (`ingest.run_http`'s cpu_<part>_s), each also given as <part>_ratio."""
HERE = common.ROOT
LOG_KEY = KeyPair.generate()
"""The log key the workload's genesis names: the servers hold it, so they sign checkpoints as a real one does
(without it, `serve` signs none and refuses writes once an entry has waited 10 s for one)."""


class KeyedServer(common.Server):
    """`common.Server` whose home holds the log key (keys/log.pem): its checkpoint publisher runs, and counts."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        (self.home / "keys").mkdir(parents=True, exist_ok=True)
        LOG_KEY.save(self.home / "keys" / "log.pem")


ingest.Server = KeyedServer  # type: ignore[misc]


def run_one(mode: str, backend: str, wl: common.Workload, args: argparse.Namespace, spy: str | None,
            code: Path | None = None) -> dict[str, Any]:
    """One run; with `code`, the server runs that source tree (a checkout of another commit) instead of this one."""
    common.ROOT = code or HERE  # `common.Server` starts `python -m ledger.cli` in this directory
    reference = verification_cpu_seconds(rounds=5)
    with common.fresh_store(backend, mode.replace("-", "")[:12]) as url:
        if mode == "inproc-submit-many":
            row = ingest.run_inproc(mode, url, wl, 1)
            cpu = row["cpu_bench_s"]
        else:
            concurrency = args.batch_concurrency if mode == "http-batch" else args.concurrency
            row = ingest.run_http(mode, url, wl, workers=args.workers, concurrency=concurrency,
                                  batch_size=args.batch_size, projection=True, access_log=True, server_log=None,
                                  py_spy=spy, patch=[])
            cpu = row["cpu_server_s"]
    reference = (reference + verification_cpu_seconds(rounds=5)) / 2  # before and after the run
    per_event = cpu / wl.timed_events
    for part in PARTS:  # the server's parts (HTTP modes only)
        seconds = row.get(f"cpu_{part}_s")
        row[f"{part}_ratio"] = seconds / wl.timed_events / reference if seconds is not None else None
    row.update({"cpu_s": cpu, "cpu_per_event_us": per_event * 1e6, "verify_us": reference * 1e6,
                "ratio": per_event / reference,
                "pg_ratio": (row["cpu_postgres_s"] / wl.timed_events / reference)
                if row.get("cpu_postgres_s") is not None else None})
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=6000, help="timed events per run (whole lots)")
    p.add_argument("--backends", default="postgres", help="sqlite,postgres")
    p.add_argument("--modes", default=",".join(MODES), help=",".join(MODES))
    p.add_argument("--repeat", type=int, default=3, help="runs of each mode (interleaved), fresh store each")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--concurrency", type=int, default=64, help="connections of http-single")
    p.add_argument("--batch-concurrency", type=int, default=4, help="connections of http-batch")
    p.add_argument("--batch-size", type=int, default=200, help="envelopes per POST /v1/events/batch")
    p.add_argument("--ab", metavar="DIR", type=Path,
                   help="A/B in one sitting: every HTTP run also with the server started from the source tree DIR "
                        "(e.g. `git archive main | tar -x -C DIR`), A and B alternating; in-process modes only B")
    p.add_argument("--py-spy", metavar="PREFIX", help="record the server with py-spy (raw stacks to PREFIX-*.txt)")
    p.add_argument("--json", nargs="?", const="", help="write results JSON (default bench/results/server_cpu-*.json)")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m}")
    machine = common.machine_info()
    wl = common.build_workload(groups=common.groups_for_events(args.events, 10), bags_per_lot=10, issue_chunk=10_000,
                               log_key=LOG_KEY)
    print(f"code: {common.ROOT}  workload: {len(wl.setup)} setup + {wl.timed_events} timed events", flush=True)
    rows: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        for n in range(args.repeat):
            for mode in modes:
                spy = f"{args.py_spy}-{backend}-{mode}-{n}" if args.py_spy and not mode.startswith("inproc") else None
                codes = [None] if args.ab is None or mode.startswith("inproc") else [args.ab, None][::1 - 2 * (n % 2)]
                for code in codes:
                    row = run_one(mode, backend, wl, args, spy, code)
                    row["code"] = "A" if code is not None else "B"
                    rows.append(row)
                    status = "ok" if row["valid"] else "INVALID: " + "; ".join(row["problems"])
                    split = (f" [worker {row['worker_ratio']:.2f}, supervisor {row['supervisor_ratio']:.2f}, "
                             f"other {row['server_other_ratio']:.2f}; {row.get('workers_seen')} worker(s)]"
                             if row.get("worker_ratio") is not None else "")
                    print(f"   {backend:8} {mode:20} {row['code']} {row['cpu_per_event_us']:7.0f} us/event = "
                          f"{row['ratio']:5.2f} verifications{split} (1 verification = {row['verify_us']:.0f} us)"
                          f"  {status}", flush=True)
    print()
    print(f"{'store':8} {'mode':20} {'code':4} {'runs':>4}  {'ratio (min-max)':>16}  {'median':>6}  "
          f"{'us/event':>14}  {'verify us':>10}  {'PG ratio':>9}  {'worker (min-med-max)':>20}  "
          f"{'supervisor (min-med-max)':>24}")
    summary = []
    for backend, mode, code in [(b, m, c) for b in args.backends.split(",") for m in modes for c in ("A", "B")]:
        mine = [r for r in rows if r["backend"] == backend and r["mode"] == mode and r["valid"]
                and r["code"] == code]
        if not mine:
            continue
        ratios = [r["ratio"] for r in mine]
        us = [r["cpu_per_event_us"] for r in mine]
        ver = [r["verify_us"] for r in mine]
        pg = [r["pg_ratio"] for r in mine if r["pg_ratio"] is not None]
        line = {"backend": backend, "mode": mode, "code": code, "runs": len(mine), "ratio_min": min(ratios),
                "ratio_max": max(ratios), "ratio_median": statistics.median(ratios), "us_min": min(us),
                "us_max": max(us), "verify_us_min": min(ver), "verify_us_max": max(ver),
                "pg_ratio_median": statistics.median(pg) if pg else None}
        spread = {}
        for part in PARTS:
            values = [r[f"{part}_ratio"] for r in mine if r.get(f"{part}_ratio") is not None]
            if values:
                line.update({f"{part}_ratio_min": min(values), f"{part}_ratio_median": statistics.median(values),
                             f"{part}_ratio_max": max(values)})
                spread[part] = f"{min(values):.2f}-{statistics.median(values):.2f}-{max(values):.2f}"
        summary.append(line)
        print(f"{backend:8} {mode:20} {code:4} {len(mine):>4}  {min(ratios):7.2f} - {max(ratios):5.2f}  "
              f"{statistics.median(ratios):6.2f}  {min(us):6.0f} - {max(us):5.0f}  "
              f"{min(ver):4.0f} - {max(ver):3.0f}  "
              f"{(statistics.median(pg) if pg else float('nan')):9.2f}  {spread.get('worker', ''):>20}  "
              f"{spread.get('supervisor', ''):>24}")
    if args.json is not None:
        path = common.write_json("server_cpu", {"benchmark": "server_cpu", "args": vars(args), "machine": machine,
                                                "events": wl.timed_events, "ab": str(args.ab) if args.ab else None,
                                                "rows": rows, "summary": summary},
                                 args.json or None)
        print(f"\nwrote {path}")
    return rows


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
