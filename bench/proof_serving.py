"""Merkle proofs served by `tagledger serve` from the ~1,000,000-entry store: inclusion and consistency proofs
per second and their latency, and the stored tree's size on disk.

The store is the one bench/audit_replay.py builds and caches (`--cache`, built here if missing). The server is
`tagledger serve` with one HTTP worker (bench/common.py `Server`); the requests come from a separate client
process (bench/_http_client.py) over `--concurrency` keep-alive connections, each sending one request after the
other:

- `GET /v1/log/proof/inclusion?index=I&size=S`, I uniform in [0, S), S the latest checkpoint's size;
- `GET /v1/log/proof/consistency?old=O&new=S`, O uniform in [1, S).

`--warmup` requests first (not counted), then `--requests` timed ones. Before each row the script waits for
the 1-minute load average to fall below `--max-load`; a row during which other processes used more than
`--max-other` CPU-seconds per second is measured again (bench/audit_replay.py `undisturbed`).

Every answer of the timed phase is then checked (after the clock stopped): each inclusion proof against the
signed checkpoint's root (the checkpoint note verified with the log key), and for the first `--check-leaves`
answers its `leaf_hash` against SHA-256(0x00 || entry) of the entry read from the exported bundle; each
consistency proof from a root of size O that this script computes itself from the bundle's entries (not from
the server's stored tree) to the checkpoint's root. A row is `valid` only if every answer was 200 and every
proof verified.

`--db postgresql://.../NAME`: the store in that PostgreSQL database instead of SQLite (built there, the database
dropped and created again, when `--cache` holds no build of it). `--py-spy PREFIX`: the server runs under py-spy
(profiles in PREFIX*.txt, for bench/spy_report.py; its CPU figures then include py-spy's own).

    python bench/proof_serving.py --json
    python bench/proof_serving.py --entries 50000 --cache /tmp/tagledger-bench-50k --requests 500
    python bench/proof_serving.py --entries 150000 --cache /tmp/pg-150k \
        --db postgresql://root@127.0.0.1:5432/tl_proofs_150k
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audit_replay  # noqa: E402
import common  # noqa: E402
from common import CpuMeter, Server, get_request, percentile, print_table  # noqa: E402

from verification.checkpoint import open_checkpoint  # noqa: E402
from verification.merkle import CompactRange, ProofError, leaf_hash, verify_consistency, verify_inclusion  # noqa: E402
from verification.note import parse_vkey  # noqa: E402

KINDS = ("inclusion", "consistency", "checkpoint")
"""`checkpoint`: GET /v1/log/checkpoint, the trivial read the proofs are compared with (issue 13)."""


def _path(kind: str, size: int, rng: random.Random) -> tuple[str, int]:
    if kind == "checkpoint":
        return "/v1/log/checkpoint", size
    if kind == "inclusion":
        i = rng.randrange(size)
        return f"/v1/log/proof/inclusion?index={i}&size={size}", i
    old = rng.randrange(1, size)
    return f"/v1/log/proof/consistency?old={old}&new={size}", old


def _roots_at(bundle: str, sizes: set[int], size: int) -> tuple[dict[int, bytes], list[bytes]]:
    """Roots of the trees of each of `sizes` leaves and the leaf hash of every entry, from the bundle's entries."""
    roots: dict[int, bytes] = {}
    leaves: list[bytes] = []
    tree = CompactRange()
    with zipfile.ZipFile(bundle) as z, z.open("entries.ndjson") as lines:
        for line in lines:
            if tree.size == size:
                break
            h = leaf_hash(line[:-1])
            leaves.append(h)
            tree.append(h)
            if tree.size in sizes:
                roots[tree.size] = tree.root()
    roots[tree.size] = tree.root()
    return roots, leaves


def check_answers(kind: str, bodies: list[bytes], params: list[int], size: int, root: bytes,
                  old_roots: dict[int, bytes], leaves: list[bytes], check_leaves: int) -> list[str]:
    problems = []
    for n, (body, p) in enumerate(zip(bodies, params)):
        try:
            if kind == "checkpoint":
                if f"\n{size}\n{base64.b64encode(root).decode()}\n".encode() not in body:
                    raise ProofError("not the signed checkpoint of the store")
                continue
            doc = json.loads(body)
            proof = [bytes.fromhex(h) for h in doc["hashes"]]
            if kind == "inclusion":
                served_leaf = bytes.fromhex(doc["leaf_hash"])
                if (doc["index"], doc["size"]) != (p, size):
                    raise ProofError(f"answer for index {doc['index']} size {doc['size']}")
                verify_inclusion(served_leaf, p, size, proof, root)
                if n < check_leaves and served_leaf != leaves[p]:
                    raise ProofError("the served leaf hash is not SHA-256(0x00 || entry)")
            else:
                if (doc["old"], doc["new"]) != (p, size):
                    raise ProofError(f"answer for old {doc['old']} new {doc['new']}")
                verify_consistency(p, size, old_roots[p], root, proof)
        except (ProofError, ValueError, KeyError) as error:
            problems.append(f"{kind} {p}: {error}")
    return problems


def run_one(server: Server, kind: str, concurrency: int, size: int, args: argparse.Namespace,
            plans: dict[tuple[str, int], Any]) -> dict[str, Any]:
    warm, timed = plans[(kind, concurrency)]

    def split(plan: list[tuple[str, int]]) -> dict[str, Any]:
        ws = [list(range(k, len(plan), concurrency)) for k in range(concurrency)]
        return {"workers": [[get_request(plan[i][0]) for i in w] for w in ws], "labels": ws}

    phases = [{"name": "warmup", **split(warm)}, {"name": "timed", **split(timed)}]
    load = audit_replay.wait_quiet(args.max_load, args.max_wait)
    busy0, self0, t0 = audit_replay.busy_seconds(), os.times(), time.perf_counter()
    meter = CpuMeter({"server": server.pids})
    meter.start()
    results = common.run_client(server.port, phases, keep_bodies=True)
    cpu = meter.stop()
    self1 = os.times()
    r = results[1]
    # CPU time of processes that are not part of the measurement (the server, this script and the client
    # process, which it waited for), during the warm-up and the timed phase
    other = audit_replay.busy_seconds() - busy0 - cpu["server"] \
        - ((self1.user - self0.user) + (self1.system - self0.system) + (self1.children_user - self0.children_user)
           + (self1.children_system - self0.children_system))
    lat = r["latencies"]
    order = r["labels"] or []
    return {"kind": kind, "concurrency": concurrency, "requests": r["requests"], "wall_s": round(r["wall_s"], 2),
            "req_per_s": r["requests"] / r["wall_s"], "p50_ms": percentile(lat, 50) * 1000,
            "p90_ms": percentile(lat, 90) * 1000, "p99_ms": percentile(lat, 99) * 1000,
            "max_ms": max(lat) * 1000 if lat else None, "statuses": r["statuses"],
            "server_cpu_ms_per_req": cpu["server"] * 1000 / (r["requests"] + len(warm)),
            "cpu_server_s": cpu["server"], "cpu_client_s": round(r["client_cpu_s"], 2),
            "other_cpu_s": round(max(other, 0.0), 1), "measure_wall_s": round(time.perf_counter() - t0, 2),
            "load_1m_before": load["load_1m"], "uptime_before": load["uptime"],
            "_bodies": r["bodies"], "_params": [timed[i][1] for i in order], "_errors": r["errors"]}


COLUMNS = [("kind", "proof"), ("concurrency", "concurrency"), ("requests", "requests"), ("req_per_s", "req/s"),
           ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
           ("server_cpu_ms_per_req", "server CPU ms/req"), ("cpu_client_s", "client CPU s"),
           ("other_cpu_s", "other CPU s"), ("load_1m_before", "load before"), ("attempt", "attempt"),
           ("checked", "proofs verified"), ("valid", "valid")]


def _csv(kind):  # noqa: ANN001, ANN202
    return lambda s: [kind(x) for x in s.split(",") if x]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--cache", default=audit_replay.DEFAULT_CACHE)
    p.add_argument("--kinds", type=_csv(str), default=list(KINDS))
    p.add_argument("--concurrency", type=_csv(int), default=[1, 8])
    p.add_argument("--requests", type=int, default=3_000, help="timed requests per row")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--check-leaves", type=int, default=500,
                   help="inclusion answers whose leaf hash is also compared with the entry's own hash")
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--max-wait", type=float, default=600)
    p.add_argument("--max-other", type=float, default=0.1,
                   help="a row is measured again if other processes used more CPU-seconds per second than this")
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--json", nargs="?", const="", help="write results JSON (default bench/results/proofs-*.json)")
    p.add_argument("--db", help="a PostgreSQL URL for the store (default: SQLite under --cache)")
    p.add_argument("--py-spy", help="profile the server with py-spy into PREFIX*.txt")
    return p


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = build_parser().parse_args(argv)
    machine = common.machine_info()
    meta = audit_replay.ensure_store(Path(args.cache), args.entries, args.db)
    machine["ed25519_verify_per_s_one_core"] = round(common.ed25519_verify_rate())

    tree_disk = None
    if meta.get("db"):  # SQLite: the stored tree's size on disk
        disk = audit_replay._tree_bytes(meta["db"])
        nodes = disk["tables"].get("tagledger_merkle_nodes", {}).get("bytes")
        events = sum(v["bytes"] for k, v in disk["tables"].items() if k.startswith("tagledger_events"))
        tree_disk = {"entries": meta["entries"], "merkle_node_rows": disk["merkle_node_rows"],
                     "rows_per_entry": disk["merkle_node_rows"] / meta["entries"], "method": disk["method"],
                     "tree_bytes": nodes, "tree_bytes_per_entry": nodes / meta["entries"] if nodes else None,
                     "event_tables_bytes": events, "file_bytes": disk["file_bytes"],
                     "tree_share_of_file": nodes / disk["file_bytes"] if nodes else None, "tables": disk["tables"]}
        print(f"stored tree: {disk['merkle_node_rows']:,} node rows ({tree_disk['rows_per_entry']:.2f} per entry), "
              + (f"{nodes / 1e6:,.1f} MB = {tree_disk['tree_bytes_per_entry']:.1f} bytes per entry "
                 f"({tree_disk['tree_share_of_file']:.1%} of the {disk['file_bytes'] / 1e6:,.0f} MB file)" if nodes
                 else f"file {disk['file_bytes'] / 1e6:,.0f} MB"), flush=True)
        import sqlite3

        conn = sqlite3.connect(f"file:{meta['db']}?mode=ro", uri=True)
        note = conn.execute("SELECT note FROM tagledger_checkpoints ORDER BY size DESC LIMIT 1").fetchone()[0]
        conn.close()
    else:
        import psycopg

        with psycopg.connect(meta["url"]) as pg:
            note = pg.execute("SELECT note FROM tagledger_checkpoints ORDER BY size DESC LIMIT 1").fetchone()[0]
    checkpoint = open_checkpoint(note, parse_vkey(meta["vkey"]))
    size, root = checkpoint.size, checkpoint.root_hash

    rng = random.Random(23)
    plans = {(k, c): ([_path(k, size, rng) for _ in range(args.warmup)],
                      [_path(k, size, rng) for _ in range(args.requests)])
             for k in args.kinds for c in args.concurrency}
    olds = {p for (k, _), (_, timed) in plans.items() if k == "consistency" for _, p in timed}
    t0 = time.perf_counter()
    old_roots, leaves = _roots_at(meta["bundle"], olds, size)
    if old_roots[size] != root:
        raise SystemExit("the bundle's entries do not reproduce the signed checkpoint's root")
    print(f"checkpoint size {size:,} verified; {len(olds):,} old roots and the leaf hashes computed from the bundle "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)

    rows = []
    with Server(meta["url"], workers=1, py_spy=args.py_spy) as server:
        for kind in args.kinds:
            for c in args.concurrency:
                print(f">> {kind} proofs, concurrency {c} ...", flush=True)
                row = audit_replay.undisturbed(lambda: run_one(server, kind, c, size, args, plans), args)
                problems = list(row.pop("_errors"))
                bodies, params = row.pop("_bodies"), row.pop("_params")
                if set(row["statuses"]) != {200}:
                    problems.append(f"statuses {row['statuses']}")
                if len(bodies) != row["requests"]:
                    problems.append(f"{len(bodies)} answers kept of {row['requests']}")
                problems += check_answers(kind, bodies, params, size, root, old_roots, leaves, args.check_leaves)
                row["checked"] = len(bodies)
                row["valid"] = not problems
                row["problems"] = problems[:5]
                row["proof_hashes_mean"] = None if kind == "checkpoint" else \
                    sum(len(json.loads(b)["hashes"]) for b in bodies) / max(len(bodies), 1)
                rows.append(row)
                verdict = f"all {len(bodies)} proofs verified" if row["valid"] else \
                    "INVALID: " + "; ".join(problems[:3])
                print(f"   {row['req_per_s']:,.0f} req/s  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                      f"{verdict}", flush=True)
    print()
    print_table(rows, COLUMNS)
    if args.json is not None:
        path = common.write_json("proofs", {"benchmark": "proof_serving", "args": vars(args), "machine": machine,
                                            "backend": "postgres" if args.db else "sqlite",
                                            "checkpoint": {"size": size, "root": root.hex()},
                                            "tree_on_disk": tree_disk, "rows": rows}, args.json or None)
        print(f"\nwrote {path}")
    return rows


if __name__ == "__main__":
    main()
