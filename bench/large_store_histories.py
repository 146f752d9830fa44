"""Signed custody histories for a large store (bench/build_large_store.py), made in worker processes.

A *group* is one lot's chain: B bags tagged at a mine site, each scanned there by a field monitor, sent to the
site's cooperative (scanned by the mining authority on arrival), to a trader (scanned at purchase, and by a
monitor), to a processor, who merges them into a lot; the lot is inspected, sent to an exporter, checked by
customs, sent to a refiner and consumed there. Every event is signed by the acting organisation's own key with
the real client code (`ledger.client.signer.Signer`), and names the previous event of each stream it joins,
exactly as a client would: the histories are valid by construction, so only the per-event online rule checks
are skipped (the auditor's replay in tests/ledger/test_large_store_builder.py checks every one of them).

Time: the builder gives each *window* of groups its own span of `PHASES` phases of `PHASE_US`; an event's time
is its window's start, plus its phase, plus its group's slot in the phase, so that the events of a window sorted
by time are in a valid log order (a stream's events are in phase order; a lot is formed after its bags' last
events). Positions are a site's, a cooperative's... (the field monitor and the authority scan where the tag is),
and phases are hours apart, so that no tag moves faster than the fraud flags allow (domain/flags.py); masses only
decrease along the chain and a lot weighs what its bags weighed, so no flag is raised by construction.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.client.signer import Signer
from ledger.keys import KeyPair
from ledger.writer import stored_tags
from verification.canonical import jcs
from verification.encoding import format_time, sha256_hex

PHASE_US = 4 * 3600 * 10**6
"""Four hours between the steps of a chain: the furthest two organisations of the region are ~310 km apart."""
SLOTS = 64
"""Events of one group in one phase (bags x kinds) are ordered by `slot * SLOTS + k`, k < SLOTS."""
RECEIVED_DELAY_US = 2 * 10**6
"""`received` = the event's time + 2 s: the ledger's clock, as the log order is the time order."""
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

(ATTACH, SCAN_SITE, DISPATCH_COOP, RECEIVE_COOP, SCAN_COOP, DISPATCH_TRADER, RECEIVE_TRADER, SCAN_TRADER,
 DISPATCH_PROCESSOR, RECEIVE_PROCESSOR, LOT_FORMED, SCAN_LOT, DISPATCH_EXPORTER, RECEIVE_EXPORTER, CUSTOMS,
 DISPATCH_REFINER, RECEIVE_REFINER, CONSUME) = range(18)
PHASES = 18
MINERALS = ("tin", "tantalum", "tungsten", "cobalt", "copper")
ORES = {"tin": "cassiterite", "tantalum": "coltan", "tungsten": "wolframite", "cobalt": "heterogenite",
        "copper": "malachite"}


def time_text(us: int) -> str:
    return format_time(EPOCH + timedelta(microseconds=us))


@dataclass(frozen=True)
class OrgKey:
    """What a worker needs of an organisation: its id, its private key (raw) and where it is (None: abroad)."""

    org: str
    private_raw: bytes
    gps: tuple[str, str] | None


@dataclass(frozen=True)
class GroupPlan:
    """One lot's chain. `bags`, `voids`: (tag, hash of the `tags_issued` that created it, i.e. its stream head)."""

    number: int  # global, for the order of ties and the event ids
    slot: int  # within its window
    site: str
    coop: str
    trader: str
    processor: str
    exporter: str
    refiner: str
    monitor: str
    authority: str
    bags: tuple[tuple[str, str], ...]
    lot: tuple[str, str]
    voids: tuple[tuple[str, str], ...] = ()
    last_phase: int = CONSUME  # a chain still under way when the log ends stops earlier
    sample: bool = False  # report every tag's final state (the test and the bench check them)


Row = tuple[int, int, str, bytes, tuple[str, ...], tuple[str, ...]]
"""(time in µs since the epoch, order of ties, type, canonical envelope bytes, the tags stored with its log row, the
tags only indexed: `ledger.writer.stored_tags`)."""

_ORGS: dict[str, OrgKey] = {}
_SIGNERS: dict[str, Signer] = {}


def init_worker(orgs: list[OrgKey]) -> None:
    """Pool initializer: every organisation's signer, once per worker process."""
    for org in orgs:
        _ORGS[org.org] = org
        _SIGNERS[org.org] = Signer(org.org, KeyPair(Ed25519PrivateKey.from_private_bytes(org.private_raw)))


class Chain:
    """Signs events in stream order and keeps each stream's head (the hash its next event names as `prev`)."""

    def __init__(self, heads: dict[str, str | None], rng: random.Random, order_base: int):
        self.heads = heads
        self.rng = rng
        self.order_base = order_base
        self.rows: list[Row] = []

    def sign(self, org: str, event_type: str, stream: str, data: dict[str, Any], when_us: int, order: int,
             linked: tuple[str, ...] = ()) -> None:
        links = {s: self.heads[s] for s in linked} if linked else None
        envelope = _SIGNERS[org].envelope(event_type, stream, self.heads.get(stream), data, time=time_text(when_us),
                                          links=links, event_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
        raw = jcs(envelope)
        digest = sha256_hex(raw)
        self.heads[stream] = digest
        for s in linked:
            self.heads[s] = digest
        self.rows.append((when_us, self.order_base + order, event_type, raw, *stored_tags(envelope["body"])))


def _gps(org: str, rng: random.Random) -> dict[str, str] | None:
    where = _ORGS[org].gps
    if where is None:
        return None
    lat, lon = where  # a phone's fix within ~100 m of the organisation's place
    return {"lat": f"{float(lat) + rng.uniform(-0.001, 0.001):.6f}", "lon": f"{float(lon) + rng.uniform(-0.001, 0.001):.6f}"}


def sign_groups(window_start_us: int, groups_per_window: int, plans: list[GroupPlan]
                ) -> tuple[list[Row], dict[str, tuple[str, str | None]]]:
    """Sign every event of `plans` (groups of one window). Returns the rows and, for groups marked `sample`,
    each tag's expected (status, holder) at the end."""
    rows: list[Row] = []
    expected: dict[str, tuple[str, str | None]] = {}
    for plan in plans:
        group_rows, final = _sign_group(window_start_us, groups_per_window, plan)
        rows.extend(group_rows)
        if plan.sample:
            expected.update(final)
    return rows, expected


def _sign_group(window_start_us: int, groups_per_window: int, p: GroupPlan
                ) -> tuple[list[Row], dict[str, tuple[str, str | None]]]:
    rng = random.Random(p.number * 7919 + 17)
    heads: dict[str, str | None] = {f"tag:{t}": h for t, h in (*p.bags, p.lot, *p.voids)}
    chain = Chain(heads, rng, p.number * PHASES * SLOTS)
    step = PHASE_US // (groups_per_window * SLOTS)

    def at(phase: int, k: int) -> tuple[int, int]:
        return window_start_us + phase * PHASE_US + (p.slot * SLOTS + k) * step, phase * SLOTS + k

    state: dict[str, tuple[str, str | None]] = {t: ("issued", None) for t, _ in (*p.bags, *p.voids)}
    state[p.lot[0]] = ("issued", None)
    for k, (tag, _) in enumerate(p.voids):
        chain.sign(p.site, "tag_voided", f"tag:{tag}", {"reason": rng.choice(("damaged", "lost")),
                                                         "note": "label torn before use"}, *at(ATTACH, SLOTS - 1 - k))
        state[tag] = ("voided", None)

    def hop(tag: str, phases: tuple[int, int], parties: tuple[str, str], places: tuple[str, str], mass: int,
            loss: int, k: int) -> tuple[int, bool]:
        """Dispatch `tag` and, if the chain goes that far, receive it a little lighter (dust and moisture, at most
        1/`loss`: never a gain). Returns (its mass now, whether it was received)."""
        (dispatch, receive), (sender, recipient), (here, there) = phases, parties, places
        if dispatch > p.last_phase:
            return mass, False
        chain.sign(sender, "custody_dispatched", f"tag:{tag}", {"to": recipient, "mass_g": mass, "location": here},
                   *at(dispatch, k))
        state[tag] = ("in_transit", sender)
        if receive > p.last_phase:
            return mass, False
        mass -= rng.randrange(0, mass // loss + 1)
        chain.sign(recipient, "custody_received", f"tag:{tag}",
                   {"mass_g": mass, "location": there, "gps": _gps(recipient, rng)}, *at(receive, k))
        state[tag] = ("in_custody", recipient)
        return mass, True

    masses: dict[str, int] = {}
    mineral = MINERALS[p.number % len(MINERALS)]
    hops = ((DISPATCH_COOP, RECEIVE_COOP, p.site, p.coop, "pit gate", "cooperative depot"),
            (DISPATCH_TRADER, RECEIVE_TRADER, p.coop, p.trader, "cooperative depot", "trader warehouse"),
            (DISPATCH_PROCESSOR, RECEIVE_PROCESSOR, p.trader, p.processor, "trader warehouse", "processing plant"))
    scans = ((SCAN_COOP, p.authority, p.coop, "inspection", 0.9), (SCAN_TRADER, p.trader, p.trader, "purchase", 0.9))
    if len(p.bags) > 14:
        raise ValueError("at most 14 bags per lot (their events' slots in a phase)")
    for b, (tag, _) in enumerate(p.bags):
        stream = f"tag:{tag}"
        if p.last_phase < ATTACH:
            break
        mass = rng.randrange(20_000, 60_000)
        data = {"site": p.site, "mineral": mineral, "ore": ORES[mineral], "mass_g": mass,
                "pit": f"P-{rng.randrange(1, 40):02d}", "gps": _gps(p.site, rng),
                "price_paid": {"currency": "USD", "minor_per_kg": rng.randrange(800, 2000)}}
        chain.sign(p.site, "tag_attached", stream, data, *at(ATTACH, b * 4))
        state[tag] = ("in_custody", p.site)
        if p.last_phase >= SCAN_SITE and rng.random() < 0.9:  # a field monitor sees the bag at the pit
            chain.sign(p.monitor, "tag_scanned", stream, {"gps": _gps(p.site, rng), "purpose": "monitoring"},
                       *at(SCAN_SITE, b * 4))
        for dispatch, receive, sender, recipient, here, there in hops:
            mass, arrived = hop(tag, (dispatch, receive), (sender, recipient), (here, there), mass, 500, b * 4)
            if not arrived:
                break
            for phase, scanner, place, purpose, chance in scans:
                if phase == receive + 1 and phase <= p.last_phase and rng.random() < chance:
                    chain.sign(scanner, "tag_scanned", stream, {"gps": _gps(place, rng), "purpose": purpose},
                               *at(phase, b * 4))
                    if phase == SCAN_TRADER and rng.random() < 0.7:  # a field monitor checks the trader's stock
                        chain.sign(p.monitor, "tag_scanned", stream,
                                   {"gps": _gps(place, rng), "purpose": "monitoring"}, *at(phase, b * 4 + 1))
        masses[tag] = mass

    lot, _ = p.lot
    if p.last_phase >= LOT_FORMED and p.bags:
        inputs = [t for t, _ in p.bags]
        total = sum(masses[t] for t in inputs)
        chain.sign(p.processor, "lot_formed", f"tag:{lot}", {"inputs": inputs, "mass_g": total}, *at(LOT_FORMED, 0),
                   linked=tuple(f"tag:{t}" for t in inputs))
        for t in inputs:
            state[t] = ("merged", p.processor)
        state[lot] = ("in_custody", p.processor)
        stream = f"tag:{lot}"
        if p.last_phase >= SCAN_LOT and rng.random() < 0.8:
            chain.sign(p.authority, "tag_scanned", stream, {"gps": _gps(p.processor, rng), "purpose": "inspection"},
                       *at(SCAN_LOT, 0))
        for dispatch, receive, sender, recipient, here, there in (
                (DISPATCH_EXPORTER, RECEIVE_EXPORTER, p.processor, p.exporter, "processing plant", "export warehouse"),
                (DISPATCH_REFINER, RECEIVE_REFINER, p.exporter, p.refiner, "export warehouse", "smelter")):
            total, arrived = hop(lot, (dispatch, receive), (sender, recipient), (here, there), total, 1000, 0)
            if not arrived:
                break
            if receive == RECEIVE_EXPORTER and p.last_phase >= CUSTOMS:
                chain.sign(p.authority, "tag_scanned", stream, {"gps": _gps(p.exporter, rng), "purpose": "customs",
                                                                "location": "border post"}, *at(CUSTOMS, 0))
        if p.last_phase >= CONSUME and state[lot] == ("in_custody", p.refiner):
            chain.sign(p.refiner, "tag_consumed", stream, {"mass_g": total, "product": f"{mineral} concentrate"},
                       *at(CONSUME, 0))
            state[lot] = ("consumed", p.refiner)
    return chain.rows, state
