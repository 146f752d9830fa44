"""The auditor's replay of a ~1,000,000-entry log: wall time, entries/s and peak memory of the auditor and of its
worker processes, from a bundle and over HTTP.

The store (SQLite) is built once with the real write path, in-process (`Ledger.submit_many` in batches of
10,000 pre-signed envelopes, every one checked), and cached under `--cache` with its log key, a signed
checkpoint of all of it, the custody projection caught up and an exported bundle; later runs reuse it.
Workload (bench/common.py `build_workload`): 8 sites, 4 cooperatives, 2 traders; bags attached at a site,
dispatched to a cooperative, received, merged 10 to a lot, the lot dispatched to a trader and received (33
entries per lot); tags issued in rolls of 2,000 (5% of them never used). Unlike the other benchmarks, the
rolls are not all issued up front: each `tags_issued` goes into the log just before the first bag or lot
that needs one of its tags, as in a real programme, so a prefix of the log holds a proportional share of the
tags (this is what makes the memory-growth comparison meaningful).

Each measurement is `python -m verification.audit SOURCE --no-state --vkey VKEY --workers W --json` in its
own process (`--workers 0`: one process; `1`: one worker process plus the calling process; `2`: one per core),
and `--as-of N` for a prefix. The auditor's process tree is sampled every 0.2 s from /proc: the peak RSS of
each process is its `VmHWM` (the kernel's high-water mark, exact even between samples), the tree's peak is
the largest sum of `VmRSS` seen. CPU seconds are the auditor's and its reaped workers' (`wait4`). "other CPU s"
is the CPU time the machine spent on processes that are not part of the measurement (from /proc/stat), to
show interference on the shared 2-core machine. Before each measurement the script waits (up to
`--max-wait` s) for the 1-minute load average to fall below `--max-load`, and a run during which other
processes used more than `--max-other` CPU-seconds per second is done again (at most `--retries` times;
the least disturbed attempt is reported, every attempt is in the JSON).

    python bench/audit_replay.py --build-only                       # build / check the cached 1M store
    python bench/audit_replay.py --json                             # everything, ~1M entries
    python bench/audit_replay.py --entries 50000 --cache /tmp/tagledger-bench-50k --as-of 12500
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import CpuMeter, Server, print_table  # noqa: E402

from ledger.keys import KeyPair  # noqa: E402

DEFAULT_CACHE = "/tmp/tagledger-bench-1m"
BAGS_PER_LOT, SITES, COOPS, TRADERS = 10, 8, 4, 2
ROLL = 2_000  # tags per tags_issued
SPARE = 0.05  # share of issued tags never used
SETUP_EVENTS = 1 + SITES + COOPS + TRADERS
CACHE_VERSION = 1

# ---------------------------------------------------------------------------------------------------------------
# The cached store
# ---------------------------------------------------------------------------------------------------------------


def _plan(entries: int) -> dict[str, int]:
    """Workload parameters that give about `entries` log entries."""
    per_group = 3 * BAGS_PER_LOT + 3
    groups = max(COOPS, (entries - SETUP_EVENTS) // per_group)
    for _ in range(3):  # the tags_issued events take a few entries too
        bags_per_site = int(-(-groups * BAGS_PER_LOT // SITES) * (1 + SPARE))
        lots_per_coop = int(-(-groups // COOPS) * (1 + SPARE))
        issues = SITES * -(-bags_per_site // ROLL) + COOPS * -(-lots_per_coop // ROLL)
        groups = max(COOPS, (entries - SETUP_EVENTS - issues) // per_group)
    bags_per_site = int(-(-groups * BAGS_PER_LOT // SITES) * (1 + SPARE))
    lots_per_coop = int(-(-groups // COOPS) * (1 + SPARE))
    return {"groups": groups, "bag_tags_per_site": bags_per_site, "lot_tags_per_coop": lots_per_coop}


def _interleaved(wl: common.Workload) -> list[common.Event]:
    """The workload in a valid log order where each roll of tags is issued just before its first tag is used
    (the rolls nobody used up go last). The relative order of each organisation's events is kept."""
    rolls: dict[str, deque[tuple[int, common.Event]]] = defaultdict(deque)
    for event in wl.issue:
        (r,) = event.envelope["body"]["data"]["ranges"]
        rolls[r["prefix"]].append((r["start"] + r["count"] - 1, event))
    issued_upto: dict[str, int] = defaultdict(int)
    out = list(wl.setup)

    def need(tag: str) -> None:
        prefix, number = tag[: -6], int(tag[-6:])
        while issued_upto[prefix] < number:
            last, event = rolls[prefix].popleft()
            out.append(event)
            issued_upto[prefix] = last

    for group in wl.groups:
        for event in group:
            body = event.envelope["body"]
            if body["type"] in ("tag_attached", "lot_formed"):
                need(body["stream"].removeprefix("tag:"))
            out.append(event)
    for pending in rolls.values():
        out.extend(event for _, event in pending)
    return out


def _tree_bytes(db_path: str) -> dict[str, Any]:
    """Bytes on disk of each table (SQLite `dbstat`), or the file size if dbstat is not compiled in."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        try:
            rows = conn.execute("SELECT name, SUM(pgsize), COUNT(*) FROM dbstat GROUP BY name").fetchall()
            by_table = {name: {"bytes": size, "pages": pages} for name, size, pages in rows}
            method = "dbstat"
        except sqlite3.OperationalError:
            by_table, method = {}, "file size only"
        nodes = conn.execute("SELECT COUNT(*) FROM tagledger_merkle_nodes").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return {"method": method, "file_bytes": os.path.getsize(db_path), "page_size": page_size,
            "merkle_node_rows": nodes, "tables": by_table}


def _postgres_size(url: str) -> int | None:
    """The number of entries of the PostgreSQL store at `url`, None if it cannot be read (no such database)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM tagledger_events_tt_main").fetchone()[0])
    except psycopg.Error:
        return None


def _create_postgres(url: str) -> None:
    """Create the (empty) database of `url`, dropping it first if it exists."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def catch_up_projections(url: str) -> float:
    """Bring the store's projections (custody and flags) up to date, in this process; the seconds it took.

    A server started on a store whose flags projection lags folds the whole log first, in its supervising process:
    seconds of CPU that a benchmark of that server would count in its first row (issue 13: the first kind measured
    after a start read up to twice the CPU per request of the same kind measured later)."""
    from ledger.service import Ledger

    t0 = time.perf_counter()
    ledger = Ledger.open(url)
    try:
        ledger.start_projection(follow=False).catch_up()
        assert ledger.flags is not None
        ledger.flags.catch_up()
    finally:
        ledger.close()
    return time.perf_counter() - t0


def ensure_store(cache: Path, entries: int, url: str | None = None) -> dict[str, Any]:
    """Build the store, checkpoint and bundle under `cache` unless a complete build of that size is there.

    `url`: a PostgreSQL database to hold the store instead of a SQLite file under `cache` (created, or dropped and
    created again, when built; `cache` then holds the keys, the bundle and meta.json)."""
    meta_path = cache / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("entries_target") == entries and meta.get("version") == CACHE_VERSION \
                and meta.get("url") == (url or meta.get("url")) and Path(meta["bundle"]).exists() \
                and (Path(meta["db"]).exists() if meta.get("db") else _postgres_size(meta["url"]) == meta["entries"]):
            print(f"reusing the cached store in {cache}: {meta['entries']:,} entries, {meta['tags']:,} tags, "
                  f"bundle {meta['bundle_bytes'] / 1e6:,.0f} MB", flush=True)
            catch_up_projections(meta["url"])
            return meta
        print(f"the cache in {cache} is for another size or version: rebuilding", flush=True)
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)

    from ledger.bundle import export_bundle
    from ledger.service import Ledger
    from ledger.writer import Receipt

    plan = _plan(entries)
    t0 = time.perf_counter()
    generated: list[KeyPair] = []
    real_generate = KeyPair.generate.__func__  # type: ignore[attr-defined]

    def keep(cls: type[KeyPair]) -> KeyPair:
        pair = real_generate(cls)
        generated.append(pair)
        return pair

    # build_workload signs the genesis itself with a log key it does not return: keep every key it generates
    with mock.patch.object(KeyPair, "generate", classmethod(keep)):
        wl = common.build_workload(groups=plan["groups"], bags_per_lot=BAGS_PER_LOT, sites=SITES,
                                   cooperatives=COOPS, traders=TRADERS, bag_tags_per_site=plan["bag_tags_per_site"],
                                   lot_tags_per_coop=plan["lot_tags_per_coop"], issue_chunk=ROLL, seed=17)
    log_public = wl.setup[0].envelope["body"]["data"]["log_key"]["public_key"]
    (log_key,) = [k for k in generated if k.public_key == log_public]
    log_key.save(cache / "log.pem")
    events = [e.envelope for e in _interleaved(wl)]
    signed_s = time.perf_counter() - t0
    summary = {"tags": wl.tags_issued_total, "bags_with_history": len(wl.bags), "lots": len(wl.lots),
               "unused_tags": len(wl.unused), "tags_issued_events": len(wl.issue), "roll": ROLL}
    del wl, generated
    print(f"pre-signed {len(events):,} events in {signed_s:.0f} s: {summary}", flush=True)

    db = None if url else cache / "ledger.db"
    if url:
        _create_postgres(url)
    else:
        url = f"sqlite:///{db}"
    ledger = Ledger.open(url)
    try:
        t0 = time.perf_counter()
        refused = 0
        for i in range(0, len(events), 10_000):
            refused += sum(not isinstance(r, Receipt) for r in ledger.submit_many(events[i:i + 10_000]))
            if refused:
                raise RuntimeError(f"{refused} events refused while building the store (batch at {i})")
            if (i // 10_000) % 10 == 9:
                rate = (i + 10_000) / (time.perf_counter() - t0)
                print(f"   {i + 10_000:,} entries ({rate:,.0f}/s)", flush=True)
        build_s = time.perf_counter() - t0
        del events
        ledger.start_checkpoints(log_key, publish_in_background=False)
        checkpoint = ledger.publish_checkpoint()
        t0 = time.perf_counter()
        ledger.start_projection(follow=False).catch_up()
        assert ledger.flags is not None
        ledger.flags.catch_up()
        projection_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        bundle = cache / "bundle.zip"
        exported = export_bundle(ledger, bundle)
        export_s = time.perf_counter() - t0
        size = ledger.store.size()
        vkey = ledger.identity().vkey
        tags = ledger.projection.summary()["tags"]
    finally:
        ledger.close()
    if db is None:  # PostgreSQL: the planner's statistics, as autovacuum would gather them later (benchmarks.md 11.1)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    (cache / "log.vkey").write_text(vkey + "\n")
    meta = {
        "version": CACHE_VERSION, "entries_target": entries, "entries": size, "db": db and str(db), "url": url,
        "bundle": str(bundle), "bundle_bytes": bundle.stat().st_size, "vkey": vkey,
        "vkey_file": str(cache / "log.vkey"), "log_key_file": str(cache / "log.pem"),
        "checkpoint_size": checkpoint.size, "bundle_entries": exported.entries, "tags": tags,
        "workload": {**plan, **summary, "bags_per_lot": BAGS_PER_LOT, "sites": SITES, "cooperatives": COOPS,
                     "traders": TRADERS, "order": "rolls issued just before first use"},
        "build": {"sign_s": round(signed_s, 1), "submit_many_s": round(build_s, 1),
                  "entries_per_s": round(size / build_s), "projection_s": round(projection_s, 1),
                  "export_s": round(export_s, 1)},
        "db_bytes": _tree_bytes(str(db)) if db else None,
        "built_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"built {size:,} entries in {build_s:.0f} s ({size / build_s:,.0f}/s), projection {projection_s:.0f} s, "
          f"export {export_s:.0f} s, bundle {meta['bundle_bytes'] / 1e6:,.0f} MB", flush=True)
    return meta


# ---------------------------------------------------------------------------------------------------------------
# Measuring a process tree
# ---------------------------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def uptime_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: %.2f, %.2f, %.2f" % loadavg()


def wait_quiet(max_load: float, max_wait: float) -> dict[str, Any]:
    """Wait until the 1-minute load average is below `max_load` (at most `max_wait` s); say what it was."""
    t0 = time.monotonic()
    while loadavg()[0] >= max_load and time.monotonic() - t0 < max_wait:
        time.sleep(5)
    waited = time.monotonic() - t0
    line = uptime_line()
    print(f"   uptime: {line}" + (f"  (waited {waited:.0f} s)" if waited >= 5 else ""), flush=True)
    return {"uptime": line, "load_1m": loadavg()[0], "waited_s": round(waited), "quiet": loadavg()[0] < max_load}


def busy_seconds() -> float:
    """CPU time spent by all processes on the machine (user + nice + system + irq + softirq)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / _TICK


def _ppids() -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for p in os.scandir("/proc"):
        if p.name.isdigit():
            try:
                with open(f"/proc/{p.name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(p.name))
    return children


def _tree(pid: int) -> list[int]:
    children = _ppids()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = hwm = 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "auditor"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "?"
    if b"resource_tracker" in cmd:
        return "resource_tracker"
    if b"spawn_main" in cmd or b"multiprocessing" in cmd:
        return "worker"
    return "other"


def measure(cmd: list[str], *, interval: float = 0.2, extra_cpu: CpuMeter | None = None) -> dict[str, Any]:
    """Run `cmd`, sampling its process tree's memory; wall time, peaks, CPU and the machine's other CPU."""
    out = tempfile.NamedTemporaryFile(prefix="tl_audit_out_", delete=False)  # noqa: SIM115
    err = tempfile.NamedTemporaryFile(prefix="tl_audit_err_", delete=False)  # noqa: SIM115
    busy0, self0 = busy_seconds(), os.times()
    if extra_cpu is not None:
        extra_cpu.start()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=common.ROOT, stdout=out, stderr=err, start_new_session=True)
    try:
        return _sample(proc, out, err, busy0, self0, t0, interval, extra_cpu)
    finally:  # an exception or SIGTERM in the bench: the auditor and its worker processes go too
        if proc.returncode is None:
            common.stop_process_group(proc, _tree(proc.pid), grace=5)


def _sample(proc: subprocess.Popen[bytes], out: Any, err: Any, busy0: float, self0: Any, t0: float,
            interval: float, extra_cpu: CpuMeter | None) -> dict[str, Any]:
    peaks: dict[int, int] = {}
    cpu: dict[int, float] = {}  # as of the last sample (each process's last 0.2 s are missed)
    roles: dict[int, str] = {}
    tree_peak = 0
    samples = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        total = 0
        for p in _tree(proc.pid):
            got = _status_kb(p)
            if got is None or (p != proc.pid and got[0] == 0):
                continue
            if p not in roles:
                roles[p] = _role(p, proc.pid)
            total += got[0]
            peaks[p] = max(peaks.get(p, 0), got[1])
            cpu[p] = _cpu_s(p) or cpu.get(p, 0.0)
        tree_peak = max(tree_peak, total)
        samples += 1
        time.sleep(interval)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    extra = extra_cpu.stop() if extra_cpu is not None else {}
    self1 = os.times()
    own_cpu = usage.ru_utime + usage.ru_stime
    mine = (self1.user - self0.user) + (self1.system - self0.system)
    other = busy_seconds() - busy0 - own_cpu - mine - sum(extra.values())
    out.close()
    err.close()
    stdout, stderr = Path(out.name).read_text(), Path(err.name).read_text()
    os.unlink(out.name)
    os.unlink(err.name)
    by_role: dict[str, list[int]] = defaultdict(list)
    cpu_by_role: dict[str, float] = defaultdict(float)
    for p, kb in peaks.items():
        by_role[roles[p]].append(kb)
        cpu_by_role[roles[p]] += cpu.get(p, 0.0)
    return {
        "returncode": proc.returncode, "wall_s": wall, "stdout": stdout, "stderr": stderr,
        "cpu_s": round(own_cpu, 1), "extra_cpu_s": extra, "other_cpu_s": round(other, 1),
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "auditor_peak_mb": round(max(by_role.get("auditor", [0])) / 1024, 1),
        "worker_peak_mb": round(max(by_role["worker"]) / 1024, 1) if by_role.get("worker") else None,
        "workers_seen": len(by_role.get("worker", [])),
        "tree_peak_mb": round(tree_peak / 1024, 1), "samples": samples,
        "auditor_cpu_s": round(cpu_by_role.get("auditor", 0.0), 1),
        "workers_cpu_s": round(cpu_by_role["worker"], 1) if by_role.get("worker") else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# The audits
# ---------------------------------------------------------------------------------------------------------------


def _tags_in(report: dict[str, Any]) -> int | None:
    for step in report.get("steps", []):
        m = re.search(r"\((\d+) tags\)$", step["result"]) if step["step"] == "projection" else \
            re.search(r"entries: (\d+) tags", step["result"]) if step["step"] == "as of" else None
        if m:
            return int(m.group(1))
    return None


def undisturbed(run: Any, args: argparse.Namespace) -> dict[str, Any]:
    """`run()` a measurement, again (at most `--retries` times) while unrelated processes took more than
    `--max-other` CPU-seconds per second of it; the least disturbed attempt is the row, all are kept."""
    attempts = []
    for k in range(1 + args.retries):
        row = run()
        row["attempt"] = k + 1
        wall = row.get("measure_wall_s") or row["wall_s"]  # the whole measurement (proofs: with the warm-up)
        row["disturbed"] = row["other_cpu_s"] > args.max_other * wall
        attempts.append(row)
        if not row["disturbed"]:
            break
        print(f"   disturbed: other processes used {row['other_cpu_s']} CPU-s in {wall} s"
              + ("; again" if k < args.retries else ""), flush=True)
    best = min(attempts, key=lambda r: r["other_cpu_s"] / max(r.get("measure_wall_s") or r["wall_s"], 1e-9))
    best["attempts"] = [{k: r.get(k) for k in ATTEMPT_KEYS} for r in attempts]
    return best


ATTEMPT_KEYS = ("attempt", "wall_s", "entries_per_s", "req_per_s", "p50_ms", "p99_ms", "cpu_s", "other_cpu_s",
                "auditor_peak_mb", "load_1m_before", "uptime_before", "disturbed")


def audit_once(source: str, label: str, workers: int, as_of: int | None, meta: dict[str, Any],
               args: argparse.Namespace, server: Server | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "verification.audit", source, "--no-state", "--vkey", "@" + meta["vkey_file"],
           "--workers", str(workers), "--json", "--no-progress"]
    if as_of is not None:
        cmd += ["--as-of", str(as_of)]
    what = f"{label}, workers {workers}" + (f", as of {as_of:,}" if as_of is not None else "")
    print(f">> audit {what} ...", flush=True)
    load = wait_quiet(args.max_load, args.max_wait)
    meter = CpuMeter({"server": server.pids}) if server is not None else None
    m = measure(cmd, extra_cpu=meter)
    try:
        report = json.loads(m["stdout"])
    except ValueError:
        report = {"ok": False, "failure": f"no JSON (exit {m['returncode']}): {m['stderr'][-500:]}"}
    size = report.get("size") or 0
    row = {
        "source": label, "workers": workers, "as_of": as_of, "entries": size, "tags": _tags_in(report),
        "wall_s": round(m["wall_s"], 1), "entries_per_s": size / m["wall_s"] if size else None,
        "auditor_peak_mb": m["auditor_peak_mb"], "worker_peak_mb": m["worker_peak_mb"],
        "tree_peak_mb": m["tree_peak_mb"], "cpu_s": m["cpu_s"], "auditor_cpu_s": m["auditor_cpu_s"],
        "workers_cpu_s": m["workers_cpu_s"],
        "server_cpu_s": m["extra_cpu_s"].get("server"), "other_cpu_s": m["other_cpu_s"],
        "load_1m_before": load["load_1m"], "uptime_before": load["uptime"], "quiet_before": load["quiet"],
        "load_1m_after": loadavg()[0],
        "ok": bool(report.get("ok")) and m["returncode"] == 0, "failure": report.get("failure"),
        "workers_seen": m["workers_seen"], "ru_maxrss_mb": m["ru_maxrss_mb"],
        "replay_line": next((s["result"] for s in report.get("steps", []) if s["step"] == "replay"), None),
        "warnings": report.get("warnings"),
    }
    status = "OK" if row["ok"] else f"FAILED: {row['failure']}"
    eps = f"{row['entries_per_s']:,.0f}" if row["entries_per_s"] else "-"
    print(f"   {size:,} entries in {row['wall_s']} s ({eps} entries/s); peak RSS auditor "
          f"{row['auditor_peak_mb']} MB, worker {row['worker_peak_mb']} MB, tree {row['tree_peak_mb']} MB; "
          f"CPU {row['cpu_s']} s, other CPU {row['other_cpu_s']} s; {status}", flush=True)
    return row


COLUMNS = [("source", "source"), ("workers", "--workers"), ("as_of", "--as-of"), ("entries", "entries"),
           ("tags", "tags"), ("wall_s", "wall s"), ("entries_per_s", "entries/s"),
           ("auditor_peak_mb", "auditor peak MB"), ("worker_peak_mb", "worker peak MB"),
           ("tree_peak_mb", "tree peak MB"), ("cpu_s", "CPU s"), ("auditor_cpu_s", "of which auditor"),
           ("server_cpu_s", "server CPU s"),
           ("other_cpu_s", "other CPU s"), ("load_1m_before", "load before"), ("attempt", "attempt"),
           ("ok", "ok")]


def _csv(kind):  # noqa: ANN001, ANN202
    return lambda s: [kind(x) for x in s.split(",") if x]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=1_000_000, help="log entries in the store (about)")
    p.add_argument("--cache", default=DEFAULT_CACHE, help="where the store, key and bundle are kept")
    p.add_argument("--build-only", action="store_true", help="build (or check) the cached store and stop")
    p.add_argument("--workers", type=_csv(int), default=[2, 0, 1], help="--workers of the full bundle audits")
    p.add_argument("--as-of", type=_csv(int), default=[250_000], help="prefixes replayed for memory growth")
    p.add_argument("--as-of-workers", type=_csv(int), default=[2, 0], help="--workers of the prefix replays")
    p.add_argument("--http-workers", type=_csv(int), default=[2], help="--workers of the audits over HTTP ([] none)")
    p.add_argument("--max-load", type=float, default=1.5, help="wait for the 1-minute load average to be below")
    p.add_argument("--max-wait", type=float, default=600, help="... for at most this many seconds")
    p.add_argument("--max-other", type=float, default=0.1,
                   help="a run is disturbed if other processes used more CPU-seconds per second of it than this")
    p.add_argument("--retries", type=int, default=2, help="reruns of a disturbed measurement")
    p.add_argument("--json", nargs="?", const="", help="write results JSON (default bench/results/audit-*.json)")
    return p


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = build_parser().parse_args(argv)
    machine = common.machine_info()
    meta = ensure_store(Path(args.cache), args.entries)
    if args.build_only:
        return []
    machine["ed25519_verify_per_s_one_core"] = round(common.ed25519_verify_rate())
    print(f"reference: {machine['ed25519_verify_per_s_one_core']:,} Ed25519 verifications/s on one core", flush=True)
    rows = []
    for w in args.workers:
        rows.append(undisturbed(lambda: audit_once(meta["bundle"], "bundle", w, None, meta, args), args))
    for n in args.as_of:
        for w in args.as_of_workers:
            rows.append(undisturbed(lambda: audit_once(meta["bundle"], "bundle", w, n, meta, args), args))
    if args.http_workers:
        with Server(meta["url"], workers=1) as server:
            for w in args.http_workers:
                rows.append(undisturbed(
                    lambda: audit_once(server.base, "http (serve, 1 worker)", w, None, meta, args, server), args))
    print()
    print_table(rows, COLUMNS)
    if args.json is not None:
        path = common.write_json("audit", {"benchmark": "audit_replay", "args": vars(args), "machine": machine,
                                           "store": {k: meta[k] for k in ("entries", "tags", "checkpoint_size",
                                                                          "bundle_bytes", "workload", "build",
                                                                          "db_bytes", "built_at")},
                                           "rows": rows}, args.json or None)
        print(f"\nwrote {path}")
    return rows


if __name__ == "__main__":
    main()
