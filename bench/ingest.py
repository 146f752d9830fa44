"""Ingest benchmark: signed events recorded per second (client-side signing excluded: everything is pre-signed).

Modes, each on a fresh SQLite file and/or PostgreSQL database:

  inproc-submit       many threads calling `Ledger.submit` (LedgerWriter.submit) concurrently: group commit
  inproc-submit-many  one `Ledger.submit_many` call with the whole workload in order (bulk import)
  http-single         POST /v1/events, one envelope per request, N concurrent keep-alive connections
  http-batch          POST /v1/events/batch, B envelopes per request, M concurrent connections

The HTTP server is uvicorn in a subprocess running `api.app.create_app` exactly as `tagledger serve` builds it
(custody projection follower on, uvicorn log level info with access log), optionally with `--workers 2`. The load
comes from a separate client process (bench/_http_client.py). The server's CPU is counted by role
(bench/common.py `ServerCpu`): `cpu_worker_s` (the HTTP workers, every one seen), `cpu_supervisor_s` (uvicorn's
supervisor: in `serve`, the projection followers and the checkpoint publisher), `cpu_server_s` their total.

Workload (bench/common.py): organisations registered (untimed), then tags issued to sites and cooperatives in
ranges, then per lot: 10 bags attached at a site, dispatched to a cooperative and received there, merged into a
lot, the lot dispatched to a trader and received. Each client worker owns whole lots and sends their events one
after the other, each only after the previous one was acknowledged (custody order).

Afterwards the store must hold exactly setup + workload entries at positions 1..N, every answer must be 201 and
the acknowledged seqs must be exactly the expected ones; otherwise the run is marked INVALID.

    python bench/ingest.py                               # 20,000 events, all modes, both stores
    python bench/ingest.py --events 5000 --backends postgres --modes http-single --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import patches  # noqa: E402
from common import CpuMeter, Server, Workload, check_gapless, fresh_store, post_request, print_table  # noqa: E402

from ledger.projection import CustodyProjection  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from ledger.writer import Receipt  # noqa: E402

MODES = ("inproc-submit", "inproc-submit-many", "http-single", "http-batch")


def _setup(url: str, wl: Workload, *, projection_tables: bool) -> None:
    ledger = Ledger.open(url)
    try:
        results = ledger.submit_many([e.envelope for e in wl.setup])
        bad = [r for r in results if not isinstance(r, Receipt)]
        if bad:
            raise RuntimeError(f"setup refused: {bad[0]}")
        if projection_tables:  # create them once, before several workers race to
            CustodyProjection(ledger.store)
    finally:
        ledger.close()


def _expected_seqs(wl: Workload) -> set[int]:
    return set(range(len(wl.setup), len(wl.setup) + wl.timed_events))


def _finish(row: dict[str, Any], url: str, wl: Workload, seqs: list[int], problems: list[str]) -> dict[str, Any]:
    gap = check_gapless(url, len(wl.setup) + wl.timed_events)
    row.update(gap)
    row.update(common.commit_batches(url, after_seq=len(wl.setup) - 1))
    if sorted(seqs) != sorted(_expected_seqs(wl)):
        problems.append(f"acknowledged seqs: {len(seqs)} (unique {len(set(seqs))}), expected {wl.timed_events}")
    if not gap["gapless_ok"]:
        problems.append(f"store holds {gap['entries']} entries (positions {gap['min_position']}..{gap['max_position']})"
                        f", expected {gap['expected']}")
    row["valid"] = not problems
    row["problems"] = problems[:5]
    return row


# -- in-process ------------------------------------------------------------------------------------------------


def run_inproc(mode: str, url: str, wl: Workload, threads: int) -> dict[str, Any]:
    _setup(url, wl, projection_tables=False)
    ledger = Ledger.open(url)
    seqs: list[int] = []
    problems: list[str] = []
    meter = CpuMeter({"postgres": common.postgres_pids})
    try:
        meter.start()
        cpu0 = os.times()
        t0 = time.perf_counter()
        if mode == "inproc-submit-many":
            for r in ledger.submit_many([e.envelope for e in wl.ordered()]):
                if isinstance(r, Receipt):
                    seqs.append(r.seq)
                else:
                    problems.append(f"refused: {r}")
        else:
            for e in wl.issue:
                seqs.append(ledger.submit(e.envelope).seq)
            shards = wl.shard(threads)
            lock = threading.Lock()

            def work(shard: list[common.Event]) -> None:
                mine = []
                try:
                    for e in shard:
                        mine.append(ledger.submit(e.envelope).seq)
                except Exception as exc:  # noqa: BLE001
                    with lock:
                        problems.append(f"refused: {exc!r}")
                with lock:
                    seqs.extend(mine)

            pool = [threading.Thread(target=work, args=(s,)) for s in shards]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
        wall = time.perf_counter() - t0
        cpu1 = os.times()
        cpu = meter.stop()
    finally:
        ledger.close()
    row = {
        "mode": mode, "backend": ledger.store.backend, "workers": 1,
        "concurrency": threads if mode == "inproc-submit" else 1,
        "events": wl.timed_events, "wall_s": round(wall, 2), "events_per_s": wl.timed_events / wall,
        "cpu_bench_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 2),
        "cpu_postgres_s": cpu["postgres"] if "postgres" in url else None,
    }
    return _finish(row, url, wl, seqs, problems)


# -- HTTP ------------------------------------------------------------------------------------------------------


def run_http(mode: str, url: str, wl: Workload, *, workers: int, concurrency: int, batch_size: int,
             projection: bool, access_log: bool, server_log: Path | None, py_spy: str | None,
             patch: list[str], uvicorn_args: str = "") -> dict[str, Any]:
    _setup(url, wl, projection_tables=projection)
    if mode == "http-single":
        phases = [
            {"name": "issue", "workers": [[post_request("/v1/events", e.raw) for e in wl.issue]]},
            {"name": "custody", "workers": [[post_request("/v1/events", e.raw) for e in shard]
                                            for shard in wl.shard(concurrency)]},
        ]
    else:
        def batches(events: list[common.Event]) -> list[bytes]:
            return [post_request("/v1/events/batch", b"[" + b",".join(e.raw for e in events[i:i + batch_size]) + b"]")
                    for i in range(0, len(events), batch_size)]

        phases = [
            {"name": "issue", "workers": [batches(wl.issue)]},
            {"name": "custody", "workers": [batches(shard) for shard in wl.shard(concurrency)]},
        ]
    problems: list[str] = []
    with Server(url, workers=workers, projection=projection, access_log=access_log, log_file=server_log,
                py_spy=py_spy, patches=patch, uvicorn_args=shlex.split(uvicorn_args)) as server:
        meter = CpuMeter({"postgres": common.postgres_pids})
        parts = common.ServerCpu(lambda: server.proc.pid if server.proc is not None else None)
        meter.start()
        parts.start()
        results = common.run_client(server.port, phases, keep_bodies=True)
        split = parts.stop()
        cpu = meter.stop()
        time.sleep(0.2)
    wall = sum(r["wall_s"] for r in results)
    seqs: list[int] = []
    lat: list[float] = []
    for r in results:
        problems.extend(r["errors"])
        lat.extend(r["latencies"])
        for body in r["bodies"]:
            doc = json.loads(body)
            if mode == "http-single":
                if "seq" in doc and not doc.get("duplicate"):
                    seqs.append(doc["seq"])
                else:
                    problems.append(f"answer: {body[:200]!r}")
            else:
                for item in doc.get("results", []):
                    if item.get("status") == 201:
                        seqs.append(item["receipt"]["seq"])
                    else:
                        problems.append(f"item: {json.dumps(item)[:200]}")
        good = 201 if mode == "http-single" else 200
        if set(r["statuses"]) - {good}:
            problems.append(f"phase {r['name']}: statuses {r['statuses']}")
    row = {
        "mode": mode, "backend": "postgres" if url.startswith("postgres") else "sqlite", "workers": workers,
        "concurrency": concurrency, "batch": batch_size if mode == "http-batch" else None,
        "events": wl.timed_events, "requests": sum(r["requests"] for r in results),
        "wall_s": round(wall, 2), "events_per_s": wl.timed_events / wall,
        "p50_ms": common.percentile(lat, 50) * 1000, "p99_ms": common.percentile(lat, 99) * 1000,
        "cpu_server_s": split["total"], "cpu_worker_s": split["worker"], "cpu_supervisor_s": split["supervisor"],
        "cpu_server_other_s": split["other"], "cpu_profiler_s": split["profiler"] or None,
        "workers_seen": split["workers_seen"], "processes_exited": split["exited"],
        "cpu_postgres_s": cpu["postgres"] if url.startswith("postgres") else None,
        "cpu_client_s": round(sum(r["client_cpu_s"] for r in results), 2),
        "projection": projection, "access_log": access_log,
        "server_variant": ",".join(x for x, on in (("no projection", not projection), ("no access log", not access_log),
                                                   (uvicorn_args, bool(uvicorn_args))) if on) or "as serve",
    }
    return _finish(row, url, wl, seqs, problems)


# -- main ------------------------------------------------------------------------------------------------------

COLUMNS = [("mode", "mode"), ("backend", "store"), ("workers", "uvicorn workers"), ("concurrency", "concurrency"),
           ("batch", "batch"), ("events", "events"), ("wall_s", "wall s"), ("events_per_s", "events/s"), ("mean_batch", "events/commit"),
           ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("cpu_server_s", "server CPU s"),
           ("cpu_worker_s", "HTTP workers CPU s"), ("cpu_supervisor_s", "supervisor CPU s"), ("cpu_bench_s", "in-proc CPU s"), ("cpu_postgres_s", "PG CPU s"), ("cpu_client_s", "client CPU s"),
           ("valid", "valid"), ("patches", "patch (experiment)"), ("server_variant", "server")]


def _csv(kind):  # noqa: ANN001, ANN202
    return lambda s: [kind(x) for x in s.split(",") if x]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20_000, help="timed events per run (approximate; whole lots)")
    p.add_argument("--bags-per-lot", type=int, default=10)
    p.add_argument("--backends", type=_csv(str), default=["sqlite", "postgres"], help="sqlite,postgres")
    p.add_argument("--modes", type=_csv(str), default=list(MODES), help=",".join(MODES))
    p.add_argument("--threads", type=int, default=64, help="threads for inproc-submit")
    p.add_argument("--concurrency", type=_csv(int), default=[64], help="connections for http-single (list)")
    p.add_argument("--batch-size", type=int, default=200, help="envelopes per POST /v1/events/batch")
    p.add_argument("--batch-concurrency", type=_csv(int), default=[4], help="connections for http-batch (list)")
    p.add_argument("--workers", type=_csv(int), default=[1, 2], help="uvicorn worker processes (list)")
    p.add_argument("--no-projection", action="store_true", help="server without the custody projection follower")
    p.add_argument("--uvicorn-args", default="", metavar="'ARGS'",
                   help="extra uvicorn options, e.g. --uvicorn-args='--http httptools --loop uvloop' (EXPERIMENT: "
                        "needs those packages importable, e.g. pip install --target DIR httptools uvloop and "
                        "PYTHONPATH=DIR)")
    p.add_argument("--no-access-log", action="store_true", help="uvicorn --no-access-log")
    p.add_argument("--issue-chunk", type=int, default=10_000, help="at most this many tags per tags_issued event")
    p.add_argument("--tags-per-site", type=int, default=0,
                   help="issue each site at least this many bag tags (whole rolls, mostly unused; default: only "
                        "the tags the workload uses, about 760 per site for 20,000 events)")
    p.add_argument("--patch", type=_csv(str), default=[],
                   help="EXPERIMENT: try a suggested fix (bench/patches.py: " + ",".join(patches.PATCHES) + ")")
    p.add_argument("--repeat", type=int, default=1, help="run every variant this many times (fresh store each)")
    p.add_argument("--py-spy", metavar="PREFIX", help="record the server with py-spy (raw stacks to PREFIX-*.txt)")
    p.add_argument("--server-log", help="append the server's output to this file")
    p.add_argument("--json", nargs="?", const="", help="write results JSON (default bench/results/ingest-*.json)")
    p.add_argument("--quick", action="store_true", help="small smoke run (2,000 events, fewer variants)")
    return p


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.events = min(args.events, 2_000)
        args.workers = args.workers[:1]
        args.concurrency = args.concurrency[:1]
        args.batch_concurrency = args.batch_concurrency[:1]
    for m in args.modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m}")
    machine = common.machine_info()  # before the runs: records the code that is measured
    groups = common.groups_for_events(args.events, args.bags_per_lot)
    t0 = time.perf_counter()
    if args.patch:
        patches.apply(args.patch)  # in this process (in-process modes); the server gets them by environment
        print(f"EXPERIMENT: patched {args.patch}", flush=True)
    wl = common.build_workload(groups=groups, bags_per_lot=args.bags_per_lot, issue_chunk=args.issue_chunk,
                               bag_tags_per_site=args.tags_per_site or None)
    print(f"pre-signed {len(wl.setup)} setup + {wl.timed_events} timed events ({len(wl.issue)} tags_issued, "
          f"{len(wl.groups)} lots of {args.bags_per_lot} bags) in {time.perf_counter() - t0:.1f} s", flush=True)
    rows: list[dict[str, Any]] = []
    spy_n = 0
    for backend in args.backends:
        for mode in args.modes:
            if mode.startswith("inproc"):
                variants = [dict()]
            elif mode == "http-single":
                variants = [dict(workers=w, concurrency=c) for w in args.workers for c in args.concurrency]
            else:
                variants = [dict(workers=w, concurrency=c) for w in args.workers for c in args.batch_concurrency]
            for v in [v for v in variants for _ in range(args.repeat)]:
                label = f"{mode} {backend} {v}"
                print(f">> {label} ...", flush=True)
                with fresh_store(backend, mode.replace("-", "")[:12]) as url:
                    if mode.startswith("inproc"):
                        row = run_inproc(mode, url, wl, args.threads)
                    else:
                        spy = None
                        if args.py_spy:
                            spy_n += 1
                            spy = f"{args.py_spy}-{backend}-{mode}-w{v['workers']}-c{v['concurrency']}"
                        row = run_http(mode, url, wl, batch_size=args.batch_size, projection=not args.no_projection,
                                       access_log=not args.no_access_log,
                                       server_log=Path(args.server_log) if args.server_log else None, py_spy=spy,
                                       patch=args.patch, uvicorn_args=args.uvicorn_args, **v)
                    row["uvicorn_args"] = args.uvicorn_args or None
                row["patches"] = ",".join(args.patch) or None
                row["tags_issued"] = wl.tags_issued_total
                rows.append(row)
                status = "ok" if row["valid"] else "INVALID: " + "; ".join(row["problems"])
                print(f"   {row['events_per_s']:,.0f} events/s  ({row['wall_s']} s)  {status}", flush=True)
    verify_rate = common.ed25519_verify_rate()
    print(f"\nreference: Ed25519 verify alone: {verify_rate:,.0f}/s on one core "
          f"(ceiling for {os.cpu_count()} cores: {verify_rate * (os.cpu_count() or 1):,.0f}/s)\n")
    print_table(rows, [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)])
    if args.json is not None:
        path = common.write_json("ingest", {"benchmark": "ingest", "args": vars(args), "machine": machine,
                                            "workload": {"setup": len(wl.setup), "timed": wl.timed_events,
                                                         "tags_issued_events": len(wl.issue),
                                                         "lots": len(wl.groups), "bags_per_lot": args.bags_per_lot},
                                            "tags_issued": wl.tags_issued_total,
                                            "ed25519_verify_per_s_one_core": verify_rate,
                                            "rows": rows}, args.json or None)
        print(f"\nwrote {path}")
    return rows


if __name__ == "__main__":
    main()
