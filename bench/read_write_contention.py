"""Reads against writes: does a burst of public verification slow down custody recording? (issue 11, part 6)

One `tagledger serve` (1 HTTP worker) on a fresh PostgreSQL database, preloaded with organisations, tag issues
and some lots (so that there are tags with a history to read). Then, in one sitting on the same server,
phases that alternate:

  alone          the writers send POST /v1/events/batch (B envelopes each, W connections, each batch after the
                 previous answer) with nobody reading
  with readers   the same with R concurrent readers of GET /v1/tags/{id} (random tags with a history), each on
                 its own keep-alive connection, one request after the other; a reader answered 503 waits the
                 `Retry-After` it was given, as a well-behaved client does

alone, with readers, alone, ..., alone (`--pairs` phases with readers). Each phase ingests different lots
(fresh tags). Each phase with readers is compared with the mean rate of the phases alone on either side of it
(the speed of a shared machine drifts); a run's result is the median of these ratios; the target (issue 11) is
at least 0.8. Reads served and answered 503 are counted while the writers ran. Every ingest answer must be 201
and the store must then hold exactly the expected entries at gapless positions, otherwise the run is INVALID.
CPU per event, in Ed25519 verifications (`cryptography`, one core, measured in the same run): the server's
processes (`tagledger serve` and its worker, reads included) and the PostgreSQL backends of the database.

    python bench/read_write_contention.py --json   # 2 runs of 5 pairs, 2,000 events per phase, 50 readers
    python bench/read_write_contention.py --runs 1 --events 1000 --read-slots 8   # an experiment
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from _http_client import read_response  # noqa: E402
from common import CpuMeter, Server, check_gapless, fresh_store, get_request, post_request, print_table  # noqa: E402

from ledger.service import Ledger  # noqa: E402
from ledger.writer import Receipt  # noqa: E402


def _preload(url: str, events: list[common.Event]) -> None:
    ledger = Ledger.open(url)
    try:
        for start in range(0, len(events), 5000):
            results = ledger.submit_many([e.envelope for e in events[start:start + 5000]])
            bad = [r for r in results if not isinstance(r, Receipt)]
            if bad:
                raise RuntimeError(f"preload refused: {bad[0]}")
    finally:
        ledger.close()


def _backends(url: str) -> list[int]:
    """The PostgreSQL backends serving the database at `url` (not other databases' on a shared machine)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]


def _batches(groups: list[list[common.Event]], writers: int, batch: int) -> list[list[bytes]]:
    """Whole lots dealt round-robin to `writers` connections, cut into requests of about `batch` envelopes (a
    lot's events stay in order on one connection)."""
    shards: list[list[common.Event]] = [[] for _ in range(writers)]
    for i, group in enumerate(groups):
        shards[i % writers].extend(group)
    return [[post_request("/v1/events/batch", b"[" + b",".join(e.raw for e in shard[i:i + batch]) + b"]")
             for i in range(0, len(shard), batch)] for shard in shards]


async def _phase(port: int, writes: list[list[bytes]], readers: int, tags: list[str], warmup: float,
                 seed: int, meter: CpuMeter) -> dict[str, Any]:
    stop = asyncio.Event()
    rng = random.Random(seed)
    read_lat: list[float] = []
    read_status: dict[int, int] = {}
    write_lat: list[float] = []
    write_items: dict[int, int] = {}
    errors: list[str] = []

    async def reader(k: int) -> None:
        reader_, writer_ = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                writer_.write(get_request(f"/v1/tags/{rng.choice(tags)}"))
                status, _body, headers = await _response(reader_)
                read_status[status] = read_status.get(status, 0) + 1
                if status == 503:
                    retry = float(headers.get(b"retry-after", b"1"))
                    try:
                        await asyncio.wait_for(stop.wait(), retry)
                    except asyncio.TimeoutError:
                        pass
                    continue
                read_lat.append(time.perf_counter() - t0)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(f"reader {k}: {exc!r}")
        finally:
            writer_.close()

    async def writer(requests: list[bytes]) -> None:
        reader_, writer_ = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        try:
            for request in requests:
                t0 = time.perf_counter()
                writer_.write(request)
                status, body, _headers = await _response(reader_)
                write_lat.append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"batch answered {status}: {body[:200]!r}")
                    continue
                for item in json.loads(body)["results"]:
                    write_items[item["status"]] = write_items.get(item["status"], 0) + 1
        finally:
            writer_.close()

    tasks = [asyncio.create_task(reader(k)) for k in range(readers)]
    if readers:
        await asyncio.sleep(warmup)  # the readers are at full speed before the clock starts
    served_before = sum(n for s, n in read_status.items() if s != 503)  # in the warm-up: nobody writing
    busy_before = read_status.get(503, 0)
    meter.start()  # the server's CPU while the writers run (not in the warm-up)
    cpu0, t0 = os.times(), time.perf_counter()
    await asyncio.gather(*(writer(w) for w in writes))
    wall = time.perf_counter() - t0
    cpu1 = os.times()
    meter.stop()
    served = sum(n for s, n in read_status.items() if s != 503) - served_before
    busy = read_status.get(503, 0) - busy_before
    stop.set()
    await asyncio.gather(*tasks)
    return {"reads_per_s_no_writes": served_before / warmup if readers else None,
            "wall_s": wall, "write_items": write_items, "write_lat": write_lat, "read_status": read_status,
            "reads_in_window": served, "busy_in_window": busy, "read_lat": read_lat, "errors": errors,
            "client_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)}


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, dict[bytes, bytes]]:
    """`_http_client.read_response`, plus the headers (for Retry-After)."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
    status = int(head[9:12])
    length = int(headers.get(b"content-length", b"0"))
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        # rare here; let the shared reader handle it from a fresh buffer
        fake = asyncio.StreamReader()
        fake.feed_data(head)
        while True:
            size_line = await reader.readuntil(b"\r\n")
            fake.feed_data(size_line)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                fake.feed_data(await reader.readuntil(b"\r\n"))
                break
            fake.feed_data(await reader.readexactly(size + 2))
        fake.feed_eof()
        status, body = await read_response(fake)
        return status, body, headers
    return status, await reader.readexactly(length), headers


def run(args: argparse.Namespace, wl: common.Workload, run_no: int) -> dict[str, Any]:
    preload_groups = wl.groups[:args.preload_lots]
    phases = [("alone", 0), ("with readers", args.readers)] * args.pairs + [("alone", 0)]
    per_phase = (len(wl.groups) - args.preload_lots) // len(phases)
    slices = [wl.groups[args.preload_lots + i * per_phase: args.preload_lots + (i + 1) * per_phase]
              for i in range(len(phases))]
    tags = sorted({e.envelope["body"]["stream"][4:] for g in preload_groups for e in g})  # bags and lots
    rows: list[dict[str, Any]] = []
    with fresh_store("postgres", f"rw{run_no}") as url:
        _preload(url, [*wl.setup, *wl.issue, *(e for g in preload_groups for e in g)])
        with Server(url, workers=1, log_file=Path(args.server_log) if args.server_log else None) as server:
            for (name, readers), groups in zip(phases, slices):
                events = sum(len(g) for g in groups)
                meter = CpuMeter({"server": server.pids, "postgres": lambda: _backends(url)})
                result = asyncio.run(_phase(server.port, _batches(groups, args.writers, args.batch), readers, tags,
                                            args.warmup, seed=run_no, meter=meter))
                cpu = meter.used
                problems = list(result["errors"][:3])
                if result["write_items"] != {201: events}:
                    problems.append(f"ingest answers {result['write_items']}, expected {{201: {events}}}")
                rows.append({
                    "run": run_no, "phase": name, "readers": readers, "events": events,
                    "wall_s": round(result["wall_s"], 2), "events_per_s": events / result["wall_s"],
                    "batch_p50_ms": common.percentile(result["write_lat"], 50) * 1000,
                    "batch_max_ms": max(result["write_lat"]) * 1000,
                    "reads_served": result["reads_in_window"], "reads_503": result["busy_in_window"],
                    "reads_per_s": result["reads_in_window"] / result["wall_s"] if readers else None,
                    "reads_per_s_no_writes": result["reads_per_s_no_writes"],
                    "read_p50_ms": common.percentile(result["read_lat"], 50) * 1000 if readers else None,
                    "read_p99_ms": common.percentile(result["read_lat"], 99) * 1000 if readers else None,
                    "cpu_server_s": cpu["server"], "cpu_postgres_s": cpu["postgres"],
                    "cpu_client_s": round(result["client_cpu_s"], 2), "problems": problems,
                })
                print(f"   run {run_no} {name:12s} {rows[-1]['events_per_s']:7.0f} events/s"
                      f"  reads {result['reads_in_window']} served, {result['busy_in_window']} answered 503"
                      f"{'  PROBLEMS: ' + '; '.join(problems) if problems else ''}", flush=True)
        total = len(wl.setup) + len(wl.issue) + sum(len(g) for g in preload_groups) + sum(
            len(g) for s in slices for g in s)
        gap = check_gapless(url, total)
        if not gap["gapless_ok"]:
            rows[-1]["problems"].append(f"store: {gap}")
    ratios = []
    for i, r in enumerate(rows):
        r["valid"] = not r["problems"]
        if r["readers"]:  # against the phases alone just before and just after it (the machine drifts)
            r["ratio_to_alone"] = r["events_per_s"] / statistics.mean(
                (rows[i - 1]["events_per_s"], rows[i + 1]["events_per_s"]))
            ratios.append(r["ratio_to_alone"])
    return {"rows": rows, "ratios": ratios, "valid": all(r["valid"] for r in rows)}


COLUMNS = [("run", "run"), ("phase", "phase"), ("readers", "readers"), ("events", "events"), ("wall_s", "wall s"),
           ("events_per_s", "events/s"), ("ratio_to_alone", "÷ alone"), ("batch_p50_ms", "batch p50 ms"),
           ("batch_max_ms", "batch max ms"), ("reads_served", "reads served"), ("reads_503", "reads 503"),
           ("reads_per_s", "reads/s"), ("reads_per_s_no_writes", "reads/s before writes"), ("read_p50_ms", "read p50 ms"), ("read_p99_ms", "read p99 ms"),
           ("cpu_server_ev", "server CPU/event (verif.)"), ("cpu_pg_ev", "its PG backends CPU/event (verif.)"),
           ("valid", "valid")]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2, help="runs, each on a fresh database and server")
    p.add_argument("--pairs", type=int, default=5,
                   help="(alone, with readers) pairs per run, then alone once more: each phase with readers is "
                        "compared with the phases alone on either side of it")
    p.add_argument("--events", type=int, default=2000, help="events ingested per phase (whole lots)")
    p.add_argument("--preload-lots", type=int, default=60, help="lots recorded before the server starts (read)")
    p.add_argument("--readers", type=int, default=50)
    p.add_argument("--writers", type=int, default=2, help="connections posting batches")
    p.add_argument("--batch", type=int, default=120, help="envelopes per POST /v1/events/batch")
    p.add_argument("--read-slots", type=int, help="the server's $TAGLEDGER_READ_SLOTS (default: its own)")
    p.add_argument("--read-slots-while-writing", type=int,
                   help="the server's $TAGLEDGER_READ_SLOTS_WHILE_WRITING (default: its own)")
    p.add_argument("--read-share-while-writing", type=float,
                   help="the server's $TAGLEDGER_READ_SHARE_WHILE_WRITING (default: its own)")
    p.add_argument("--read-queue", type=int, help="the server's $TAGLEDGER_READ_QUEUE (default: its own)")
    p.add_argument("--warmup", type=float, default=2.0,
                   help="seconds of reading before the ingest clock starts (reads/s with nobody writing)")
    p.add_argument("--server-log", help="append the server's output to this file")
    p.add_argument("--json", nargs="?", const="", help="write results JSON (default bench/results/rw-*.json)")
    args = p.parse_args(argv)
    machine = common.machine_info()
    for option, variable in ((args.read_slots, "TAGLEDGER_READ_SLOTS"), (args.read_queue, "TAGLEDGER_READ_QUEUE"),
                             (args.read_slots_while_writing, "TAGLEDGER_READ_SLOTS_WHILE_WRITING"),
                             (args.read_share_while_writing, "TAGLEDGER_READ_SHARE_WHILE_WRITING")):
        if option is not None:
            os.environ[variable] = str(option)  # the server inherits it
    per_phase = common.groups_for_events(args.events, 10)
    wl = common.build_workload(groups=args.preload_lots + (2 * args.pairs + 1) * per_phase)
    load_before = os.getloadavg()
    runs = [run(args, wl, n + 1) for n in range(args.runs)]
    verify_rate = common.ed25519_verify_rate()
    rows = [r for result in runs for r in result["rows"]]
    for r in rows:
        r["cpu_server_ev"] = r["cpu_server_s"] * verify_rate / r["events"]
        r["cpu_pg_ev"] = r["cpu_postgres_s"] * verify_rate / r["events"]
    ratios = [ratio for result in runs for ratio in result["ratios"]]
    medians = [statistics.median(result["ratios"]) for result in runs]
    print(f"\nreference: Ed25519 verify alone: {verify_rate:,.0f}/s on one core; load average before: "
          f"{load_before[0]:.1f}\n")
    print_table(rows, COLUMNS)
    print(f"\ningest with {args.readers} readers ÷ alone, median of each run: {', '.join(f'{m:.2f}' for m in medians)}"
          f" (min {min(medians):.2f}, median {statistics.median(medians):.2f}; target ≥ 0.80); every phase: min "
          f"{min(ratios):.2f}, median {statistics.median(ratios):.2f}; valid: {all(r['valid'] for r in runs)}")
    payload = {"benchmark": "read_write_contention", "args": vars(args), "machine": machine,
               "load_average_before": load_before, "ed25519_verify_per_s_one_core": verify_rate,
               "ratios": ratios, "run_medians": medians, "rows": rows}
    if args.json is not None:
        print(f"wrote {common.write_json('rw', payload, args.json or None)}")
    return payload


if __name__ == "__main__":
    main()
