"""Verification latency: GET /v1/tags/{id} (median, p90, p99) with ~100,000 tags in the store.

The store is built in-process with `Ledger.submit_many` from pre-signed events: tags issued in ranges of 10,000
(to sites for bags, to cooperatives for lots), a fraction of the bags attached, dispatched to a cooperative and
received, merged 10 to a lot, the lots dispatched to a trader and received. The custody projection is brought
up to date before the server starts (so its follower is idle during the measurement).

The server is uvicorn in a subprocess (like `tagledger serve`); the requests come from a separate client process
over `--concurrency` keep-alive connections, each sending its requests one after the other, over random tag ids:
bags with a history, lots (whose view also folds the 10 input bags for `origins`), issued-but-unused tags and
unknown ids (404). `--warmup` requests first (not counted), then `--requests` timed ones.

    python bench/verify_latency.py                       # 100,000 tags, both stores
    python bench/verify_latency.py --backends sqlite --tags 20000 --requests 1000
    python bench/verify_latency.py --home DIR --prewarm  # a store bench/build_large_store.py built (kept as it is)

With `--home`, nothing is built: the server serves the home's PostgreSQL store (its `large-store.json` names the
tag ids to request), and the rows carry the server's CPU per request in Ed25519 verifications (CPU time of one,
`bench/reference_speed.py`, measured before and after each row). `--prewarm` first reads the log's tables and
indexes into the operating system's cache (`pg_prewarm`), so that a store larger than PostgreSQL's buffers is
measured warm, not against the disk.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import patches  # noqa: E402
from common import CpuMeter, Server, fresh_store, get_request, percentile, print_table  # noqa: E402

from ledger.keys import KeyPair  # noqa: E402
from ledger.projection import CustodyProjection  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from ledger.writer import Receipt  # noqa: E402

CATEGORIES = ("bag", "lot", "unused", "unknown")
EXPECTED_STATUS = {"bag": 200, "lot": 200, "unused": 200, "unknown": 404}


LOG_KEY = KeyPair.generate()
"""The log key the workload's genesis names: the store is built with signed checkpoints (issue 13: without one a
tag view answers `"log": null` and carries no proofs, and /v1/log/checkpoint is 404)."""


def build_workload(tags: int, range_size: int, fraction: float, bags_per_lot: int, sites: int, coops: int):  # noqa: ANN201
    lot_share = 0.1
    bag_tags = int(tags * (1 - lot_share))
    per_site = -(-bag_tags // sites)
    per_coop = -(-(tags - per_site * sites) // coops)
    used_bags = int(per_site * sites * fraction)
    groups = max(1, used_bags // bags_per_lot)
    return common.build_workload(log_key=LOG_KEY, groups=groups, bags_per_lot=bags_per_lot, sites=sites, cooperatives=coops,
                                 bag_tags_per_site=per_site, lot_tags_per_coop=max(per_coop, 1),
                                 issue_chunk=range_size, seed=7)


def build_store(url: str, wl: common.Workload) -> dict[str, Any]:
    ledger = Ledger.open(url)
    try:
        t0 = time.perf_counter()
        events = [e.envelope for e in wl.setup] + [e.envelope for e in wl.ordered()]
        refused = checkpoints = 0
        signer = None
        for i in range(0, len(events), 10_000):
            refused += sum(not isinstance(r, Receipt) for r in ledger.submit_many(events[i:i + 10_000]))
            if signer is None:  # after the genesis: a checkpoint after every 10,000 events, as serve signs them
                signer = ledger.start_checkpoints(LOG_KEY, publish_in_background=False)
            checkpoints += ledger.publish_checkpoint() is not None
        last = ledger.publish_checkpoint()
        if last is None or last.size != ledger.store.size():
            raise RuntimeError("the store's last checkpoint does not cover the whole log")
        if refused:
            raise RuntimeError(f"{refused} events refused while building the store")
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        CustodyProjection(ledger.store).catch_up()
        projected = time.perf_counter() - t0
        size = ledger.store.size()
        if url.startswith("postgres"):  # the planner's statistics, as autovacuum gathers them after a bulk load:
            with ledger.store.datastore.get_connection() as conn:  # without them it plans tiny reads in parallel
                conn.execute("ANALYZE")
    finally:
        ledger.close()
    return {"entries": size, "build_s": round(built, 1), "projection_s": round(projected, 1)}


def request_plan(wl: common.Workload, n: int, rng: random.Random, mix: dict[str, float]) -> list[tuple[str, int]]:
    pools = {"bag": wl.bags, "lot": wl.lots, "unused": wl.unused,
             "unknown": [f"XX-{rng.randrange(10**8):08d}" for _ in range(1000)]}
    names = [c for c in CATEGORIES if pools[c] and mix.get(c, 0) > 0]
    weights = [mix[c] for c in names]
    plan = []
    for _ in range(n):
        c = rng.choices(names, weights)[0]
        plan.append((rng.choice(pools[c]), CATEGORIES.index(c)))
    return plan


SURFACES = {"json": "/v1/tags/{}", "page": "/t/{}", "checkpoint": "/v1/log/checkpoint", "healthz": "/healthz"}
"""`checkpoint` and `healthz`: trivial requests on the same server, beside the views (the tag id is unused)."""
"""What is requested: the JSON verification (`GET /v1/tags/{id}`) or the HTML page people open (`GET /t/{id}`,
with `Accept-Encoding: gzip` as a phone's browser sends it)."""


def run_one(url: str, wl: common.Workload, args: argparse.Namespace, workers: int, concurrency: int,
            surface: str = "json", check: Any = None, postgres_pids: Any = common.postgres_pids) -> dict[str, Any]:
    """One row; `check(base)` looks at a few answers' content first (default: the built workload's);
    `postgres_pids()`: the PostgreSQL processes whose CPU is counted (default: all of the machine's)."""
    rng = random.Random(11)
    path = SURFACES[surface]
    headers = {"Accept": "text/html", "Accept-Encoding": "gzip", "Accept-Language": "fr"} if surface == "page" else {}
    mix = dict(zip(CATEGORIES, args.mix))
    warm = request_plan(wl, args.warmup, rng, mix)
    timed = request_plan(wl, args.requests, rng, mix)

    def split(plan: list[tuple[str, int]]) -> dict[str, Any]:
        ws = [plan[k::concurrency] for k in range(concurrency)]
        return {"workers": [[get_request(path.format(t), headers) for t, _ in w] for w in ws],
                "labels": [[c for _, c in w] for w in ws]}

    phases = [{"name": "warmup", **split(warm)}, {"name": "timed", **split(timed)}]
    with Server(url, workers=workers, projection=not args.no_projection, access_log=not args.no_access_log,
                log_file=Path(args.server_log) if args.server_log else None, patches=args.patch,
                uvicorn_args=shlex.split(args.uvicorn_args),
                py_spy=f"{args.py_spy}-{'postgres' if url.startswith('postgres') else 'sqlite'}-w{workers}"
                if args.py_spy else None) as server:
        sample = (check or (lambda base: _sample_check(base, wl)))(server.base)
        meter = CpuMeter({"server": server.pids, "postgres": postgres_pids})
        meter.start()
        results = common.run_client(server.port, phases)
        cpu = meter.stop()
    r = results[1]
    problems = list(r["errors"]) + sample
    lat = r["latencies"]
    labels = r["labels"] or []
    by_cat: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    for x, c in zip(lat, labels):
        by_cat[CATEGORIES[c]].append(x)
    allowed = {EXPECTED_STATUS[c] for c in CATEGORIES if by_cat[c]} | {200}
    if set(r["statuses"]) - allowed:
        problems.append(f"statuses {r['statuses']}")
    for body in r["bodies"]:  # the client keeps the (start of the) body of every non-2xx answer
        if b'"tag.unknown"' not in body and not (surface == "page" and body[:2] == b"\x1f\x8b"):
            problems.append(f"unexpected error body {body[:200]!r}")
            break
    row = {
        "backend": "postgres" if url.startswith("postgres") else "sqlite", "surface": surface, "workers": workers,
        "concurrency": concurrency, "requests": r["requests"], "wall_s": round(r["wall_s"], 2),
        "req_per_s": r["requests"] / r["wall_s"],
        "p50_ms": percentile(lat, 50) * 1000, "p90_ms": percentile(lat, 90) * 1000,
        "p99_ms": percentile(lat, 99) * 1000, "max_ms": max(lat) * 1000 if lat else None,
        "statuses": r["statuses"], "cpu_server_s": cpu["server"],
        "cpu_postgres_s": cpu["postgres"] if url.startswith("postgres") else None,
        "cpu_client_s": round(r["client_cpu_s"], 2),
        "patches": ",".join(args.patch) or None, "uvicorn_args": args.uvicorn_args or None,
        "projection": not args.no_projection, "access_log": not args.no_access_log,
        "server_variant": ",".join(x for x, on in (("no projection", args.no_projection),
                                                   ("no access log", args.no_access_log),
                                                   (args.uvicorn_args, bool(args.uvicorn_args))) if on) or "as serve",
    }
    for c in CATEGORIES:
        if by_cat[c]:
            row[f"{c}_n"] = len(by_cat[c])
            row[f"{c}_p50_ms"] = percentile(by_cat[c], 50) * 1000
            row[f"{c}_p99_ms"] = percentile(by_cat[c], 99) * 1000
    row["valid"] = not problems
    row["problems"] = problems[:5]
    return row


def _sample_check(base: str, wl: common.Workload) -> list[str]:
    """One request of each kind, checked for content (the timed run only checks status codes)."""
    import httpx

    problems = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for tag, want in ((wl.bags[0], "merged"), (wl.lots[0], "in_custody"), (wl.unused[0], "issued")):
            doc = http.get(f"/v1/tags/{tag}").json()
            if doc.get("verdict", {}).get("code") != want or doc.get("problems"):
                problems.append(f"{tag}: verdict {doc.get('verdict')} problems {doc.get('problems')}")
            if doc.get("log") is None or not all(e.get("inclusion_proof") for e in doc.get("events", [])):
                problems.append(f"{tag}: no checkpoint or an event without its inclusion proof")
        lot = http.get(f"/v1/tags/{wl.lots[0]}").json()
        bags_in_lot = (len(wl.groups[0]) - 3) // 3
        if len(lot.get("origins", [])) != bags_in_lot:
            problems.append(f"lot {wl.lots[0]}: {len(lot.get('origins', []))} origins, expected {bags_in_lot}")
        if http.get("/v1/log/checkpoint").status_code != 200:
            problems.append("no checkpoint at /v1/log/checkpoint")
        if http.get("/v1/tags/XX-00000000").status_code != 404:
            problems.append("unknown tag is not 404")
    return problems


class StorePools:
    """The tag ids of a store bench/build_large_store.py built (its `large-store.json`), as `request_plan` wants."""

    def __init__(self, home: Path):
        import json

        self.manifest = json.loads((home / "large-store.json").read_text())
        pools = self.manifest["pools"]
        self.bags, self.lots, self.unused = pools["bag"], pools["lot"], pools["unused"]

    def check(self, base: str) -> list[str]:
        """Sampled tags: the state the builder planned, no problem, every event with its inclusion proof."""
        import httpx

        problems = []
        with httpx.Client(base_url=base, timeout=60) as http:
            for tag, (status, holder) in list(self.manifest["samples"].items())[:20]:
                doc = http.get(f"/v1/tags/{tag}").json()
                state = doc.get("state", {})
                if (state.get("status"), state.get("holder")) != (status, holder) or doc.get("problems"):
                    problems.append(f"{tag}: {state.get('status')} at {state.get('holder')}, planned {status} at "
                                    f"{holder}; problems {doc.get('problems')}")
                if doc.get("log") is None or not all(e.get("inclusion_proof") for e in doc.get("events", [])):
                    problems.append(f"{tag}: no checkpoint or an event without its inclusion proof")
            if http.get("/v1/log/checkpoint").status_code != 200:
                problems.append("no checkpoint at /v1/log/checkpoint")
        return problems


def prewarm(url: str) -> dict[str, Any]:
    """Read the log's tables and indexes into the OS cache (pg_prewarm 'read'); returns what was read."""
    import psycopg

    t0 = time.perf_counter()
    read = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        rels = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
            "'public' AND c.relkind IN ('r', 'i') AND c.relname LIKE 'tagledger%' ORDER BY c.relname")]
        for rel in rels:
            read[rel] = conn.execute("SELECT pg_prewarm(%s::regclass, 'read')", [rel]).fetchone()[0]
    return {"blocks": sum(read.values()), "seconds": round(time.perf_counter() - t0, 1)}


def block_reads(url: str) -> tuple[int, int]:
    """The database's blocks read (not in PostgreSQL's buffers: from the OS cache or the disk) and hit so far."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()"
                           ).fetchone()
    return int(row[0]), int(row[1])


def database_backends(url: str) -> Any:
    """A function listing the PostgreSQL backends connected to `url`'s database (the server's, on a machine that
    other sessions share: their backends, and autovacuum, are not counted)."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)

    def pids() -> list[int]:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")]
    return pids


def run_existing(args: argparse.Namespace, machine: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows on a store that exists (`--home`): nothing built, the server CPU per request in verifications."""
    from reference_speed import verification_cpu_seconds

    pools = StorePools(Path(args.home))
    url = pools.manifest["url"]
    print(f"store {url}: {pools.manifest['tags']:,} tags, {pools.manifest['entries']:,} entries", flush=True)
    if args.prewarm:
        print(f">> prewarm: {prewarm(url)}", flush=True)
    backends = database_backends(url)
    rows = []
    for surface, w, c in [(s, w, c) for s in args.surface for w in args.workers for c in args.concurrency]:
        print(f">> GET {SURFACES[surface].format('{id}')}, {w} worker(s), concurrency {c} ...", flush=True)
        before = verification_cpu_seconds(1.0, rounds=5)
        blocks = block_reads(url)
        row = run_one(url, pools, args, w, c, surface, check=pools.check,  # type: ignore[arg-type]
                      postgres_pids=backends)
        after = verification_cpu_seconds(1.0, rounds=5)
        verification = (before + after) / 2
        # the CPU and the blocks are counted over the warm-up's requests too (same mix): divided by all of them
        read, hit = (b - a for a, b in zip(blocks, block_reads(url)))
        per = row["requests"] + args.warmup
        row.update({"pg_blocks_read_per_request": round(read / per, 1), "pg_blocks_hit_per_request": round(hit / per, 1)})
        row.update({"entries": pools.manifest["entries"], "tags": pools.manifest["tags"],
                    "verification_us": round(verification * 1e6, 1), "metered_requests": per,
                    "server_cpu_per_request_verifications": round(row["cpu_server_s"] / per / verification, 2),
                    "postgres_cpu_per_request_verifications": round(row["cpu_postgres_s"] / per / verification, 2),
                    "load_average": os.getloadavg()})
        rows.append(row)
        status = "ok" if row["valid"] else "INVALID: " + "; ".join(row["problems"])
        print(f"   p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms  {row['req_per_s']:.0f} req/s  server CPU "
              f"{row['server_cpu_per_request_verifications']} verif./req (PG {row['postgres_cpu_per_request_verifications']})"
              f", blocks read {row['pg_blocks_read_per_request']} hit {row['pg_blocks_hit_per_request']} per request"
              f"  load {row['load_average'][0]:.1f}  {status}", flush=True)
    return rows


COLUMNS = [("backend", "store"), ("surface", "surface"), ("workers", "uvicorn workers"), ("concurrency", "concurrency"),
           ("requests", "requests"), ("req_per_s", "req/s"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
           ("p99_ms", "p99 ms"), ("bag_p50_ms", "bag p50"), ("lot_p50_ms", "lot p50"),
           ("unused_p50_ms", "unused p50"), ("unknown_p50_ms", "unknown p50"), ("cpu_server_s", "server CPU s"),
           ("cpu_postgres_s", "PG CPU s"), ("cpu_client_s", "client CPU s"),
           ("server_cpu_per_request_verifications", "server CPU/req (verif.)"),
           ("postgres_cpu_per_request_verifications", "PG CPU/req (verif.)"),
           ("pg_blocks_read_per_request", "PG blocks read/req"), ("pg_blocks_hit_per_request", "PG blocks hit/req"),
           ("valid", "valid"),
           ("patches", "patch (experiment)"), ("server_variant", "server")]


def _csv(kind):  # noqa: ANN001, ANN202
    return lambda s: [kind(x) for x in s.split(",") if x]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tags", type=int, default=100_000, help="tags issued in the store")
    p.add_argument("--range-size", type=int, default=10_000, help="tags per tags_issued event")
    p.add_argument("--fraction", type=float, default=0.3, help="fraction of bag tags attached/dispatched/received")
    p.add_argument("--bags-per-lot", type=int, default=10)
    p.add_argument("--sites", type=int, default=9)
    p.add_argument("--coops", type=int, default=4)
    p.add_argument("--backends", type=_csv(str), default=["sqlite", "postgres"])
    p.add_argument("--surface", type=_csv(str), default=["json"], help="json (GET /v1/tags/{id}), page (GET /t/{id}), checkpoint, healthz")
    p.add_argument("--workers", type=_csv(int), default=[1], help="uvicorn worker processes (list)")
    p.add_argument("--concurrency", type=_csv(int), default=[1, 8],
                   help="client connections (list; 1 = unloaded service time, 8 = loaded)")
    p.add_argument("--requests", type=int, default=2_000, help="timed requests")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--mix", type=_csv(float), default=[0.4, 0.2, 0.25, 0.15],
                   help="weights of bag,lot,unused,unknown ids")
    p.add_argument("--no-projection", action="store_true")
    p.add_argument("--uvicorn-args", default="", metavar="'ARGS'",
                   help="extra uvicorn options, e.g. --uvicorn-args='--http httptools --loop uvloop' (EXPERIMENT: "
                        "needs those packages importable, e.g. pip install --target DIR httptools uvloop and "
                        "PYTHONPATH=DIR)")
    p.add_argument("--no-access-log", action="store_true")
    p.add_argument("--patch", type=_csv(str), default=[],
                   help="EXPERIMENT: try a suggested fix (bench/patches.py: " + ",".join(patches.PATCHES) + ")")
    p.add_argument("--py-spy", metavar="PREFIX", help="record the server with py-spy")
    p.add_argument("--server-log")
    p.add_argument("--json", nargs="?", const="", help="write results JSON (default bench/results/verify-*.json)")
    p.add_argument("--quick", action="store_true", help="small smoke run (10,000 tags, 500 requests)")
    p.add_argument("--home", help="measure the store bench/build_large_store.py built in this home (nothing is built)")
    p.add_argument("--prewarm", action="store_true", help="with --home: read the log's tables into the OS cache first")
    return p


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.tags = min(args.tags, 10_000)
        args.range_size = min(args.range_size, 2_000)
        args.requests = min(args.requests, 500)
        args.warmup = min(args.warmup, 50)
        args.workers = args.workers[:1]
        args.concurrency = args.concurrency[-1:]
    if args.patch:
        patches.apply(args.patch)
        print(f"EXPERIMENT: patched {args.patch}", flush=True)
    machine = common.machine_info()  # before the runs: records the code that is measured
    if args.home:
        rows = run_existing(args, machine)
        print()
        print_table(rows, [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)])
        if args.json is not None:
            path = common.write_json("verify", {"benchmark": "verify_latency", "args": vars(args), "machine": machine,
                                                "store": {k: v for k, v in StorePools(Path(args.home)).manifest.items()
                                                          if k not in ("samples", "pools")}, "rows": rows},
                                     args.json or None)
            print(f"\nwrote {path}")
        return rows
    t0 = time.perf_counter()
    wl = build_workload(args.tags, args.range_size, args.fraction, args.bags_per_lot, args.sites, args.coops)
    print(f"pre-signed {len(wl.setup) + wl.timed_events} events: {wl.tags_issued_total} tags in {len(wl.issue)} "
          f"tags_issued, {len(wl.bags)} bags with a history in {len(wl.lots)} lots "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    rows = []
    for backend in args.backends:
        with fresh_store(backend, "verify") as url:
            print(f">> building the {backend} store ...", flush=True)
            built = build_store(url, wl)
            print(f"   {built['entries']:,} entries in {built['build_s']} s (projection {built['projection_s']} s)",
                  flush=True)
            for surface, w, c in [(s, w, c) for s in args.surface for w in args.workers for c in args.concurrency]:
                print(f">> GET {SURFACES[surface].format('{id}')} {backend}, {w} worker(s), concurrency {c} ...",
                      flush=True)
                row = run_one(url, wl, args, w, c, surface)
                row.update({"entries": built["entries"], "tags": wl.tags_issued_total, "build_s": built["build_s"]})
                rows.append(row)
                status = "ok" if row["valid"] else "INVALID: " + "; ".join(row["problems"])
                print(f"   p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms  {row['req_per_s']:.0f} req/s  {status}",
                      flush=True)
    print()
    print_table(rows, [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)])
    if args.json is not None:
        path = common.write_json("verify", {"benchmark": "verify_latency", "args": vars(args),
                                            "machine": machine,
                                            "store": {"tags": wl.tags_issued_total, "bags_with_history": len(wl.bags),
                                                      "lots": len(wl.lots), "tags_issued_events": len(wl.issue)},
                                            "rows": rows}, args.json or None)
        print(f"\nwrote {path}")
    return rows


if __name__ == "__main__":
    main()
