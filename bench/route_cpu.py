"""CPU per request of a few read routes, in-process (the app called through its ASGI interface by httpx, client
and server in one process, one request at a time), in the issue-13 unit: divided by the CPU time of one Ed25519
verification (`cryptography`) measured in the same run. A rough A/B tool for the server-side cost of a route on a
busy machine (CPU time, not wall time); the client's share is the same on both sides.

    python bench/route_cpu.py --tags 300 --requests 2000 [--backend postgres]

Builds a store through the real write path (tests/ledger/world.py), signs a checkpoint, then measures
GET /v1/log/checkpoint, GET /v1/log/proof/inclusion (random index, the checkpoint's size), GET /healthz and
GET /v1/tags/{id} (random bags with a history). Runs against whatever `ledger`/`api` is first on sys.path
(PYTHONPATH=<a worktree of main> for the A side).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from api.app import create_app  # noqa: E402
from tests.ledger.world import attach_and_deliver, make_world  # noqa: E402

from reference_speed import verification_cpu_seconds  # noqa: E402 - bench/, beside this script


async def run(app, paths: list[str]) -> float:  # noqa: ANN001
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for path in paths[:100]:
            (await client.get(path)).raise_for_status()
        t0 = time.process_time()
        for path in paths:
            response = await client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
        return (time.process_time() - t0) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432")
    args = parser.parse_args()
    import tempfile

    name = "tl_routecpu_" + uuid.uuid4().hex[:8]
    tmp = tempfile.mkdtemp(prefix="tl_routecpu_")
    if args.backend == "postgres":
        import psycopg

        with psycopg.connect(args.pg + "/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = f"{args.pg}/{name}"
    else:
        url = f"sqlite:///{tmp}/ledger.db"
    try:
        world = make_world(url, tags=args.tags)
        tags = [f"KAL-{i:06d}" for i in range(1, args.tags + 1)]
        for tag in tags:
            attach_and_deliver(world, tag)
        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        size = world.ledger.publish_checkpoint().size
        app = create_app(world.ledger, follow_projection=False)
        rng = random.Random(13)
        paths = {
            "checkpoint": ["/v1/log/checkpoint"] * args.requests,
            "inclusion": [f"/v1/log/proof/inclusion?index={rng.randrange(size)}&size={size}"
                          for _ in range(args.requests)],
            "healthz": ["/healthz"] * args.requests,
            "tag view": [f"/v1/tags/{rng.choice(tags)}" for _ in range(args.requests // 4)],
        }
        ref = verification_cpu_seconds()
        row = {kind: asyncio.run(run(app, p)) / ref for kind, p in paths.items()}
        row["verify_us"] = ref * 1e6
        row["inclusion_per_checkpoint"] = row["checkpoint"] / row["inclusion"]
        import api

        print(json.dumps({"code": str(Path(api.__file__).parent.parent), "backend": args.backend,
                          "entries": world.ledger.store.size(), **{k: round(v, 2) for k, v in row.items()}}))
        world.ledger.close()
    finally:
        if args.backend == "postgres":
            import psycopg

            with psycopg.connect(args.pg + "/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
