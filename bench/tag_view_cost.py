"""CPU and queries per tag view (`Ledger.tag` + `tag_document`, what GET /v1/tags/{id} does), in-process, on a
small and a larger PostgreSQL store with checkpoints, in the issue-13 unit: CPU seconds per view divided by the CPU
seconds of one Ed25519 verification (`cryptography`) measured in the same run.

    python bench/tag_view_cost.py --small 40 --large 1500 --views 400 [--lots 5] [--json out.json]

The stores are built through the real write path (tests/ledger/world.py: signed envelopes, one checkpoint every
50 tags), every tag with a history (attached, dispatched, received); with `--lots N` (at most 5), N lots merged from two such
bags each are built with the small store and measured apart (rows `small-lots`, `large-lots`). Queries and transactions are counted with
tests/query_count.py (the calling thread's statements). Runs against whatever `ledger` is first on sys.path, so
that an A side (a worktree of main, PYTHONPATH=that worktree) is measured by the same script.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: an A side's `ledger` wins

from ledger.views import tag_document  # noqa: E402
from tests.ledger.world import attach_and_deliver, make_world  # noqa: E402

from reference_speed import verification_cpu_seconds  # noqa: E402 - bench/, beside this script

_spec = importlib.util.spec_from_file_location("query_count", HERE.parent / "tests" / "query_count.py")
query_count = importlib.util.module_from_spec(_spec)
sys.modules["query_count"] = query_count
_spec.loader.exec_module(query_count)  # type: ignore[union-attr]


def view(ledger, tag: str) -> dict:  # noqa: ANN001
    """As the route: the view, then the document with the registry it was checked with (main: read again)."""
    found = ledger.tag(tag)
    return tag_document(found, getattr(found, "registry", None) or ledger.registry())


def measure(world, tags: list[str], views: int, rng: random.Random) -> dict:  # noqa: ANN001
    ledger = world.ledger
    for tag in tags[:20]:  # warm
        view(ledger, tag)
    with query_count.counting() as counts:
        doc = view(ledger, tags[0])
    assert doc["log"] is not None and all(e["inclusion_proof"] for e in doc["events"]), "no checkpoint / proofs"
    picks = [rng.choice(tags) for _ in range(views)]
    t0 = time.process_time()
    for tag in picks:
        view(ledger, tag)
    cpu = (time.process_time() - t0) / views
    return {"entries": ledger.store.size(), "queries": counts.queries, "transactions": counts.transactions,
            "cpu_ms_per_view": cpu * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=40)
    parser.add_argument("--large", type=int, default=1500)
    parser.add_argument("--views", type=int, default=400)
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432")
    parser.add_argument("--lots", type=int, default=0, choices=range(6), help="lots of 2 bags also measured")
    parser.add_argument("--json")
    args = parser.parse_args()
    import psycopg

    name = "tl_viewcost_" + uuid.uuid4().hex[:8]
    with psycopg.connect(args.pg + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    rows = []
    try:
        world = make_world(f"{args.pg}/{name}", tags=args.large + 5 + 2 * args.lots)
        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        world.ledger.start_projection(follow=False)
        rng = random.Random(13)
        t0 = time.perf_counter()
        done: list[str] = []
        lots: list[str] = []
        for i in range(1, args.large + 1):
            tag = f"KAL-{i:06d}"
            attach_and_deliver(world, tag)
            done.append(tag)
            if i % 50 == 0 or i == args.small:
                world.ledger.publish_checkpoint()
            if i == args.small:
                for j in range(args.lots):
                    bags = [f"KAL-{args.large + 1 + 2 * j + k:06d}" for k in range(2)]
                    for bag in bags:
                        attach_and_deliver(world, bag, to="depot")
                    lots.append(f"LOT-{j + 1:04d}")
                    world.clients["depot"].merge(lots[-1], bags, mass_g=99_000, time=world.tick())
                if lots:
                    world.ledger.publish_checkpoint()
                ref = verification_cpu_seconds()
                rows.append({"store": "small", "tags": i, **measure(world, done, args.views, rng),
                             "verify_us": ref * 1e6})
                if lots:
                    rows.append({"store": "small-lots", "tags": i, **measure(world, lots, args.views, rng),
                                 "verify_us": ref * 1e6})
        world.ledger.publish_checkpoint()
        build = time.perf_counter() - t0
        ref = verification_cpu_seconds()
        rows.append({"store": "large", "tags": args.large, **measure(world, done, args.views, rng),
                     "verify_us": ref * 1e6})
        if lots:
            rows.append({"store": "large-lots", "tags": args.large, **measure(world, lots, args.views, rng),
                         "verify_us": ref * 1e6})
        world.ledger.close()
    finally:
        with psycopg.connect(args.pg + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    import ledger

    for row in rows:
        row["ratio"] = row["cpu_ms_per_view"] / 1000 / (row["verify_us"] / 1e6)
        print(json.dumps(row))
    result = {"code": str(Path(ledger.__file__).parent.parent), "build_s": build, "rows": rows}
    print(f"code {result['code']}; build {build:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
