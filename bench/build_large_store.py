"""Build a large, realistic, signed PostgreSQL store in bulk: N tags with full custody histories (issue 13).

    python bench/build_large_store.py --db postgresql://postgres@127.0.0.1:5432/tl_big --home /tmp/big \\
        --tags 1000000 --workers 2

1. **Setup, through the real write path** (`Ledger.submit_many`, every rule checked): the genesis (the operator's
   root key and the log key, saved in `--home` as `tagledger init` does), the organisations with their keys
   (sites, cooperatives, traders, processors, exporters, refiners, field monitors, the mining authority).
2. **Tags, in bulk**: every tag, issued by the operator in ranges of at most 10,000, signed here and appended as
   below (through the write path, each `tags_issued` took seconds at this scale: docs/benchmarks.md 13.5).
3. **Histories, in bulk**: one lot's chain per group (bench/large_store_histories.py: ~10 entries per tag),
   monthly site visits and incidents with their corrective actions; every event signed by its actor's key with
   the client's own code, in `--workers` processes. Each window of groups is sorted by time, turned into log
   entries (`ledger.entries.build_entry`), leaf hashes and Merkle nodes (`ledger.tree.proofs.new_nodes`), and
   written with `COPY` in one transaction holding the writer's advisory lock, the append-only and gapless
   triggers on; then the real publisher (`ledger.checkpoints.CheckpointSigner`) signs a checkpoint of it.
   The per-event online rule checks are what is skipped: the histories are valid by construction, and
   `tagledger audit` replays every rule (tests/ledger/test_large_store_builder.py).
4. `ANALYZE`, then both projections (custody, flags) caught up, each in its own process (`--no-projections`: not).

The home it writes can be used as any ledger's: `tagledger --home DIR check`, `export`, `serve`, and it holds
`large-store.json`: the figures of the build (wall and CPU time per stage) and samples of tags with their
expected state, for the tests and bench/verify_latency.py --home DIR.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

import large_store_histories as hist  # noqa: E402
from ledger.client.signer import Signer  # noqa: E402
from ledger.config import Settings  # noqa: E402
from ledger.entries import build_entry  # noqa: E402
from ledger.genesis import GenesisKeys, create_ledger, key_paths  # noqa: E402
from ledger.keys import KeyPair  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from ledger.store.base import NODES, open_store  # noqa: E402
from ledger.store.postgres import MAIN, TAGS, WRITER_LOCK  # noqa: E402
from ledger.tree.proofs import new_nodes  # noqa: E402
from ledger.writer import LedgerWriter, Receipt  # noqa: E402
from verification.merkle import leaf_hash  # noqa: E402
from verification.sealed_details import commitment, new_details  # noqa: E402

OPERATOR = "itsci"
MANIFEST = "large-store.json"
UNUSED_SHARE = 0.02  # tags issued and never used (the end of a roll)
VOID_CHANCE = 0.05  # a group whose site voided one damaged tag
WINDOW_US = hist.PHASES * hist.PHASE_US
MONITOR_EVERY_US = 30 * 86400 * 10**6  # each site visited about monthly
INCIDENTS_PER_WINDOW = 2
RISK_ORDER = 1 << 62  # ties of time: risk events after the groups' events


@dataclass
class Org:
    id: str
    role: str
    keys: KeyPair
    gps: tuple[str, str] | None

    def key(self) -> hist.OrgKey:
        raw = self.keys.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                  serialization.NoEncryption())
        return hist.OrgKey(self.id, raw, self.gps)


@dataclass
class Orgs:
    operator: Org
    by_role: dict[str, list[Org]] = field(default_factory=dict)

    def all(self) -> list[Org]:
        return [self.operator, *(o for orgs in self.by_role.values() for o in orgs)]


def make_orgs(tags: int, rng: random.Random) -> Orgs:
    """Organisations in proportion to the tags: a site per ~5,000 tags, a cooperative per 5 sites..."""
    sites = max(3, tags // 5000)
    counts = {"site": sites, "cooperative": max(2, sites // 5), "trader": max(2, sites // 20),
              "processor": max(2, sites // 50), "exporter": 2, "refiner": 2, "monitor": max(2, sites // 40),
              "authority": max(1, sites // 50)}
    prefix = {"site": "site", "cooperative": "coop", "trader": "trader", "processor": "processor",
              "exporter": "exporter", "refiner": "refiner", "monitor": "monitor", "authority": "authority"}

    def place() -> tuple[str, str]:  # South Kivu and around: within ~310 km of each other
        return f"{rng.uniform(-3.5, -1.5):.6f}", f"{rng.uniform(27.5, 29.5):.6f}"

    orgs = Orgs(Org(OPERATOR, "operator", KeyPair.generate(), None))
    for role, n in counts.items():
        orgs.by_role[role] = [Org(f"{prefix[role]}-{i + 1:03d}", role, KeyPair.generate(),
                                  None if role == "refiner" else place()) for i in range(n)]
    return orgs


@dataclass(frozen=True)
class GroupShape:
    site: int
    processor: int
    bags: int
    first_bag: int  # the site's bag number of its first bag
    lot: int  # the processor's lot number
    void: int | None  # the site's tag number of a tag it voided


def plan_groups(tags: int, orgs: Orgs, rng: random.Random) -> tuple[list[GroupShape], list[int], list[int]]:
    """Groups until ~98% of `tags` are used; returns them and the tags to issue per site and per processor."""
    sites, processors = len(orgs.by_role["site"]), len(orgs.by_role["processor"])
    next_bag, next_lot = [0] * sites, [0] * processors
    groups: list[GroupShape] = []
    used = 0
    target = int(tags * (1 - UNUSED_SHARE))
    while True:
        bags = rng.randint(8, 12)
        void = rng.random() < VOID_CHANCE
        if used + bags + 1 + void > target:
            break
        g = len(groups)
        s, p = g % sites, g % processors
        groups.append(GroupShape(s, p, bags, next_bag[s], next_lot[p], next_bag[s] + bags if void else None))
        next_bag[s] += bags + void
        next_lot[p] += 1
        used += bags + 1 + void
    spare = tags - used  # the unused tags, spread over the sites and processors
    holders = sites + processors
    for i in range(spare):
        j = i % holders
        if j < sites:
            next_bag[j] += 1
        else:
            next_lot[j - sites] += 1
    return groups, next_bag, next_lot


def bag_id(site: int, n: int) -> str:
    return f"CD-S{site + 1:03d}-{n + 1:06d}"


def lot_id(processor: int, n: int) -> str:
    return f"CD-P{processor + 1:02d}-L{n + 1:06d}"


class Issued:
    """The `tags_issued` envelope hash that created each tag (the first head of its stream)."""

    def __init__(self) -> None:
        self.ranges: dict[str, list[tuple[int, int, str]]] = {}  # prefix -> (first number, count, hash)

    def add(self, prefix: str, start: int, count: int, digest: str) -> None:
        self.ranges.setdefault(prefix, []).append((start, count, digest))

    def head(self, prefix: str, number: int) -> str:
        for start, count, digest in self.ranges[prefix]:
            if start <= number < start + count:
                return digest
        raise KeyError(f"{prefix}{number} was not issued")


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stages:
    """Wall and CPU seconds of each stage: this process, the signing workers, PostgreSQL's backend."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.done: dict[str, dict[str, float]] = {}

    @contextmanager
    def run(self, name: str, pids: Callable[[], dict[str, list[int]]] = dict) -> Iterator[None]:
        """Time the block; `pids()`: other processes whose CPU counts, by name (read before and after)."""
        wall, cpu = time.perf_counter(), time.process_time()
        before = {k: sum(map(_cpu_of, v)) for k, v in pids().items()}
        yield
        after = {k: sum(map(_cpu_of, v)) for k, v in pids().items()}
        row = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_builder_s": round(time.process_time() - cpu, 1)}
        row.update({f"cpu_{k}_s": round(after[k] - before.get(k, 0.0), 1) for k in after})
        self.done[name] = row
        self.log(f"{name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))


class BulkAppender:
    """Appends sorted rows to the log with COPY, one transaction per call, holding the writer's advisory lock (the
    service's appender cannot interleave), with the Merkle nodes they complete."""

    def __init__(self, url: str, ledger: Ledger):
        self.conn = psycopg.connect(url)
        self.backend_pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.conn.commit()
        self.size = ledger.store.size()
        self.frontier = ledger.store.tree.load_frontier(ledger.store, self.size)  # type: ignore[attr-defined]

    def append(self, rows: list[hist.Row]) -> None:
        entries, leaves, tag_rows = [], [], []
        for i, (when, _, event_type, raw, tags, index_only) in enumerate(rows):
            seq = self.size + i
            data = build_entry(raw, seq, hist.time_text(when + hist.RECEIVED_DELAY_US))
            entries.append((seq + 1, event_type, data, list(tags)))
            leaves.append(leaf_hash(data))
            tag_rows.extend((t, seq + 1) for t in (*tags, *index_only))
        frontier, nodes = new_nodes(self.frontier, leaves)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [WRITER_LOCK])
            cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {MAIN}")
            if cur.fetchone()[0] != self.size:
                raise RuntimeError("someone else appended to the log while it was being built")
            with cur.copy(f"COPY {MAIN} (id, type, data, tags) FROM STDIN") as copy:
                for row in entries:
                    copy.write_row(row)
            with cur.copy(f"COPY {TAGS} (tag, main_id) FROM STDIN") as copy:
                for row in tag_rows:
                    copy.write_row(row)
            with cur.copy(f"COPY {NODES} (id, hash) FROM STDIN") as copy:
                for row in nodes:
                    copy.write_row(row)
        self.size += len(rows)
        self.frontier = frontier

    def close(self) -> None:
        self.conn.close()


class RiskEvents:
    """Monthly site visits and incidents (reported, confirmed, an action assigned to the site, its progress,
    verified, closed), signed in this process: their streams (`site:`, `incident:`) cross windows."""

    def __init__(self, orgs: Orgs, rng: random.Random):
        self.orgs, self.rng = orgs, rng
        self.heads: dict[str, str | None] = {}
        self.incidents = 0

    def window(self, w: int, start_us: int, last: bool) -> list[hist.Row]:
        chain = hist.Chain(self.heads, self.rng, RISK_ORDER + w * 10**6)
        sites, monitors = self.orgs.by_role["site"], self.orgs.by_role["monitor"]
        every = max(1, MONITOR_EVERY_US // WINDOW_US)
        step = hist.PHASE_US // (len(sites) + 1)
        for i, site in enumerate(sites):
            if (i + w) % every:
                continue
            when = start_us + 2 * hist.PHASE_US + i * step
            period = hist.time_text(when)[:7]
            women, men = self.rng.randrange(5, 60), self.rng.randrange(20, 200)
            data = {"period": period, "price_paid": {"currency": "USD", "minor_per_kg": self.rng.randrange(900, 1600)},
                    "reference_price": {"currency": "USD", "minor_per_kg": 1700}, "reference_source": "LME less costs",
                    "workforce": {"women": women, "men": men}, "minors_observed": 0,
                    "concerns": ["price"], "note": "monthly visit"}
            chain.sign(monitors[i % len(monitors)].id, "site_monitored", f"site:{site.id}", data, when, i)
        for j in range(INCIDENTS_PER_WINDOW):
            self.incidents += 1
            site = sites[(w * INCIDENTS_PER_WINDOW + j) % len(sites)]
            monitor = monitors[(w * INCIDENTS_PER_WINDOW + j) % len(monitors)].id
            stream = f"incident:INC-{self.incidents:06d}"
            t = start_us + j * step

            def at(phase: int) -> int:
                return t + phase * hist.PHASE_US

            details = new_details("A pit wall collapsed after the rains; two miners hurt.", notes="seen on site")
            chain.sign(monitor, "incident_reported", stream, {
                "site": site.id, "category": "health_safety", "severity": "medium",
                "occurred_at": hist.time_text(at(0) - 86400 * 10**6), "details": {"sha256": commitment(details)},
                "summary": "pit wall collapse", "people_affected": 2}, at(1), 10_000 + j * 10)
            if last:
                continue
            chain.sign(monitor, "incident_confirmed", stream, {"note": "confirmed with the site"}, at(3), 10_001 + j * 10)
            cycle = hist.time_text(at(4) + 31 * 86400 * 10**6)[:7]
            chain.sign(OPERATOR, "action_assigned", stream, {"action": "A1", "owner": site.id, "cycle": cycle,
                       "description": "shore up the pit walls"}, at(4), 10_002 + j * 10)
            chain.sign(site.id, "action_progress", stream, {"action": "A1", "note": "timbers in place", "percent": 100},
                       at(8), 10_003 + j * 10)
            chain.sign(monitor, "action_verified", stream, {"action": "A1", "outcome": "implemented"}, at(12),
                       10_004 + j * 10)
            chain.sign(monitor, "incident_closed", stream, {"resolution": "walls shored up"}, at(15), 10_005 + j * 10)
        return chain.rows


def _setup(ledger: Ledger, orgs: Orgs, log_key: KeyPair, origin: str, at: datetime) -> dict[str, str]:
    """The genesis and the organisations through `Ledger.submit_many` (every rule checked); returns each
    organisation's stream head."""
    create_ledger(ledger, name="tagledger-large-store", operator=OPERATOR, operator_name="Programme operator",
                  country="CD", log_key_name=origin, keys=GenesisKeys(orgs.operator.keys, log_key), time=at)
    operator = Signer(OPERATOR, orgs.operator.keys)
    envelopes = []
    for i, org in enumerate(orgs.all()[1:]):
        data: dict[str, Any] = {"name": f"{org.id} (large store)", "role": org.role, "country": "CD",
                                "public_keys": [org.keys.public_key]}
        if org.role == "site":
            data["gps"] = {"lat": org.gps[0], "lon": org.gps[1]}  # type: ignore[index]
            data["capacity_kg_per_month"] = 200_000
        envelopes.append(operator.envelope("org_registered", f"org:{org.id}", None, data,
                                           time=at + timedelta(microseconds=i + 1)))
    return {e["body"]["stream"]: r.hash for e, r in zip(envelopes, _submit(ledger, envelopes))}


def _issue(orgs: Orgs, heads: dict[str, str | None], next_bag: list[int], next_lot: list[int], at_us: int,
           rng: random.Random) -> tuple[list[hist.Row], Issued]:
    """Every tag, issued by the operator in ranges of at most 10,000: signed here, appended in bulk (through the
    write path, each `tags_issued` of 10,000 tags cost seconds once the tag index held a few hundred thousand rows:
    docs/benchmarks.md section 13)."""
    chain = hist.Chain(heads, rng, 0)
    issued = Issued()
    plan = [(org, f"CD-S{i + 1:03d}-", next_bag[i]) for i, org in enumerate(orgs.by_role["site"])]
    plan += [(org, f"CD-P{i + 1:02d}-L", next_lot[i]) for i, org in enumerate(orgs.by_role["processor"])]
    for org, prefix, count in plan:
        for start in range(0, count, 10_000):
            n = min(10_000, count - start)
            chain.sign(OPERATOR, "tags_issued", f"org:{org.id}", {
                "ranges": [{"prefix": prefix, "start": start + 1, "count": n, "width": 6}]}, at_us + len(chain.rows),
                len(chain.rows))
            issued.add(prefix, start, n, heads[f"org:{org.id}"])  # type: ignore[arg-type]
    return chain.rows, issued


def _submit(ledger: Ledger, envelopes: list[dict[str, Any]], per_batch: int = 100) -> list[Receipt]:
    out = []
    for i in range(0, len(envelopes), per_batch):
        for result in ledger.submit_many(envelopes[i:i + per_batch]):
            if not isinstance(result, Receipt):
                raise RuntimeError(f"the setup was refused: {result}")
            out.append(result)
    return out


def _catch_up(url: str, name: str) -> tuple[str, int, float]:
    """One projection brought up to date in its own process: (name, entries folded, CPU seconds)."""
    from ledger.flags import FlagsProjection
    from ledger.projection import CustodyProjection

    store = open_store(url, migrate=False)
    try:
        projection = CustodyProjection(store) if name == "custody" else FlagsProjection(store)
        return name, projection.catch_up(), time.process_time()
    finally:
        store.close()


def build(url: str, home: Path, tags: int, *, workers: int = 2, groups_per_window: int = 1000, seed: int = 1,
          chunk_groups: int = 50, projections: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the store at `url` (an empty PostgreSQL database) with about `tags` tags; write `home` (keys,
    tagledger.json, large-store.json). Without `projections`, they are left to `tagledger projection status` or
    the server's followers (at millions of entries they take longer than the log: docs/benchmarks.md 13).
    Returns what large-store.json holds."""
    rng = random.Random(seed)
    stages = Stages(log)
    orgs = make_orgs(tags, rng)
    groups, next_bag, next_lot = plan_groups(tags, orgs, rng)
    windows = max(1, -(-len(groups) // groups_per_window))
    now_us = int(datetime.now(timezone.utc).timestamp() * 10**6)
    first_us = now_us - windows * WINDOW_US - 86400 * 10**6  # the last window ends a day before now
    setup_at = hist.EPOCH + timedelta(microseconds=first_us - 86400 * 10**6)
    log(f"plan: {sum(next_bag) + sum(next_lot):,} tags, {len(groups):,} lots of bags, {windows} windows, "
        f"{len(orgs.all())} organisations; history from {setup_at:%Y-%m-%d} to {hist.time_text(now_us)[:10]}")

    home.mkdir(parents=True, exist_ok=True)
    root_path, log_path = key_paths(home, OPERATOR)
    log_key = KeyPair.generate()
    orgs.operator.keys.save(root_path)
    log_key.save(log_path)
    for org in orgs.all()[1:]:
        org.keys.save(home / "keys" / "orgs" / f"{org.id}.pem")
    Settings(home=home, db=url, operator=OPERATOR).save()
    origin = f"tagledger.local/large-store-{seed}/log"

    store = open_store(url)
    if store.size():
        raise RuntimeError(f"{url} is not empty: build into a new database")
    ledger = Ledger(store, LedgerWriter(store, clock=lambda: setup_at))
    samples: dict[str, tuple[str, str | None]] = {}
    risk = RiskEvents(orgs, rng)
    try:
        with stages.run("setup: genesis and organisations (real write path)"):
            heads = _setup(ledger, orgs, log_key, origin, setup_at)
            signer = ledger.start_checkpoints(log_key, publish_in_background=False)
        setup_entries = store.size()
        appender = BulkAppender(url, ledger)
        with stages.run("tags issued (bulk)", lambda: {"postgres": [appender.backend_pid]}):
            hist.init_worker([o.key() for o in orgs.all()])  # this process signs the tags and the risk events
            rows, issued = _issue(orgs, heads, next_bag, next_lot, first_us - 43_200 * 10**6, rng)
            appender.append(rows)
            signer.publish()
        role = orgs.by_role
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=hist.init_worker, initargs=([o.key() for o in orgs.all()],)) as pool:

            def pids() -> dict[str, list[int]]:
                return {"signers": [p.pid for p in pool._pool], "postgres": [appender.backend_pid]}  # type: ignore[attr-defined]

            def plans(w: int) -> list[hist.GroupPlan]:
                out = []
                for slot, g in enumerate(groups[w * groups_per_window:(w + 1) * groups_per_window]):
                    number = w * groups_per_window + slot
                    s, p = g.site, g.processor
                    site, coop = role["site"][s], role["cooperative"][s % len(role["cooperative"])]
                    prefix = f"CD-S{s + 1:03d}-"
                    last = hist.CONSUME if w < windows - 1 else rng.randrange(-1, hist.PHASES)
                    if last == hist.CONSUME and rng.random() < 0.1:
                        last = hist.RECEIVE_REFINER  # still in the refiner's stock
                    out.append(hist.GroupPlan(
                        number, slot, site.id, coop.id,
                        role["trader"][(s % len(role["cooperative"])) % len(role["trader"])].id,
                        role["processor"][p].id, role["exporter"][number % 2].id, role["refiner"][number % 2].id,
                        role["monitor"][s % len(role["monitor"])].id, role["authority"][s % len(role["authority"])].id,
                        tuple((bag_id(s, n), issued.head(prefix, n)) for n in range(g.first_bag, g.first_bag + g.bags)),
                        (lot_id(p, g.lot), issued.head(f"CD-P{p + 1:02d}-L", g.lot)),
                        () if g.void is None else ((bag_id(s, g.void), issued.head(prefix, g.void)),),
                        last, sample=number % 97 == 0 or w == windows - 1 and slot % 7 == 0))
                return out

            def submit(w: int) -> tuple[int, list[Any]]:
                ps = plans(w)
                start = first_us + w * WINDOW_US
                return w, [pool.apply_async(hist.sign_groups, (start, groups_per_window, ps[i:i + chunk_groups]))
                           for i in range(0, len(ps), chunk_groups)]

            with stages.run("histories (sign in workers, COPY, checkpoints)", pids):
                pending = [submit(0)]
                for w in range(windows):
                    if w + 1 < windows:
                        pending.append(submit(w + 1))  # the workers sign the next window while this one is written
                    _, results = pending.pop(0)
                    rows = risk.window(w, first_us + w * WINDOW_US, w == windows - 1)
                    for result in results:
                        signed, expected = result.get()
                        rows.extend(signed)
                        samples.update(expected)
                    rows.sort(key=lambda r: (r[0], r[1]))
                    appender.append(rows)
                    signer.publish()
                    if w % 10 == 0 or w == windows - 1:
                        log(f"  window {w + 1}/{windows}: {appender.size:,} entries")
        appender.close()
        entries = store.size()
        with stages.run("ANALYZE"):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
    finally:
        ledger.close()
    issued_total = sum(next_bag) + sum(next_lot)
    complete = (windows - 1) * groups_per_window or len(groups)  # the last window's chains are under way
    manifest = {
        "url": url, "tags": issued_total, "entries": entries, "setup_entries": setup_entries,
        "entries_per_tag": round(entries / issued_total, 2), "groups": len(groups), "windows": windows,
        "organisations": len(orgs.all()), "incidents": risk.incidents, "seed": seed, "workers": workers,
        "projections": "not built", "stages": stages.done, "samples": {t: list(s) for t, s in samples.items()},
        "pools": _pools(groups, complete, next_bag, rng),
    }
    (home / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")  # a home to use even if what follows stops
    if projections:
        stage = "projections (custody and flags, one process each)"
        with stages.run(stage):
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                folded = pool.starmap(_catch_up, [(url, "custody"), (url, "flags")])
        stages.done[stage].update({f"cpu_{name}_s": round(cpu, 1) for name, _, cpu in folded})
        manifest["projections"] = "up to date"
        (home / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _pools(groups: list[GroupShape], complete: int, next_bag: list[int], rng: random.Random, n: int = 20_000
           ) -> dict[str, list[str]]:
    """Tag ids to request, by kind: bags with a history and lots (of the first `complete` groups, whose chains
    ended), tags never used (bench/verify_latency.py)."""
    picked = rng.sample(groups[:complete], min(n, complete))
    used: dict[int, int] = {}
    for g in groups:
        used[g.site] = max(used.get(g.site, 0), g.first_bag + g.bags + (g.void is not None))
    unused = [bag_id(s, k) for s, top in enumerate(next_bag) for k in range(used.get(s, 0), top)]
    return {"bag": [bag_id(g.site, g.first_bag + rng.randrange(g.bags)) for g in picked],
            "lot": [lot_id(g.processor, g.lot) for g in picked],
            "unused": rng.sample(unused, min(n, len(unused)))}


def describe(url: str, home: Path, tags: int, *, groups_per_window: int = 1000, seed: int = 1) -> dict[str, Any]:
    """(Re)write `home`'s large-store.json for a store this script built with these arguments (the plan is
    deterministic), e.g. one whose build was stopped after its histories: the pools of tag ids from the plan (chains
    that ended), the samples' states read from the store's own views."""
    rng = random.Random(seed)
    orgs = make_orgs(tags, rng)
    groups, next_bag, next_lot = plan_groups(tags, orgs, rng)
    windows = max(1, -(-len(groups) // groups_per_window))
    path = home / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {"stages": {}, "projections": "unknown"}
    manifest["pools"] = pools = _pools(groups, (windows - 1) * groups_per_window or len(groups), next_bag,
                                       random.Random(seed + 1))
    ledger = Ledger.open(url)
    try:
        manifest.update({"url": url, "tags": sum(next_bag) + sum(next_lot), "entries": ledger.store.size(),
                         "groups": len(groups), "windows": windows, "seed": seed})
        manifest["entries_per_tag"] = round(manifest["entries"] / manifest["tags"], 2)
        manifest["samples"] = {t: [str(v.state.status), v.state.holder] for t in
                               (*pools["bag"][:10], *pools["lot"][:10], *pools["unused"][:5])
                               if (v := ledger.tag(t, context=False)) is not None}
        manifest["samples_read_from_the_store"] = True
    finally:
        ledger.close()
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True, help="an empty PostgreSQL database (created beforehand)")
    p.add_argument("--home", required=True, type=Path, help="the ledger home to write (keys, tagledger.json)")
    p.add_argument("--tags", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2, help="signing processes")
    p.add_argument("--groups-per-window", type=int, default=1000, help="lots per window (one COPY transaction)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-projections", action="store_true",
                   help="do not bring the projections up to date (tagledger projection status does it later)")
    p.add_argument("--describe-only", action="store_true",
                   help="build nothing: rewrite DIR/large-store.json for a store built with these arguments")
    args = p.parse_args(argv)
    if args.describe_only:
        out = describe(args.db, args.home, args.tags, groups_per_window=args.groups_per_window, seed=args.seed)
        print(json.dumps({k: v for k, v in out.items() if k not in ("samples", "pools")}, indent=1))
        return 0
    t0 = time.perf_counter()
    out = build(args.db, args.home, args.tags, workers=args.workers, groups_per_window=args.groups_per_window,
                seed=args.seed, projections=not args.no_projections, log=lambda s: print(f"[{time.perf_counter() - t0:7.1f} s] {s}", flush=True))
    print(json.dumps({k: v for k, v in out.items() if k not in ("samples", "pools")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
