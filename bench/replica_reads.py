"""Public reads with a read replica, and the log's tiles from nginx, against the dynamic endpoints (issue 14).

A primary and its hot standby of the benchmark's own (tests/pg_replication.py: `initdb`, `pg_basebackup -R`,
`pg_ctl` on loopback ports, `fsync=off`, removed afterwards), a store built in-process on the primary
(`--tags` tags, a fraction of the bags with a custody history, merged 10 to a lot), a checkpoint signed and the log
mirrored as tiles (`sync_tiles`). Then, `--runs` times, alternating the order:

- **reads**: `tagledger serve` (1 worker) on the primary alone, then with `--read-db` the standby: `GET
  /v1/tags/{id}` of random bags and lots over `--concurrency` keep-alive connections from a separate client process
  (`--warmup`, then `--requests` timed); requests per second, p50/p99, and the CPU seconds of the server's
  processes, of the primary's PostgreSQL processes and of the standby's, per read, in Ed25519 verifications (the
  reference measured at the start: CPU time is the stable unit on this machine, /work/shared/README.md);
- **tiles**: random full level-0 hash tiles (8 KiB) from nginx serving the mirror with docs/nginx-tiles.conf
  (tests/nginx.py), the same tiles from the server's `/tiles/`, and `GET /v1/log/proof/inclusion` for random
  leaves from the server (primary alone): what a verifier reads to prove an entry.

Every answer must be 200 (a row with anything else is marked invalid); a sample of the replica answers is checked
to come from the replica (`X-Read-From`).

    python bench/replica_reads.py --json bench/results/replica-reads.json
    python bench/replica_reads.py --tags 5000 --requests 500 --runs 1          # smoke
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import verify_latency  # noqa: E402
from common import CpuMeter, Server, get_request, percentile, print_table  # noqa: E402

from ledger.keys import KeyPair  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from ledger.tiles_mirror import sync_tiles  # noqa: E402
from tests.nginx import serve_directory  # noqa: E402
from tests.pg_replication import Pair, primary_and_standby  # noqa: E402


def postmaster_tree(cluster: Any) -> Any:
    def pids() -> list[int]:
        try:
            pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return common.process_tree(pid)
    return pids


def build(pair: Pair, args: argparse.Namespace, tiles: Path) -> tuple[common.Workload, dict[str, Any]]:
    generated: list[KeyPair] = []
    real_generate = KeyPair.generate.__func__  # type: ignore[attr-defined]

    def keep(cls: type[KeyPair]) -> KeyPair:
        pair_ = real_generate(cls)
        generated.append(pair_)
        return pair_

    # build_workload signs the genesis with a log key it does not return: keep every key it generates
    with mock.patch.object(KeyPair, "generate", classmethod(keep)):
        wl = verify_latency.build_workload(args.tags, args.range_size, args.fraction, 10, 8, 4)
    log_public = wl.setup[0].envelope["body"]["data"]["log_key"]["public_key"]
    (log_key,) = [k for k in generated if k.public_key == log_public]
    url = pair.primary.url()
    built = verify_latency.build_store(url, wl)
    ledger = Ledger.open(url)
    try:
        ledger.start_checkpoints(log_key, publish_in_background=False)
        checkpoint = ledger.publish_checkpoint()
        sync_tiles(ledger.store, ledger.identity(), tiles)
    finally:
        ledger.close()
    pair.wait_replayed()
    return wl, {**built, "checkpoint_size": checkpoint.size if checkpoint else None}


def plan(wl: common.Workload, n: int, rng: random.Random) -> list[str]:
    pool = wl.bags + wl.lots
    return [f"/v1/tags/{rng.choice(pool)}" for _ in range(n)]


def split(paths: list[str], concurrency: int) -> dict[str, Any]:
    return {"workers": [[get_request(p) for p in paths[k::concurrency]] for k in range(concurrency)]}


PER_CONNECTION = 1000
"""Requests per keep-alive connection at most (nginx closes a connection after 1,000, `keepalive_requests`): a
longer plan is sent in several phases, each over new connections."""


def measure(port: int, warm: list[str], timed: list[str], concurrency: int, groups: dict[str, Any],
            reference: float) -> dict[str, Any]:
    common.run_client(port, [{"name": "warmup", **split(warm, concurrency)}])
    step = PER_CONNECTION * concurrency
    phases = [{"name": f"timed-{i}", **split(timed[i:i + step], concurrency)} for i in range(0, len(timed), step)]
    meter = CpuMeter(groups)
    meter.start()
    results = common.run_client(port, phases)
    cpu = meter.stop()
    lat = [x for r in results for x in r["latencies"]]
    statuses: dict[int, int] = {}
    for r in results:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    n = len(lat)
    errors = [e for r in results for e in r["errors"]]
    row: dict[str, Any] = {
        "requests": n, "req_s": round(n / sum(r["wall_s"] for r in results), 1),
        "p50_ms": round(percentile(lat, 50) * 1000, 2), "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "valid": set(statuses) == {200} and not errors and n == len(timed), "statuses": statuses,
        "client_cpu_s": round(sum(r["client_cpu_s"] for r in results), 2),
    }
    for name, seconds in cpu.items():
        row[f"{name}_cpu_s"] = seconds
        row[f"{name}_verif_per_req"] = round(seconds / n * reference, 2)
    return row


def reads_row(pair: Pair, mode: str, wl: common.Workload, args: argparse.Namespace, rng: random.Random,
              reference: float) -> dict[str, Any]:
    serve_args = ["--read-db", pair.standby.url(), "--read-max-lag", "30"] if mode == "replica" else []
    with Server(pair.primary.url(), workers=1, serve_args=serve_args) as server:
        import httpx

        # the replica is taken into the rotation by the worker's first probe: wait for it
        deadline = time.monotonic() + 30
        while mode == "replica" and httpx.get(server.base + "/v1/log/checkpoint").headers.get("x-read-from") != \
                "replica:1":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica never answered")
            time.sleep(0.2)
        groups = {"server": server.pids, "primary_pg": postmaster_tree(pair.primary),
                  "standby_pg": postmaster_tree(pair.standby)}
        row = measure(server.port, plan(wl, args.warmup, rng), plan(wl, args.requests, rng), args.concurrency,
                      groups, reference)
        sources = {httpx.get(server.base + f"/v1/tags/{wl.bags[i]}").headers.get("x-read-from") for i in range(5)}
        if sources != {"primary" if mode == "primary" else "replica:1"}:
            row["valid"] = False
            row["sources"] = sorted(map(str, sources))
    return {"part": "reads", "mode": mode, "concurrency": args.concurrency, **row}


def tiles_rows(pair: Pair, tiles: Path, checkpoint_size: int, args: argparse.Namespace, rng: random.Random,
               reference: float) -> list[dict[str, Any]]:
    full = checkpoint_size // 256
    if full < 1:
        raise RuntimeError("the log is too small for a full tile: use more --tags")

    def tile_path(n: int) -> str:
        digits = f"{n:03d}" if n < 1000 else None
        if digits is None:
            raise RuntimeError("more than 1,000 tiles: not needed here")
        return f"tile/0/{digits}"

    def tile_plan(prefix: str, n: int) -> list[str]:
        return [f"{prefix}/{tile_path(rng.randrange(full))}" for _ in range(n)]

    def proof_plan(n: int) -> list[str]:
        return [f"/v1/log/proof/inclusion?index={rng.randrange(checkpoint_size)}&size={checkpoint_size}"
                for _ in range(n)]

    rows = []
    with serve_directory(tiles) as base:
        port = int(base.rsplit(":", 1)[1])
        rows.append({"part": "tiles", "mode": "nginx: hash tile", "concurrency": args.concurrency,
                     **measure(port, tile_plan("", args.warmup), tile_plan("", args.nginx_requests),
                               args.concurrency, {"nginx": lambda: _listener_tree(port)}, reference)})  # workers forked by then
    with Server(pair.primary.url(), workers=1) as server:
        groups = {"server": server.pids, "primary_pg": postmaster_tree(pair.primary)}
        rows.append({"part": "tiles", "mode": "serve: /tiles hash tile", "concurrency": args.concurrency,
                     **measure(server.port, tile_plan("/tiles", args.warmup), tile_plan("/tiles", args.tile_requests),
                               args.concurrency, groups, reference)})
        rows.append({"part": "tiles", "mode": "serve: inclusion proof", "concurrency": args.concurrency,
                     **measure(server.port, proof_plan(args.warmup), proof_plan(args.tile_requests),
                               args.concurrency, groups, reference)})
    return rows


def _listener_tree(port: int) -> list[int]:
    """The nginx master that tests/nginx.py started on `port` (its configuration names the port) and its workers."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # nginx rewrites its command line: "nginx: master process /usr/sbin/nginx -p DIR -e LOG -c CONF"
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").split()
            if not args or not args[0].startswith(b"nginx") or b"master" not in args or b"-c" not in args:
                continue
            conf = Path(args[args.index(b"-c") + 1].decode())
            if f"127.0.0.1:{port};" in conf.read_text():
                return common.process_tree(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, default=20_000)
    ap.add_argument("--range-size", type=int, default=2_000)
    ap.add_argument("--fraction", type=float, default=0.3, help="share of the bags given a custody history")
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--tile-requests", type=int, default=3_000, help="timed requests per dynamic tiles/proof row")
    ap.add_argument("--nginx-requests", type=int, default=20_000, help="timed requests of the nginx row")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--parts", type=lambda t: set(t.split(",")), default={"reads", "tiles"},
                    help="reads,tiles (default both)")
    ap.add_argument("--json", nargs="?", const="", default=None, help="write the results (default bench/results/)")
    args = ap.parse_args()

    reference = common.ed25519_verify_rate()
    print(f"reference: {reference:,.0f} Ed25519 verifications/s on one core", flush=True)
    rng = random.Random(5)
    rows: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with primary_and_standby() as pair, tempfile.TemporaryDirectory(prefix="tl_bench_tiles_") as temp:
        tiles = Path(temp) / "tiles"
        wl, store = build(pair, args, tiles)
        print(f"store: {store}", flush=True)
        for run in range(args.runs if "reads" in args.parts else 0):
            order = ("primary", "replica") if run % 2 == 0 else ("replica", "primary")
            for mode in order:
                row = {"run": run + 1, **reads_row(pair, mode, wl, args, rng, reference)}
                rows.append(row)
                print(row, flush=True)
        for row in tiles_rows(pair, tiles, store["checkpoint_size"], args, rng, reference) if "tiles" in args.parts \
                else []:
            rows.append(row)
            print(row, flush=True)
    reference_after = common.ed25519_verify_rate()
    columns = [("run", "run"), ("part", "part"), ("mode", "mode"), ("req_s", "req/s"), ("p50_ms", "p50 ms"),
               ("p99_ms", "p99 ms"), ("server_verif_per_req", "server"), ("primary_pg_verif_per_req", "primary PG"),
               ("standby_pg_verif_per_req", "standby PG"), ("nginx_verif_per_req", "nginx"),
               ("client_cpu_s", "client CPU s"), ("valid", "valid")]
    print_table(rows, columns)
    if args.json is not None:
        path = common.write_json("replica-reads", {
            "started": started, "args": vars(args), "machine": common.machine_info(), "store": store,
            "reference_verifications_per_s": [round(reference), round(reference_after)], "rows": rows,
        }, args.json or None)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
