"""The load generator of the HTTP benchmarks, run in its own process by `common.run_client`.

Plain asyncio over keep-alive HTTP/1.1 connections with pre-built request bytes: much cheaper per request than
a general-purpose client, which matters on a 2-core machine where the client shares the CPUs with the server
and PostgreSQL. Each worker is one connection and sends its requests strictly in order, the next one only after
the previous answer (so a worker that owns some tags respects their custody order).

    python bench/_http_client.py IN.pkl OUT.pkl
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
import time
from collections import Counter


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        j = lower.index(b"\r\n", i + 2)
        return status, await reader.readexactly(int(head[i + 17 : j]))
    if b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return status, b""


async def run_phase(port: int, phase: dict, keep_bodies: bool) -> dict:
    workers = phase["workers"]
    labels = phase.get("labels")
    conns = [await asyncio.open_connection("127.0.0.1", port, limit=1 << 22) for _ in workers]
    go = asyncio.Event()
    latencies: list[list[float]] = [[] for _ in workers]
    statuses: list[Counter] = [Counter() for _ in workers]
    bodies: list[list[bytes]] = [[] for _ in workers]
    done_labels: list[list[int]] = [[] for _ in workers]
    errors: list[str] = []

    async def worker(k: int) -> None:
        reader, writer = conns[k]
        lat, st, bod, lab = latencies[k], statuses[k], bodies[k], done_labels[k]
        mine = labels[k] if labels else None
        await go.wait()
        clock = time.perf_counter
        try:
            for i, req in enumerate(workers[k]):
                t0 = clock()
                writer.write(req)
                status, body = await read_response(reader)
                lat.append(clock() - t0)
                st[status] += 1
                if mine is not None:
                    lab.append(mine[i])
                if keep_bodies or status >= 300:
                    bod.append(body if keep_bodies else body[:300])
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(f"worker {k}: {exc!r}")
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker(k)) for k in range(len(workers))]
    cpu0 = os.times()
    t0 = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    total = Counter()
    for c in statuses:
        total.update(c)
    return {
        "name": phase.get("name", ""),
        "wall_s": wall,
        "requests": sum(len(w) for w in workers),
        "statuses": dict(total),
        "latencies": [x for lat in latencies for x in lat],
        "labels": [x for lab in done_labels for x in lab] if labels else None,
        "bodies": [b for bod in bodies for b in bod],
        "errors": errors,
        "client_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
    }


async def main_async(spec: dict) -> list[dict]:
    return [await run_phase(spec["port"], phase, spec.get("keep_bodies", False)) for phase in spec["phases"]]


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        spec = pickle.load(f)
    results = asyncio.run(main_async(spec))
    with open(sys.argv[2], "wb") as f:
        pickle.dump(results, f, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    main()
