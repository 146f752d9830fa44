"""Shared plumbing of the benchmarks: a realistic pre-signed workload, throw-away stores, a uvicorn server in a
subprocess, the load-generating client process, CPU accounting and result tables.

Nothing here is a test; see bench/ingest.py, bench/verify_latency.py and bench/run.py.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ledger.client.signer import Signer  # noqa: E402
from ledger.keys import KeyPair  # noqa: E402
from verification.canonical import jcs  # noqa: E402
from verification.encoding import format_time, sha256_hex  # noqa: E402
from verification.envelope import issued_tags  # noqa: E402

PG_ADMIN_URL = os.environ.get("TAGLEDGER_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")

# ---------------------------------------------------------------------------------------------------------------
# The workload: organisations, tags issued in ranges, bags attached / dispatched / received, merged into lots
# ---------------------------------------------------------------------------------------------------------------

MINERALS = ("cobalt", "copper", "tin", "tantalum", "tungsten")


@dataclass(frozen=True)
class Event:
    """A pre-signed envelope: the JSON object, its canonical bytes (sent as the HTTP body) and its hash."""

    envelope: dict[str, Any]
    raw: bytes
    hash: str

    @property
    def type(self) -> str:
        return self.envelope["body"]["type"]


@dataclass
class Org:
    id: str
    role: str
    signer: Signer


@dataclass
class Workload:
    """Everything pre-signed. `setup` (genesis + organisations) is not timed; `issue` then `groups` are.

    A group is one cooperative lot: `bags_per_lot` bags (each attached at a site, dispatched to the cooperative,
    received there), the lot formed from them, dispatched to a trader and received. A group's events depend on
    each other, in list order; different groups touch disjoint tags, so they can go in parallel.
    """

    setup: list[Event]
    issue: list[Event]
    groups: list[list[Event]]
    bags: list[str] = field(default_factory=list)  # bags with a history (attached ... merged)
    lots: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # issued, never attached
    tags_issued_total: int = 0

    @property
    def timed_events(self) -> int:
        return len(self.issue) + sum(len(g) for g in self.groups)

    def ordered(self) -> list[Event]:
        """issue + groups in one valid order (for submit_many)."""
        return [*self.issue, *(e for g in self.groups for e in g)]

    def shard(self, workers: int) -> list[list[Event]]:
        """Groups dealt round-robin to `workers`; each worker sends its events one after the other."""
        shards: list[list[Event]] = [[] for _ in range(min(workers, len(self.groups)))]
        for i, group in enumerate(self.groups):
            shards[i % len(shards)].extend(group)
        return shards


class _Builder:
    def __init__(self, start: datetime, seed: int):
        self.time = start
        self.heads: dict[str, str] = {}
        self.rng = random.Random(seed)

    def tick(self) -> str:
        self.time += timedelta(microseconds=500)
        return format_time(self.time)

    def make(self, org: Org, event_type: str, stream: str, data: dict[str, Any],
             linked: Sequence[str] = ()) -> Event:
        links = {s: self.heads.get(s) for s in linked} if linked else None
        env = org.signer.envelope(
            event_type, stream, self.heads.get(stream), data, time=self.tick(), links=links,
            event_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
        )
        raw = jcs(env)
        event = Event(env, raw, sha256_hex(raw))
        self.heads[stream] = event.hash
        for s in linked:
            self.heads[s] = event.hash
        if event_type == "tags_issued":
            for tag in issued_tags(data):
                self.heads[f"tag:{tag}"] = event.hash
        return event


def _org(org_id: str, role: str) -> Org:
    return Org(org_id, role, Signer(org_id, KeyPair.generate()))


def build_workload(
    *,
    groups: int,
    bags_per_lot: int = 10,
    sites: int = 8,
    cooperatives: int = 4,
    traders: int = 2,
    bag_tags_per_site: int | None = None,
    lot_tags_per_coop: int | None = None,
    issue_chunk: int = 10_000,
    seed: int = 1,
    log_key: KeyPair | None = None,
) -> Workload:
    """Pre-sign a whole workload (client-side signing is excluded from every measurement).

    By default each site is issued exactly the bag tags it will use and each cooperative the lot tags, in ranges
    of at most `issue_chunk` tags per `tags_issued`; `bag_tags_per_site` / `lot_tags_per_coop` issue more
    (tags that stay unused, as in a real roll of tags). `log_key`: the log key the genesis names (a throw-away
    one by default; pass one to serve the store with `tagledger serve`, which signs checkpoints with it).
    """
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    b = _Builder(start, seed)
    rng = b.rng
    operator = _org("itsci", "operator")
    site_orgs = [_org(f"site-{i + 1:02d}", "site") for i in range(sites)]
    coop_orgs = [_org(f"coop-{i + 1:02d}", "cooperative") for i in range(cooperatives)]
    trader_orgs = [_org(f"trader-{i + 1:02d}", "trader") for i in range(traders)]

    setup = [b.make(operator, "ledger_created", "ledger", {
        "ledger": "tagledger-bench",
        "operator": {"org": operator.id, "name": "Programme operator", "country": "CD"},
        "root_key": operator.signer.keys.public_key,
        "log_key": {"name": "bench/log", "public_key": (log_key or KeyPair.generate()).public_key},
        "mass_tolerance_ppm": 20_000,
    })]
    for org in [*site_orgs, *coop_orgs, *trader_orgs]:
        data: dict[str, Any] = {"name": f"{org.id} (bench)", "role": org.role, "country": "CD",
                                "public_keys": [org.signer.keys.public_key]}
        if org.role == "site":
            data["gps"] = {"lat": f"-10.{rng.randrange(10**6):06d}", "lon": f"25.{rng.randrange(10**6):06d}"}
            data["capacity_kg_per_month"] = 20_000
        setup.append(b.make(operator, "org_registered", f"org:{org.id}", data))

    # which bags / lots each group uses
    plan = []
    bag_next = [0] * sites
    lot_next = [0] * cooperatives
    for g in range(groups):
        s, c, t = g % sites, g % cooperatives, g % traders
        plan.append((s, c, t, bag_next[s], lot_next[c]))
        bag_next[s] += bags_per_lot
        lot_next[c] += 1

    def bag_id(s: int, n: int) -> str:
        return f"CD-S{s + 1:02d}-{n + 1:06d}"

    def lot_id(c: int, n: int) -> str:
        return f"CD-L{c + 1:02d}-{n + 1:06d}"

    issue: list[Event] = []
    tags_total = 0

    def issue_ranges(org: Org, prefix: str, count: int) -> None:
        nonlocal tags_total
        done = 0
        while done < count:
            n = min(issue_chunk, count - done, 10_000)
            issue.append(b.make(operator, "tags_issued", f"org:{org.id}",
                                {"ranges": [{"prefix": prefix, "start": done + 1, "count": n, "width": 6}]}))
            done += n
        tags_total += count

    for s, org in enumerate(site_orgs):
        issue_ranges(org, f"CD-S{s + 1:02d}-", max(bag_next[s], bag_tags_per_site or 0))
    for c, org in enumerate(coop_orgs):
        issue_ranges(org, f"CD-L{c + 1:02d}-", max(lot_next[c], lot_tags_per_coop or 0))
    issue = [e for e in issue]  # keep order
    # org streams moved on while issuing; nothing else writes them

    all_groups: list[list[Event]] = []
    bags: list[str] = []
    lots: list[str] = []
    for s, c, t, first_bag, lot_n in plan:
        site, coop, trader = site_orgs[s], coop_orgs[c], trader_orgs[t]
        events: list[Event] = []
        inputs, total = [], 0
        for k in range(bags_per_lot):
            tag = bag_id(s, first_bag + k)
            mass = rng.randrange(20_000, 60_000)
            events.append(b.make(site, "tag_attached", f"tag:{tag}", {
                "site": site.id, "mineral": MINERALS[rng.randrange(len(MINERALS))], "ore": "heterogenite",
                "mass_g": mass, "pit": f"P-{rng.randrange(1, 40):02d}",
                "gps": {"lat": f"-10.{rng.randrange(10**6):06d}", "lon": f"25.{rng.randrange(10**6):06d}"},
                "price_paid": {"currency": "USD", "minor_per_kg": rng.randrange(800, 2000)},
            }))
            events.append(b.make(site, "custody_dispatched", f"tag:{tag}",
                                 {"to": coop.id, "mass_g": mass, "location": "pit gate"}))
            received = mass - rng.randrange(0, 200)
            events.append(b.make(coop, "custody_received", f"tag:{tag}",
                                 {"mass_g": received, "location": "cooperative depot"}))
            inputs.append(tag)
            total += received
        lot = lot_id(c, lot_n)
        events.append(b.make(coop, "lot_formed", f"tag:{lot}", {"inputs": inputs, "mass_g": total},
                             linked=[f"tag:{t_}" for t_ in inputs]))
        events.append(b.make(coop, "custody_dispatched", f"tag:{lot}",
                             {"to": trader.id, "mass_g": total, "location": "cooperative depot"}))
        events.append(b.make(trader, "custody_received", f"tag:{lot}",
                             {"mass_g": total - rng.randrange(0, 500), "location": "trader warehouse"}))
        all_groups.append(events)
        bags.extend(inputs)
        lots.append(lot)

    unused = [bag_id(s, n) for s in range(sites) for n in range(bag_next[s], max(bag_next[s], bag_tags_per_site or 0))]
    unused += [lot_id(c, n) for c in range(cooperatives)
               for n in range(lot_next[c], max(lot_next[c], lot_tags_per_coop or 0))]
    return Workload(setup, issue, all_groups, bags, lots, unused, tags_total)


def groups_for_events(events: int, bags_per_lot: int) -> int:
    return max(1, round(events / (3 * bags_per_lot + 3)))


# ---------------------------------------------------------------------------------------------------------------
# Throw-away stores
# ---------------------------------------------------------------------------------------------------------------


def _pg_admin():  # noqa: ANN202
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def _with_db(url: str, db: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))


@contextmanager
def fresh_store(backend: str, label: str = "x") -> Iterator[str]:
    """A new, empty store URL; dropped / deleted afterwards."""
    tag = f"{os.getpid()}_{label}_{uuid.uuid4().hex[:6]}".lower().replace("-", "_")
    if backend == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix=f"tl_bench_{tag}_"))
        try:
            yield f"sqlite:///{directory / 'ledger.db'}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    if backend != "postgres":
        raise ValueError(backend)
    db = f"tl_bench_{tag}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield _with_db(PG_ADMIN_URL, db)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def check_gapless(url: str, expected: int) -> dict[str, Any]:
    """Count the log rows directly in the database: exactly `expected`, positions 1..expected."""
    table = "tagledger_events_tt_main"
    if url.startswith("sqlite"):
        import sqlite3

        from ledger.store.sqlite import sqlite_path

        conn = sqlite3.connect(sqlite_path(url))
        try:
            n, lo, hi = conn.execute(f"SELECT COUNT(*), MIN(id), MAX(id) FROM {table}").fetchone()
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            n, lo, hi = conn.execute(f"SELECT COUNT(*), MIN(id), MAX(id) FROM {table}").fetchone()
    ok = n == expected and (n == 0 or (lo == 1 and hi == n))
    return {"entries": n, "min_position": lo, "max_position": hi, "expected": expected, "gapless_ok": ok}


def commit_batches(url: str, after_seq: int = -1) -> dict[str, Any]:
    """How many writer transactions committed the entries after `after_seq`: every entry of one batch has the
    same `received` time (the writer stamps a batch once), so distinct `received` values = batches."""
    table = "tagledger_events_tt_main"
    if url.startswith("sqlite"):
        import sqlite3

        from ledger.store.sqlite import sqlite_path

        conn = sqlite3.connect(sqlite_path(url))
        try:
            rows = conn.execute(f"SELECT data FROM {table} WHERE id > ?", [after_seq + 1]).fetchall()
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(f"SELECT data FROM {table} WHERE id > %s", [after_seq + 1]).fetchall()
    received = set()
    for (data,) in rows:
        raw = bytes(data)
        i = raw.rindex(b',"received":"')
        received.add(raw[i + 13 : raw.index(b'"', i + 13)])
    n = len(received)
    return {"commits": n, "mean_batch": round(len(rows) / n, 1) if n else None}


# ---------------------------------------------------------------------------------------------------------------
# CPU accounting from /proc (server processes, PostgreSQL backends, the client)
# ---------------------------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _children(pid: int) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int(p.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if ppid == pid:
                found.append(int(p.name))
    return found


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def postgres_pids() -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.joinpath("comm").read_text().strip() == "postgres":
                    pids.append(int(p.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return pids


class CpuMeter:
    """CPU seconds used by groups of processes between `start()` and `stop()` (new processes count from 0)."""

    def __init__(self, groups: dict[str, Any]):
        self.groups = groups  # name -> callable returning pids
        self._before: dict[str, dict[int, float]] = {}
        self.used: dict[str, float] = {}

    def _sample(self) -> dict[str, dict[int, float]]:
        return {name: {pid: _proc_cpu(pid) for pid in pids()} for name, pids in self.groups.items()}

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        self.used = {
            name: round(sum(v - self._before.get(name, {}).get(pid, 0.0) for pid, v in after[name].items()), 2)
            for name in after
        }
        return self.used


def _stat(pid: int) -> tuple[int, str, float, float] | None:
    """(parent pid, state, own CPU s = utime + stime, reaped children's CPU s = cutime + cstime), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[1]), fields[0], (int(fields[11]) + int(fields[12])) / _TICK,
            (int(fields[13]) + int(fields[14])) / _TICK)


def _direct_children(pid: int) -> list[int]:
    """The children of `pid`, from /proc/PID/task/*/children (every thread's: any of them may have forked)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return found
    for task in tasks:
        try:
            found.extend(int(x) for x in task.joinpath("children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def server_role(argv: Sequence[str]) -> str:
    """The part of a `tagledger serve` (or `bench/_serve.py` experiment) process tree a process plays, from its
    command line: "worker" (an HTTP worker, spawned by uvicorn through multiprocessing), "profiler" (py-spy, when
    the bench records the server), "other" (multiprocessing's resource tracker, anything unexpected), else
    "supervisor" (`python -m ledger.cli serve` or `python -m uvicorn`: uvicorn's supervising process, which in
    `serve` also runs the projection followers and the checkpoint publisher)."""
    text = " ".join(argv)
    if argv and Path(argv[0]).name == "py-spy":
        return "profiler"
    if "spawn_main" in text or "--multiprocessing-fork" in text:
        return "worker"
    if "resource_tracker" in text or "forkserver" in text:
        return "other"
    if "ledger.cli" in text or "uvicorn" in text:
        return "supervisor"
    return "other"


def _argv(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except (FileNotFoundError, ProcessLookupError):
        return []


SERVER_ROLES = ("worker", "supervisor", "other")
"""The roles whose CPU `ServerCpu` adds into the server's total (a profiler's own CPU is reported apart)."""


class ServerCpu:
    """CPU seconds a server's process tree used between `start()` and `stop()`, by role (`server_role`), and in all.

    Every process of the tree counts, including one that starts or ends in between (a restarted worker): the tree
    is sampled every `interval` seconds in a thread, and the CPU of a process that ended is taken from what its
    parent's reaped-children counters (cutime + cstime) gained, which the kernel adds when the parent reaps it
    (the whole CPU of its life: its CPU before `start()`, as sampled, is taken off). `stop()` returns
    {"worker": s, "supervisor": s, "other": s, "profiler": s, "total": s (all but the profiler),
    "workers_seen": n (worker processes seen), "exited": n (processes that ended in between)}."""

    def __init__(self, root: Any, interval: float = 0.25):
        self.root = root  # callable returning the tree's root pid (or None once it is gone)
        self.interval = interval
        self._base: dict[int, float] = {}  # pid -> own + reaped CPU at start (0 for a process born later)
        self._own_base: dict[int, float] = {}  # pid -> own CPU at start
        self._reaped_base: dict[int, float] = {}
        self._last: dict[int, tuple[int, float, float]] = {}  # pid -> (parent, own, reaped), last sample
        self._role: dict[int, str] = {}
        self._stop: Any = None
        self._thread: Any = None
        self._lock = __import__("threading").Lock()

    def _tree(self) -> dict[int, tuple[int, float, float]]:
        root = self.root()
        out: dict[int, tuple[int, float, float]] = {}
        todo = [root] if root else []
        while todo:
            pid = todo.pop()
            st = _stat(pid)
            if st is None or pid in out:
                continue
            out[pid] = (st[0], st[2], st[3])
            todo.extend(_direct_children(pid))
        return out

    def _sample(self, first: bool = False) -> dict[int, tuple[int, float, float]]:
        tree = self._tree()
        with self._lock:
            for pid, (parent, own, reaped) in tree.items():
                if pid not in self._role:
                    self._role[pid] = server_role(_argv(pid))
                    self._own_base[pid] = own if first else 0.0
                    self._reaped_base[pid] = reaped if first else 0.0
                self._last[pid] = (parent, own, reaped)
        return tree

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> None:
        import threading

        self._sample(first=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-cpu-meter", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        final = self._sample()
        used = dict.fromkeys((*SERVER_ROLES, "profiler"), 0.0)
        exited = [pid for pid in self._last if pid not in final]
        for pid, (parent, own, reaped) in final.items():
            used[self._role[pid]] += own - self._own_base[pid]
        # What the parents of ended processes reaped is the whole CPU of those processes (and of what they
        # reaped): take off what was theirs before start(), give the rest to their roles.
        for parent in {self._last[pid][0] for pid in exited}:
            gone = [pid for pid in exited if self._last[pid][0] == parent]
            if parent in final:
                gained = final[parent][2] - self._reaped_base[parent]
            else:  # the parent ended too (it should not): what was last seen of its children
                gained = sum(self._last[pid][1] + self._last[pid][2] for pid in gone)
            gained -= sum(self._own_base[pid] + self._reaped_base[pid] for pid in gone)
            seen = {pid: self._last[pid][1] - self._own_base[pid] for pid in gone}
            weight = sum(seen.values())
            for pid in gone:
                share = seen[pid] / weight if weight > 0 else 1 / len(gone)
                used[self._role[pid]] += gained * share
        out: dict[str, float] = {role: round(v, 2) for role, v in used.items()}
        out["total"] = round(sum(used[r] for r in SERVER_ROLES), 2)
        out["workers_seen"] = sum(1 for r in self._role.values() if r == "worker")
        out["exited"] = len(exited)
        return out


# ---------------------------------------------------------------------------------------------------------------
# The HTTP server (uvicorn in a subprocess, like `tagledger serve`)
# ---------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


READY_TIMEOUT = float(os.environ.get("TAGLEDGER_BENCH_READY_TIMEOUT", "300"))
"""Seconds a bench server may take to answer /healthz (a busy shared machine can take well over a minute)."""
STOP_GRACE = float(os.environ.get("TAGLEDGER_BENCH_STOP_GRACE", "30"))
"""Seconds a bench server is given to stop after SIGINT/SIGTERM before its whole process group is killed."""


def group_members(pgid: int) -> list[int]:
    """The live processes (not zombies) of process group `pgid`."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = p.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(p.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def stop_process_group(proc: subprocess.Popen[bytes], known: Sequence[int] = (), *, grace: float = STOP_GRACE) -> None:
    """Stop `proc` (started with `start_new_session=True`, so the leader of its own process group) and everything
    in its group: SIGINT and SIGTERM to the group (a graceful stop; py-spy writes its profile on SIGINT), then,
    after `grace` seconds, SIGKILL to the group and to every pid in `known` (processes of its tree seen earlier,
    should one have left the group). Returns when none of them is left."""
    pgid = proc.pid

    def signal_all(signum: int) -> None:
        try:
            os.killpg(pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass
        if signum == signal.SIGKILL:
            for pid in known:
                if pid != os.getpid() and _alive(pid):
                    try:
                        os.kill(pid, signum)
                    except (ProcessLookupError, PermissionError):
                        pass

    def gone() -> bool:
        proc.poll()
        return not group_members(pgid) and not any(_alive(pid) for pid in known)

    for signum, wait in ((signal.SIGINT, grace * 2 / 3), (signal.SIGTERM, grace / 3), (signal.SIGKILL, 10.0)):
        if gone():
            break
        signal_all(signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not gone():
            time.sleep(0.05)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    left = group_members(pgid) + [pid for pid in known if _alive(pid)]
    if left:
        raise RuntimeError(f"bench: processes {sorted(set(left))} of server group {pgid} survived SIGKILL")


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises SystemExit, so that `finally` and `__exit__`
    clean up (the default action would end the bench without stopping its servers)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Server:
    """`tagledger serve` on `url` with `workers` HTTP processes; for an experiment (a patch, no projection, no
    access log, extra uvicorn options) `uvicorn --factory _serve:create_app` instead, the projection then followed
    in every worker.

    Never leaves a process behind: the server runs in its own process group, and whatever fails (not ready in
    `ready_timeout` seconds, an exception or SIGTERM in the bench, a worker ignoring signals) the whole group is
    stopped -- SIGINT, SIGTERM, then SIGKILL after `stop_grace` seconds (`stop_process_group`);
    tests/test_bench_cleanup.py checks it."""

    def __init__(self, url: str, *, workers: int = 1, projection: bool = True, access_log: bool = True,
                 log_file: Path | None = None, py_spy: str | None = None, patches: Sequence[str] = (),
                 uvicorn_args: Sequence[str] = (), serve_args: Sequence[str] = (),
                 ready_timeout: float = READY_TIMEOUT, stop_grace: float = STOP_GRACE,
                 env: dict[str, str] | None = None):
        self.url, self.workers, self.projection, self.access_log = url, workers, projection, access_log
        self.serve_args = list(serve_args)  # more options of `tagledger serve` (e.g. --read-db URL)
        self.py_spy = py_spy
        self.patches = list(patches)
        self.uvicorn_args = list(uvicorn_args)
        self.extra_env = dict(env or {})
        self.ready_timeout, self.stop_grace = ready_timeout, stop_grace
        self.as_serve = projection and access_log and not self.patches and not self.uvicorn_args
        self.home = Path(tempfile.mkdtemp(prefix="tl_bench_home_"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = log_file
        self._seen: set[int] = set()
        self._sigterm: Any = None

    def command(self) -> list[str]:
        if self.as_serve:
            # exactly what the README's `make serve` runs: `tagledger serve` (uvicorn's supervisor, the custody
            # projection followed in the supervising process, `--workers` HTTP worker processes, access log on)
            cmd = [sys.executable, "-m", "ledger.cli", "--home", str(self.home), "--db", self.url, "serve",
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                   "--log-level", "info", *self.serve_args]
        else:
            # experiments: bench/_serve.py in each uvicorn worker, with the variant asked for
            cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--factory", "_serve:create_app",
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                   "--log-level", "info"]
            if not self.access_log:
                cmd.append("--no-access-log")
            cmd += self.uvicorn_args
        if self.py_spy:  # py-spy as the parent of the server: collapsed stacks, one file per process
            spy = str(Path(sys.executable).with_name("py-spy"))
            cmd = [spy, "record", "--format", "raw", "--rate", "200", "--subprocesses", "--threads", "--gil",
                   "-o", self.py_spy + ".txt", "--", *cmd]
        return cmd

    def __enter__(self) -> Server:
        env = {**os.environ, "TAGLEDGER_BENCH_DB": self.url, "TAGLEDGER_BENCH_PROJECTION": "1" if self.projection else "0",
               "TAGLEDGER_BENCH_PATCHES": ",".join(self.patches), **self.extra_env}
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._sigterm = sigterm_as_exit()
        self._sigterm.__enter__()
        try:
            # its own session and process group: stopping the group reaches every worker (and py-spy's child)
            # TAGLEDGER_BENCH_CODE: serve another checkout's code (an A side: a worktree of main) with this bench
            code = os.environ.get("TAGLEDGER_BENCH_CODE", str(ROOT))
            if code != str(ROOT):
                env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
            self.proc = subprocess.Popen(self.command(), cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # the child has its own copy
        return self

    def _wait_ready(self) -> None:
        import httpx

        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        ready = 0
        while time.monotonic() < deadline:
            self._seen.update(process_tree(self.proc.pid))
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_file}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    ready += 1
                    if ready >= 3 * self.workers:  # every worker has had a chance to start
                        time.sleep(0.5 if self.workers > 1 else 0)
                        self._seen.update(process_tree(self.proc.pid))
                        return
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {self.ready_timeout:.0f} s (TAGLEDGER_BENCH_READY_TIMEOUT); "
                           f"see {self.log_file}")

    def pids(self) -> list[int]:
        if not (self.proc and self.proc.poll() is None):
            return []
        found = process_tree(self.proc.pid)
        self._seen.update(found)
        return found

    def stop(self) -> None:
        """Stop the server's whole process group (idempotent), then remove its home directory."""
        try:
            if self.proc is not None:
                if self.proc.poll() is None:
                    self._seen.update(process_tree(self.proc.pid))
                stop_process_group(self.proc, sorted(self._seen), grace=self.stop_grace)
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
            if self._sigterm is not None:
                sigterm, self._sigterm = self._sigterm, None
                sigterm.__exit__(None, None, None)

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------------------
# The load-generating client (bench/_http_client.py in its own process)
# ---------------------------------------------------------------------------------------------------------------


def post_request(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get_request(path: str, headers: dict[str, str] | None = None) -> bytes:
    fields = {"Host": "bench", "Accept": "application/json", **(headers or {})}
    return (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


def run_client(port: int, phases: list[dict[str, Any]], *, keep_bodies: bool = False) -> dict[str, Any]:
    """Run bench/_http_client.py against 127.0.0.1:`port`.

    `phases` run one after the other; each is {"name", "workers": [[request bytes, ...], ...],
    "labels": optional parallel lists of small ints}. Each worker is one keep-alive connection that sends its
    requests strictly one after the other (the next only after the answer to the previous one).
    """
    with tempfile.NamedTemporaryFile(prefix="tl_bench_load_", suffix=".pkl", delete=False) as f:
        pickle.dump({"port": port, "phases": phases, "keep_bodies": keep_bodies}, f, protocol=pickle.HIGHEST_PROTOCOL)
        path = f.name
    out = path + ".out"
    try:
        subprocess.run([sys.executable, str(BENCH_DIR / "_http_client.py"), path, out], check=True)
        with open(out, "rb") as f:
            return pickle.load(f)
    finally:
        for p in (path, out):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


# ---------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    pg = "?"
    try:
        with _pg_admin() as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
            settings = {k: conn.execute(f"SHOW {k}").fetchone()[0]
                        for k in ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")}
    except Exception as exc:  # noqa: BLE001
        settings = {"error": str(exc)}
    import sqlite3

    frozen = ROOT / ".bench-source-commit"  # written by bench/frozen.sh: a snapshot of one commit
    try:
        if frozen.exists():
            commit, dirty = frozen.read_text().strip(), []
            raise StopIteration
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ledger", "api", "domain", "verification"],
                               cwd=ROOT, capture_output=True, text=True).stdout.split("\n")
        dirty = [line for line in dirty if line.strip()]
    except StopIteration:
        pass
    except OSError:
        commit, dirty = "?", []
    return {
        "git_commit": commit,
        "uncommitted_changes_in_code": dirty,
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg,
        "postgresql_settings": settings,
        "platform": platform.platform(),
    }


def ed25519_verify_rate(seconds: float = 1.0) -> float:
    """Ed25519 verifications per second on one core (cryptography / OpenSSL), over a typical event body."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    message = b"x" * 420
    sig = key.sign(message)
    public = key.public_key()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            public.verify(sig, message)
        n += 200
    return n / (time.perf_counter() - t0)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """columns: (key, heading). Prints a GitHub-flavoured markdown table."""
    cells = [[_fmt(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, (_, h) in enumerate(columns)]
    print("| " + " | ".join(h.ljust(w) for (_, h), w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths)) + " |")
    sys.stdout.flush()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def write_json(name: str, payload: dict[str, Any], path: str | None = None) -> Path:
    target = Path(path) if path else RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return target
