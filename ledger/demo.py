"""A realistic, deterministic demo data set, loaded through the same signed write path as a real client.

`load_demo` simulates about two months of artisanal mining in the DRC and Rwanda: five mine sites attach tags
to bags at the pit, cooperatives and négociants carry them to a comptoir, which merges them into lots; the
exporter ships the lots (one of them split into two containers) to a refiner in Belgium, which consumes them.
Along the way one bag is stolen (voided), a trader loses the phone holding its key (the key is rotated), and one
fraud attempt is refused by the ledger.

Alongside it runs a monthly monitoring cycle (protocol section 16): the monitor visits every site each month
(price paid against a reference price, workforce by sex, minors, miners' concerns) and reports seven incidents
(child labour in its worst forms, referred to a child-protection partner; a pit collapse; armed men on an access
path; illegal taxation; tags found outside the tagging point; one dismissed after checking; one just reported),
each with its sealed details uploaded; the operator assigns corrective actions to the site, the cooperative, a
trader, the authorities and the partner; the owners report progress with evidence hashes and the monitor
verifies: some actions are implemented (two incidents closed), some not, one is still open and overdue at the end.
Authorities scan tags (SAEMAPE at a site, the RMB at a depot, customs at Kasumbalesa), and customs scans, at the
Goma border, the tag of a bag that was merged into a lot: a reused tag.

Every event is signed by the acting organisation's own key with `Signer`/`LedgerClient`; the operator only
registers organisations, rotates keys, issues tags and assigns corrective actions. The story is decided by a
seeded `random.Random` before anything is sent, so two loads with the same seed record the same sequence of
events (only the keys, the event ids, the salts of the sealed details and, if `now` differs, the times differ;
the monitoring cycle follows the calendar months of the period).

Times: the simulated period is `DEMO_DAYS` days ending at `now`. An event cannot be older than the key that
signs it, so the period cannot start before the operator's key (the genesis event) is valid. If the genesis is
more recent than that, the same story is squeezed into the time between the genesis and `now`
(`DemoReport.compressed`); to get a realistic calendar, create the ledger with a genesis at least
`DEMO_DAYS` days old.
"""

from __future__ import annotations

import hashlib
import random
import time as _time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from domain.risk import cycle_due
from ledger.client.signer import Signer
from ledger.client.transport import HttpTransport, LedgerError, LocalTransport, Transport
from ledger.client.verbs import LedgerClient
from ledger.keys import KeyPair
from verification.encoding import format_time, parse_time
from verification.sealed_details import commitment, new_details

DEMO_DAYS = 60
HOURS = DEMO_DAYS * 24.0
MIN_TAGS_PER_SITE = 8
MAX_TAGS_PER_SITE = 2000
PLAN_ATTEMPTS = 50
REQUIRED_EXAMPLES = frozenset(
    {"consumed_bag", "consumed_lot", "split_lot", "voided", "in_transit", "in_custody", "fraud_bag"}
)

__all__ = ["DEMO_DAYS", "DemoAlreadyLoaded", "DemoReport", "KeyRotation", "RejectedAttempt", "load_demo"]


class DemoAlreadyLoaded(RuntimeError):
    """The demo organisations already exist in this ledger."""


# --- the cast ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Org:
    id: str
    name: str
    role: str
    country: str
    town: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Mineral:
    mineral: str
    ore: str
    weight: int
    usd_cents_per_kg: tuple[int, int]
    product: str


@dataclass(frozen=True)
class _Site:
    org: _Org
    prefix: str
    minerals: tuple[_Mineral, ...]
    pits: tuple[str, ...]
    route: tuple[str, ...]  # the holders after the site, ending at the processor


COBALT = _Mineral("cobalt", "heterogenite", 1, (180, 420), "cobalt hydroxide feed")
COPPER = _Mineral("copper", "malachite", 1, (60, 140), "copper cathode")
TIN = _Mineral("tin", "cassiterite", 1, (900, 1400), "tin ingot 99.9 %")
TANTALUM = _Mineral("tantalum", "coltan", 1, (2200, 4200), "tantalum powder")
TUNGSTEN = _Mineral("tungsten", "wolframite", 1, (700, 1100), "ammonium paratungstate")


def _w(mineral: _Mineral, weight: int) -> _Mineral:
    return _Mineral(mineral.mineral, mineral.ore, weight, mineral.usd_cents_per_kg, mineral.product)


COOP_CD = _Org("coop-conema", "CONEMA - Coopérative des Exploitants Miniers Artisanaux", "cooperative", "CD",
               "Kolwezi")
COOP_RW = _Org("koperative-kogamu", "KOGAMU - Koperative y'Abacukuzi ba Gatumba", "cooperative", "RW",
               "Ngororero")
TRADER_KOLWEZI = _Org("negoce-mutanda", "Négoce Mutanda & Fils", "trader", "CD", "Kolwezi, Mutanda depot")
TRADER_BUKAVU = _Org("ets-bahati", "Établissements Bahati Minerals", "trader", "CD", "Bukavu")
TRADER_RW = _Org("gakenke-traders", "Gakenke Mineral Traders Ltd", "trader", "RW", "Gakenke")
PROCESSOR = _Org("cmgl-comptoir", "Comptoir Minier des Grands Lacs (CMGL)", "processor", "CD", "Lubumbashi")
EXPORTER = _Org("translakes-export", "Trans-Lakes Mineral Export SARL", "exporter", "CD", "Kasumbalesa")
REFINER = _Org("scheldt-refining", "Scheldt Metals Refining NV", "refiner", "BE", "Hoboken, Antwerp",
               {"rmi_cid": "CID002158"})
MONITOR = _Org("oscm-monitor", "Observatoire de la Société Civile pour les Minerais (OSCM)", "monitor", "CD",
               "Bukavu")
AUDITOR = _Org("alpine-assurance", "Alpine Assurance & Audit SA", "auditor", "CH", "Geneva")
# Registered after the custody cast (with the risk story's own random stream, so the custody story of a seed is
# unchanged): public authorities and a child-protection partner (protocol section 16).
SAEMAPE = _Org("saemape", "SAEMAPE - Service d'Assistance et d'Encadrement de l'Exploitation Minière Artisanale et "
               "à Petite Échelle", "authority", "CD", "Kolwezi (Lualaba antenna)")
RMB = _Org("rmb-rwanda", "Rwanda Mines, Petroleum and Gas Board (RMB)", "authority", "RW", "Kigali")
CUSTOMS = _Org("dgda-customs", "DGDA - Direction Générale des Douanes et Accises", "authority", "CD",
               "Kasumbalesa border post")
PARTNER = _Org("tumaini-enfance", "Tumaini - Réseau de Protection de l'Enfant (Kolwezi)", "partner", "CD",
               "Kolwezi")


def _site(org_id: str, name: str, country: str, town: str, lat: str, lon: str, capacity: int, coop: _Org,
          prefix: str, minerals: tuple[_Mineral, ...], pits: tuple[str, ...], route: tuple[str, ...]) -> _Site:
    org = _Org(org_id, name, "site", country, town, {
        "gps": {"lat": lat, "lon": lon}, "capacity_kg_per_month": capacity, "operated_by": coop.id,
    })
    return _Site(org, prefix, minerals, pits, route)


SITES: tuple[_Site, ...] = (
    _site("kalando-zea", "Kalando artisanal mining zone (ZEA)", "CD", "Kalando, Kolwezi (Lualaba)",
          "-10.741230", "25.421870", 18_000, COOP_CD, "KAL-", (COBALT,),
          ("Puits K-12", "Puits K-17", "Tranchée Nord", "Puits Mama Yetu"),
          (COOP_CD.id, TRADER_KOLWEZI.id, PROCESSOR.id)),
    _site("kambove-sud", "Kambove-Sud artisanal site", "CD", "Kambove (Haut-Katanga)",
          "-10.876040", "26.596310", 12_000, COOP_CD, "KMB-", (_w(COPPER, 11), _w(COBALT, 9)),
          ("Colline Est", "Puits 4", "Carrière Mwanza"),
          (TRADER_KOLWEZI.id, PROCESSOR.id)),
    _site("nyabibwe-site", "Nyabibwe cassiterite site (Kalehe)", "CD", "Nyabibwe, Kalehe (South Kivu)",
          "-1.958300", "28.932410", 6_000, COOP_CD, "NYB-", (TIN,),
          ("Galerie Mungu Ni Mwema", "Galerie 7", "Puits Kalimbi"),
          (TRADER_BUKAVU.id, PROCESSOR.id)),
    _site("gatumba-site", "Gatumba coltan concession (Ngororero)", "RW", "Gatumba, Ngororero",
          "-1.902870", "29.551640", 5_000, COOP_RW, "GAT-", (_w(TANTALUM, 7), _w(TIN, 3)),
          ("Pit Bijyojyo", "Pit Kabuye", "Trench 3"),
          (COOP_RW.id, TRADER_RW.id, PROCESSOR.id)),
    _site("nyakabingo-site", "Nyakabingo wolframite hill (Rulindo)", "RW", "Nyakabingo, Rulindo",
          "-1.793410", "30.024580", 4_000, COOP_RW, "NYK-", (TUNGSTEN,),
          ("Adit 2", "Adit 5", "Open cut West"),
          (TRADER_RW.id, PROCESSOR.id)),
)

ORGS: tuple[_Org, ...] = (
    COOP_CD, COOP_RW, *(s.org for s in SITES), TRADER_KOLWEZI, TRADER_BUKAVU, TRADER_RW, PROCESSOR, EXPORTER,
    REFINER, MONITOR, AUDITOR,
)
RISK_ORGS: tuple[_Org, ...] = (SAEMAPE, RMB, CUSTOMS, PARTNER)
ALL_ORGS: tuple[_Org, ...] = (*ORGS, *RISK_ORGS)
TOWN = {o.id: o.town for o in ALL_ORGS}
NAME = {o.id: o.name for o in ALL_ORGS}
PRODUCT = {m.mineral: m.product for m in (COBALT, COPPER, TIN, TANTALUM, TUNGSTEN)}

LOT_PREFIX = "LOT-"  # lot tags of the processor
EXPORT_PREFIX = "EXP-"  # container tags of the exporter (for splits)
FRAUD_ACTOR = TRADER_KOLWEZI.id  # re-sells a bag that the comptoir already merged into a lot
ROTATED_ORG = TRADER_RW.id  # loses the phone that holds its key
ROTATION_REASON = "Lost the phone holding the signing key at the Gakenke market; key replaced."
VOID_NOTE = "Bag stolen from the site depot before collection; reported to the mining police."
VOID_SITE = "nyabibwe-site"  # a bag is stolen from the site's depot

# Hand-over rhythm per kind of hop: (days between trips), (hours on the road).
_HOP_RHYTHM: dict[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]] = {
    ("site", "cooperative"): ((2.0, 4.0), (2.0, 8.0)),
    ("site", "trader"): ((3.0, 5.0), (4.0, 20.0)),
    ("cooperative", "trader"): ((3.0, 6.0), (3.0, 10.0)),
    ("trader", "processor"): ((4.0, 7.0), (10.0, 40.0)),
}


# --- the report --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectedAttempt:
    """The fraud attempt the ledger refused."""

    description: str
    actor: str
    tag: str
    rule: str | None
    detail: str
    status: int
    unchanged: bool  # the tag's stream head is the same before and after the attempt


@dataclass(frozen=True)
class KeyRotation:
    org: str
    old_kid: str
    new_kid: str
    effective: str
    reason: str


@dataclass
class DemoReport:
    counts: dict[str, int]  # accepted events by type (the genesis, recorded by the caller, is not included)
    orgs: dict[str, list[str]]  # role -> organisation ids
    examples: dict[str, str]  # what -> tag id: consumed_bag, consumed_lot, split_lot, split_output, voided,
    #                           in_custody, in_transit, unused, fraud_bag
    notes: dict[str, str]  # what -> what the example shows, for a person
    rejected: RejectedAttempt
    key_rotation: KeyRotation
    keys: dict[str, KeyPair]  # org id -> its current (valid) private key
    revoked_keys: dict[str, KeyPair]  # org id -> the key it lost (revoked)
    start: str
    end: str
    compressed: bool  # True if the story had to be squeezed in after a recent genesis
    elapsed_s: float = 0.0
    risk: dict[str, Any] = field(default_factory=dict)  # the monitoring cycle: incidents by status, actions, ...
    risk_examples: dict[str, str] = field(default_factory=dict)  # red_flag_site, overdue_incident, ...
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # incident id -> its sealed details (16.2)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        ex = self.examples
        lines = [
            f"Demo loaded: {self.total} signed events by {sum(len(v) for v in self.orgs.values())} "
            f"organisations, {self.start[:16]}Z .. {self.end[:16]}Z (in {self.elapsed_s:.1f} s).",
            "  " + ", ".join(f"{n} {t}" for t, n in sorted(self.counts.items())),
        ]
        if self.compressed:
            lines.append(
                "  Note: the ledger's genesis is recent, so the demo's two months were squeezed in after it. "
                f"For a realistic calendar, create the ledger with a genesis at least {DEMO_DAYS} days old."
            )
        lines.append("Organisations:")
        for role, ids in self.orgs.items():
            lines.append(f"  {role:<12} {', '.join(ids)}")
        lines.append("Try:")
        for key, tag in ex.items():
            if key != "fraud_bag":
                lines.append(f"  tagledger tag {tag:<12}  # {self.notes.get(key, key)}")
        r = self.rejected
        lines.append(
            f"Refused: {r.description} The ledger answered {r.status} {r.rule}: {r.detail} "
            f"({'nothing changed' if r.unchanged else 'WARNING: the tag changed'})."
        )
        k = self.key_rotation
        lines.append(
            f"Key rotation: {k.org}: \"{k.reason}\" Key {k.old_kid} is revoked with effect from {k.effective}; "
            f"its later events are signed with key {k.new_kid}."
        )
        if self.risk:
            r, x = self.risk, self.risk_examples
            lines.append(
                f"Risk and remediation: {r['incidents']} incidents ("
                + ", ".join(f"{n} {status}" for status, n in r["by_status"].items())
                + f"), {r['actions']} corrective actions ({r['implemented']} implemented, {len(r['overdue'])} "
                f"overdue), {r['site_visits']} monthly site visits, {r['scans']} tag scans by authorities."
            )
            if not r["overdue"] and r.get("first_due"):
                lines.append(f"  No corrective action is overdue yet: the story had to fit between the ledger's recent "
                             f"genesis and now, and an action is due at the end of its month at the earliest: the "
                             f"first open ones fall due on {r['first_due'][:10]}. For the full tour (overdue "
                             f"actions included), start from a fresh home: `make serve` dates its genesis "
                             f"{DEMO_DAYS + 30} days back.")
            if x.get("red_flag_site"):
                late = any(o.startswith(f"{x['overdue_incident']}/") for o in r["overdue"])
                lines.append(f"  GET /v1/sites/{x['red_flag_site']}/risk   # an open red flag "
                             f"({x['overdue_incident']}: armed men on the access path"
                             + (", an action overdue)" if late else ")"))
            if x.get("remediated_incident"):
                lines.append(f"  {x['remediated_incident']}: a pit collapse, remediated and closed; "
                             f"{x['worst_forms_incident']}: child labour (worst forms), referred to the partner")
        return "\n".join(lines)


# --- the plan ----------------------------------------------------------------------------------------


@dataclass
class _Action:
    h: float  # simulated hours since the start of the period
    n: int  # creation order (tie-break)
    kind: str
    actor: str
    args: dict[str, Any]


@dataclass
class _Bag:
    tag: str
    site: str
    mineral: str
    mass: int
    holder: str
    ready: float  # when the current holder can hand it on
    holders: list[str]
    lot: str | None = None
    merged_at: float | None = None
    voided: bool = False


@dataclass
class _Lot:
    tag: str
    mineral: str
    inputs: list[_Bag]
    mass: int
    formed: float


class _Planner:
    def __init__(self, rng: random.Random, operator: str, tags_per_site: int, tolerance_ppm: int):
        self.rng = rng
        self.operator = operator
        self.tags_per_site = tags_per_site
        self.tolerance_ppm = tolerance_ppm
        self.actions: list[_Action] = []
        self.bags: list[_Bag] = []
        self.lots: list[_Lot] = []
        self.examples: dict[str, str] = {}
        self._example_lot_inputs: set[str] = set()
        self.fraud: _Action | None = None
        self.lot_counter = 0
        self.export_counter = 0

    def add(self, h: float, kind: str, actor: str, **args: Any) -> _Action:
        action = _Action(h, len(self.actions), kind, actor, args)
        self.actions.append(action)
        return action

    def u(self, a: float, b: float) -> float:
        return self.rng.uniform(a, b)

    # -- the story ------------------------------------------------------------------------------------

    def plan(self) -> None:
        self.registry()
        for site in SITES:
            self.attach_bags(site)
        self.hand_over_chain()
        self.force_one_in_transit()
        self.form_lots()
        self.ship_lots()
        self.fraud_attempt()
        self.actions = [a for a in self.actions if a.h <= HOURS]
        self.key_rotation()
        self.actions.sort(key=lambda a: (a.h, a.n))

    def registry(self) -> None:
        h = self.u(1.0, 3.0)
        for org in ORGS:
            self.add(h, "register", self.operator, org=org)
            h += self.u(0.2, 0.7)
        self.registry_done = h
        h += self.u(12.0, 20.0)
        for site in SITES:
            self.add(h, "issue", self.operator, org=site.org.id, prefix=site.prefix, count=self.tags_per_site)
            h += self.u(0.1, 0.4)
        # the count is set once the lots are planned (`form_lots`): all of them plus a few spare
        self.lot_issue = self.add(h, "issue", self.operator, org=PROCESSOR.id, prefix=LOT_PREFIX, count=0)
        h += self.u(0.1, 0.4)
        self.add(h, "issue", self.operator, org=EXPORTER.id, prefix=EXPORT_PREFIX, count=10)
        self.tags_issued_at = h

    def attach_bags(self, site: _Site) -> None:
        n = self.tags_per_site
        spare = max(1, n // 12)  # a few tags stay unused at the site
        first = self.tags_issued_at + 6.0
        early = max(2, n // 10)  # production starts as soon as the tags arrive
        times = sorted([self.u(first, first + 96.0) for _ in range(early)]
                       + [self.u(first, HOURS - 10.0) for _ in range(n - spare - early)])
        lat0, lon0 = float(site.org.extra["gps"]["lat"]), float(site.org.extra["gps"]["lon"])
        for i, h in enumerate(times, start=1):
            tag = f"{site.prefix}{i:06d}"
            mineral = self.rng.choices(site.minerals, weights=[m.weight for m in site.minerals])[0]
            mass = self.rng.randint(200, 600) * 100
            gps = None
            if self.rng.random() < 0.6:
                gps = {"lat": f"{lat0 + self.u(-0.008, 0.008):.6f}", "lon": f"{lon0 + self.u(-0.008, 0.008):.6f}"}
            price = None
            if self.rng.random() < 0.65:
                lo, hi = mineral.usd_cents_per_kg
                price = {"currency": "USD", "minor_per_kg": self.rng.randint(lo, hi)}
            self.add(h, "attach", site.org.id, tag=tag, mineral=mineral.mineral, ore=mineral.ore, mass_g=mass,
                     pit=self.rng.choice(site.pits), gps=gps, price_paid=price)
            self.bags.append(_Bag(tag, site.org.id, mineral.mineral, mass, site.org.id, h + 0.5, [site.org.id]))
        self.examples.setdefault("unused", f"{site.prefix}{n:06d}")

    def hand_over_chain(self) -> None:
        """Trips from each holder to the next one on the bag's route, holder by holder, upstream first."""
        roles = {o.id: o.role for o in ORGS}
        next_hop: dict[str, str] = {}
        for site in SITES:
            chain = (site.org.id, *site.route)
            for a, b in zip(chain, chain[1:]):
                next_hop[a] = b
        order = [s.org.id for s in SITES] + [COOP_CD.id, COOP_RW.id, TRADER_KOLWEZI.id, TRADER_BUKAVU.id,
                                              TRADER_RW.id]
        void_victim: _Bag | None = None
        for holder in order:
            to = next_hop[holder]
            (p_lo, p_hi), (t_lo, t_hi) = _HOP_RHYTHM[(roles[holder], roles[to])]
            here = [b for b in self.bags if b.holder == holder]
            if not here:
                continue
            if holder == VOID_SITE and len(here) >= 3:
                void_victim = here[self.rng.randint(1, min(4, len(here) - 1))]
            trip = min(b.ready for b in here) + self.u(p_lo, p_hi) * 24.0 * self.u(0.3, 1.0)
            while trip <= HOURS:
                load = [b for b in here if b.holder == holder and not b.voided and b.ready <= trip]
                if void_victim is not None and void_victim in load:
                    # stolen from the depot the night before the collection
                    load.remove(void_victim)
                    void_victim.voided = True
                    when = void_victim.ready + (trip - void_victim.ready) * self.u(0.4, 0.8)
                    self.add(when, "void", holder, tag=void_victim.tag, reason="stolen",
                             note=VOID_NOTE)
                    self.examples["voided"] = void_victim.tag
                self.trip(holder, to, load, trip, (t_lo, t_hi))
                trip += self.u(p_lo, p_hi) * 24.0
        if void_victim is not None and not void_victim.voided:  # never collected: stolen anyway
            void_victim.voided = True
            self.add(min(void_victim.ready + 12.0, HOURS), "void", VOID_SITE, tag=void_victim.tag, reason="stolen",
                     note=VOID_NOTE)
            self.examples["voided"] = void_victim.tag

    def trip(self, holder: str, to: str, load: list[_Bag], start: float, travel: tuple[float, float],
             keep_in_transit: bool = False) -> None:
        t_out = start
        departures = []
        for _ in load:
            departures.append(t_out)
            t_out += self.u(0.03, 0.1)  # a few minutes per bag: weigh, photograph, sign
        t_in = departures[-1] + self.u(*travel) if load else start
        for bag, t_out in zip(load, departures):
            t_in += self.u(0.02, 0.08)
            self.add(t_out, "dispatch", holder, tag=bag.tag, to=to, mass_g=bag.mass, location=TOWN[holder])
            received = bag.mass * (1.0 - self.u(0.001, 0.012))
            mass = max(1, int(received) // 10 * 10)
            if not keep_in_transit:
                self.add(t_in, "receive", to, tag=bag.tag, mass_g=mass, location=TOWN[to])
            bag.holder = to
            bag.holders.append(to)
            bag.mass = mass
            bag.ready = (HOURS + 1000.0) if keep_in_transit else t_in + 0.5

    def force_one_in_transit(self) -> None:
        """Make sure at least one bag is on the road at the end: the last lorry from a site (or further on)."""
        roles = {o.id: o.role for o in ORGS}
        routes = {b.tag: (b.site, *next(s.route for s in SITES if s.org.id == b.site)) for b in self.bags}
        for role in ("site", "cooperative", "trader"):
            left = [b for b in self.bags if roles[b.holder] == role and not b.voided and b.ready <= HOURS - 1.0]
            if left:
                bag = max(left, key=lambda b: (b.ready, b.tag))
                route = routes[bag.tag]
                to = route[route.index(bag.holder) + 1]
                self.trip(bag.holder, to, [bag], max(bag.ready, HOURS - self.u(2.0, 4.0)), (0.0, 0.0),
                          keep_in_transit=True)
                self.examples["in_transit"] = bag.tag
                return

    def form_lots(self) -> None:
        """The comptoir groups the bags it holds, one lot per mineral, every few days."""
        t = self.u(9.0, 12.0) * 24.0
        loss_max = min(0.008, self.tolerance_ppm * 0.4 / 1_000_000)
        while t <= HOURS - 12.0:
            for mineral in ("cobalt", "copper", "tin", "tantalum", "tungsten"):
                held = [b for b in self.bags if b.holder == PROCESSOR.id and b.lot is None and b.mineral == mineral
                        and b.ready <= t]
                if len(held) < 3:
                    continue
                self.lot_counter += 1
                tag = f"{LOT_PREFIX}{self.lot_counter:06d}"
                total = sum(b.mass for b in held)
                mass = max(1, int(total * (1.0 - self.u(0.0, loss_max))))
                self.add(t, "merge", PROCESSOR.id, lot=tag, inputs=[b.tag for b in held], mass_g=mass)
                for b in held:
                    b.lot, b.merged_at = tag, t
                self.lots.append(_Lot(tag, mineral, held, mass, t))
                t += self.u(0.2, 0.8)
            t += self.u(4.0, 7.0) * 24.0
        self.lot_issue.args["count"] = self.lot_counter + 6

    def ship_lots(self) -> None:
        """Comptoir -> exporter -> refiner -> consumed; the exporter splits one lot into two containers."""
        plans = []
        for lot in self.lots:
            r = self.u
            d1 = lot.formed + r(20.0, 72.0)
            r1 = d1 + r(6.0, 30.0)
            d2 = r1 + r(24.0, 96.0)
            r2 = d2 + r(8.0, 14.0) * 24.0
            c = r2 + r(24.0, 120.0)
            split = (r1 + r(3.0, 20.0), r(0.4, 0.6))
            plans.append((lot, d1, r1, d2, r2, c, split))

        def sites_of(lot: _Lot) -> set[str]:
            return {b.site for b in lot.inputs}

        consumed = [p for p in plans if p[5] <= HOURS and len(sites_of(p[0])) >= 2]
        example = consumed[0][0] if consumed else None
        to_split = next((p[0] for p in plans if p[0] is not example and p[2] <= HOURS - 36.0), None)

        for lot, d1, r1, d2, r2, c, (t_split, share) in plans:
            self.add(d1, "dispatch", PROCESSOR.id, tag=lot.tag, to=EXPORTER.id, mass_g=lot.mass,
                     location=TOWN[PROCESSOR.id])
            mass = int(lot.mass * (1.0 - self.u(0.0005, 0.004)))
            self.add(r1, "receive", EXPORTER.id, tag=lot.tag, mass_g=mass, location=TOWN[EXPORTER.id])
            if lot is to_split:
                first = int(mass * share)
                outputs = {self.next_export_tag(): first, self.next_export_tag(): mass - first}
                self.add(t_split, "split", EXPORTER.id, lot=lot.tag, outputs=outputs)
                self.examples["split_lot"] = lot.tag
                self.examples["split_output"] = next(iter(outputs))
                t = t_split
                for out, out_mass in outputs.items():
                    t += self.u(24.0, 72.0)
                    self.ship_to_refiner(out, lot.mineral, out_mass, t)
            else:
                self.add(d2, "dispatch", EXPORTER.id, tag=lot.tag, to=REFINER.id, mass_g=mass,
                         location="Dar es Salaam port")
                mass2 = int(mass * (1.0 - self.u(0.0, 0.003)))
                self.add(r2, "receive", REFINER.id, tag=lot.tag, mass_g=mass2, location=TOWN[REFINER.id])
                self.add(c, "consume", REFINER.id, tag=lot.tag, mass_g=mass2, product=PRODUCT[lot.mineral])
        if example is not None:
            self.examples["consumed_lot"] = example.tag
            self.examples["consumed_bag"] = min(b.tag for b in example.inputs)
            self._example_lot_inputs = {b.tag for b in example.inputs}

    def next_export_tag(self) -> str:
        self.export_counter += 1
        return f"{EXPORT_PREFIX}{self.export_counter:06d}"

    def ship_to_refiner(self, tag: str, mineral: str, mass: int, t: float) -> None:
        self.add(t, "dispatch", EXPORTER.id, tag=tag, to=REFINER.id, mass_g=mass, location="Dar es Salaam port")
        r = t + self.u(8.0, 14.0) * 24.0
        mass2 = int(mass * (1.0 - self.u(0.0, 0.003)))
        self.add(r, "receive", REFINER.id, tag=tag, mass_g=mass2, location=TOWN[REFINER.id])
        self.add(r + self.u(24.0, 120.0), "consume", REFINER.id, tag=tag, mass_g=mass2, product=PRODUCT[mineral])

    def fraud_attempt(self) -> None:
        """The Kolwezi négociant tries to sell again a bag the comptoir has already merged into a lot."""
        merged = sorted((b for b in self.bags if b.merged_at is not None), key=lambda b: (b.merged_at, b.tag))
        # not a bag of the example lot: the refusal now flags the bag and its lot (tag.reuse), and the examples
        # of a clean consumed bag and lot should stay clean
        shown = {self.examples.get("consumed_bag"), *self._example_lot_inputs}
        victim = next((b for b in merged if FRAUD_ACTOR in b.holders and b.merged_at < HOURS - 2.0
                       and b.tag not in shown), None)
        if victim is None:
            return
        when = min(victim.merged_at + self.u(6.0, 36.0), HOURS - 1.0)
        self.fraud = self.add(when, "fraud", FRAUD_ACTOR, tag=victim.tag, to=EXPORTER.id, mass_g=victim.mass,
                              location=TOWN[FRAUD_ACTOR])
        self.examples["fraud_bag"] = victim.tag

    def key_rotation(self) -> None:
        """The RW trader's phone is lost in a quiet spell: new key added, old key revoked from the loss."""
        times = sorted(a.h for a in self.actions if a.actor == ROTATED_ORG)
        lo, hi = HOURS * 0.3, HOURS * 0.75
        points = sorted({lo, hi, *(t for t in times if lo <= t <= hi)})
        _, a, b = max((b - a, a, b) for a, b in zip(points, points[1:]))  # no event of the trader in (a, b)
        self.lost = a + (b - a) * 0.25
        self.key_added = a + (b - a) * 0.6
        self.key_revoked = a + (b - a) * 0.7
        self.add(self.key_added, "key_added", self.operator, org=ROTATED_ORG)
        self.add(self.key_revoked, "key_revoked", self.operator, org=ROTATED_ORG)


# --- the risk and remediation story (protocol section 16) ---------------------------------------------------
#
# A field monitoring programme (the monitor) visits every site once a month and reports incidents; the operator
# assigns corrective actions to owners (the site, the cooperative, a trader, a public authority, the
# child-protection partner) for a monthly cycle; the owners report progress with evidence (content hashes);
# the monitor verifies. The story is told in days from the start of the period; the cycles are calendar
# months, so they are worked out from the real calendar (`at`). It uses its own random stream: the custody
# story of a seed is the same with or without it.

DAY = 24.0
GOMA_BORDER = {"lat": "-1.683600", "lon": "29.238400"}  # Grande Barrière, Goma (to Gisenyi): the suspicious scan
KASUMBALESA_BORDER = {"lat": "-12.256400", "lon": "27.800900"}
GAKENKE_DEPOT = {"lat": "-1.694700", "lon": "29.784700"}


@dataclass(frozen=True)
class _Reference:
    minor_per_kg: int  # USD cents per kg of ore, at the site
    source: str


REFERENCE_PRICES: dict[str, _Reference] = {
    "cobalt": _Reference(520, "LME cobalt cash, heterogenite at 10 % Co, less 45 % (payables, transport, taxes)"),
    "copper": _Reference(170, "LME copper cash, malachite at 15 % Cu, less 35 % (transport, processing, taxes)"),
    "tin": _Reference(1650, "LME tin cash, cassiterite at 60 % Sn, less 30 % (transport, smelting, taxes)"),
    "tantalum": _Reference(5200, "Fastmarkets tantalite 30 % Ta2O5, less 30 % (transport, taxes)"),
    "tungsten": _Reference(1450, "Fastmarkets APT, wolframite at 55 % WO3, less 35 % (transport, taxes)"),
}


@dataclass(frozen=True)
class _SiteProfile:
    women: tuple[int, int]
    men: tuple[int, int]
    price_ratio: tuple[float, float]  # what miners are paid, as a share of the reference price
    concerns: tuple[str, ...]


SITE_PROFILES: dict[str, _SiteProfile] = {
    "kalando-zea": _SiteProfile((80, 110), (380, 450), (0.55, 0.62), ("price", "payment_delay", "water", "childcare")),
    "kambove-sud": _SiteProfile((40, 60), (200, 260), (0.58, 0.66), ("price", "equipment", "finance")),
    "nyabibwe-site": _SiteProfile((30, 50), (260, 320), (0.62, 0.68), ("price", "land_access", "health")),
    "gatumba-site": _SiteProfile((150, 190), (520, 600), (0.70, 0.76), ("payment_delay", "water", "childcare")),
    "nyakabingo-site": _SiteProfile((90, 120), (480, 540), (0.64, 0.70), ("price", "equipment", "health")),
}


def _month(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _next_month(cycle: str) -> str:
    year, month = int(cycle[:4]), int(cycle[5:7])
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def _holdings(actions: list[_Action]) -> dict[str, list[tuple[str, float, float]]]:
    """Per tag, from the plan: (holder, since, until) while the tag sat with a holder (not on the road)."""
    open_: dict[str, tuple[str, float]] = {}
    out: dict[str, list[tuple[str, float, float]]] = {}

    def close(tag: str, h: float) -> None:
        if tag in open_:
            holder, since = open_.pop(tag)
            out.setdefault(tag, []).append((holder, since, h))

    for action in sorted(actions, key=lambda a: (a.h, a.n)):
        a = action.args
        if action.kind in {"attach", "receive"}:
            open_[a["tag"]] = (action.actor, action.h)
        elif action.kind in {"dispatch", "consume", "void"}:
            close(a["tag"], action.h)
        elif action.kind == "merge":
            for tag in a["inputs"]:
                close(tag, action.h)
            open_[a["lot"]] = (action.actor, action.h)
        elif action.kind == "split":
            close(a["lot"], action.h)
            for tag in a["outputs"]:
                open_[tag] = (action.actor, action.h)
    for tag, (holder, since) in open_.items():
        out.setdefault(tag, []).append((holder, since, HOURS))
    return out


class _Incident:
    """One incident's stream, built step by step (each step strictly after the previous one)."""

    def __init__(self, risk: _RiskPlanner, site: str, category: str):
        self.risk = risk
        self.site = site
        self.category = category
        self.id = ""  # set once every incident is planned (numbered in the order they are reported)
        self.steps: list[_Action] = []
        self.last = 0.0
        self.reported = 0.0
        self.status = "reported"
        self.cycles: dict[str, str] = {}  # action -> cycle
        self.implemented: set[str] = set()
        self.details: dict[str, Any] = {}

    def when(self, day: float) -> float:
        """The simulated hour of the next step, about `day` days in (never before the previous step)."""
        return max(self.risk.h(day), self.last + 0.25)

    def _add(self, day: float | None, kind: str, actor: str, *, h: float | None = None, **args: Any) -> float:
        h = self.when(day or 0.0) if h is None else h
        self.last = h
        self.steps.append(self.risk.planner.add(h, kind, actor, **args))
        return h

    def report(self, day: float, occurred_day: float, severity: str, description: str, *,
               notes: str | None = None, **optional: Any) -> _Incident:
        r = self.risk
        site_gps = next(s for s in SITES if s.org.id == self.site).org.extra["gps"]
        lat0, lon0 = float(site_gps["lat"]), float(site_gps["lon"])
        gps = {"lat": f"{lat0 + r.rng.uniform(-0.004, 0.004):.6f}", "lon": f"{lon0 + r.rng.uniform(-0.004, 0.004):.6f}"}
        self.details = new_details(description, gps=gps, notes=notes)
        h = self.when(day)
        occurred = min(r.h(occurred_day), h - 1.0)
        self.reported = self._add(None, "report", MONITOR.id, h=h, site=self.site, category=self.category,
                                  severity=severity, occurred_at=format_time(r.at(occurred)), details=self.details,
                                  optional={k: v for k, v in optional.items() if v is not None})
        return self

    def confirm(self, day: float, note: str, **optional: Any) -> _Incident:
        self.status = "confirmed"
        self._add(day, "confirm", MONITOR.id, optional={"note": note, **optional})
        return self

    def dismiss(self, day: float, reason: str) -> _Incident:
        self.status = "dismissed"
        self._add(day, "dismiss", MONITOR.id, reason=reason)
        return self

    def close(self, day: float, resolution: str) -> _Incident:
        self.status = "closed"
        self._add(day, "close", MONITOR.id, resolution=resolution)
        return self

    def assign(self, day: float, action: str, owner: str, description: str, *, months_later: int = 0,
               final: bool = False) -> _Incident:
        """The operator assigns an action, due by the end of this month (or `months_later`, or the last month)."""
        h = self.when(day)
        cycle = _month(self.risk.at(h))
        for _ in range(months_later):
            cycle = min(_next_month(cycle), self.risk.final)
        if final:
            cycle = self.risk.final
        self.cycles[action] = cycle
        self._add(None, "assign", self.risk.planner.operator, h=h, action=action, owner=owner, description=description,
                  cycle=cycle)
        return self

    def progress(self, day: float, action: str, owner: str, note: str, percent: int | None = None,
                 *evidence: str) -> _Incident:
        self._add(day, "progress", owner, action=action, note=note, percent=percent,
                  evidence=[self.risk.evidence(self.site, name) for name in evidence] or None)
        return self

    def verify(self, day: float, action: str, outcome: str, note: str, *evidence: str) -> _Incident:
        if outcome == "implemented":
            self.implemented.add(action)
        self._add(day, "verify", MONITOR.id, action=action, outcome=outcome, note=note,
                  evidence=[self.risk.evidence(self.site, name) for name in evidence] or None)
        return self


class _RiskPlanner:
    def __init__(self, planner: _Planner, rng: random.Random, start: datetime, end: datetime,
                 at: Any, seed: int, *, realistic: bool = True):
        self.planner = planner
        self.realistic = realistic  # the calendar is (nearly) real time, not squeezed after a recent genesis
        self.rng = rng
        self.start = start
        self.end = end
        self.at = at
        self.seed = seed
        self.final = _month(at(HOURS))
        self.incidents: list[_Incident] = []
        self.scans: dict[str, list[str]] = {}  # purpose -> tags
        self.suspicious: dict[str, Any] = {}
        self.visits = 0
        self.examples: dict[str, str] = {}

    def h(self, day: float) -> float:
        return min(HOURS - 0.5, (day + self.rng.uniform(0.0, 0.3)) * DAY)

    def h_of(self, moment: datetime) -> float:
        return (moment - self.start) / (self.end - self.start) * HOURS

    def evidence(self, site: str, name: str) -> dict[str, str]:
        """An evidence item: the content hash of a photo or document kept by the monitoring programme."""
        media = "application/pdf" if name.endswith(".pdf") else "image/jpeg"
        digest = hashlib.sha256(f"tagledger-demo/{self.seed}/{site}/{name}".encode()).hexdigest()
        return {"sha256": digest, "media_type": media, "name": name}

    def incident(self, site: str, category: str) -> _Incident:
        incident = _Incident(self, site, category)
        self.incidents.append(incident)
        return incident

    def plan(self) -> None:
        h = self.planner.registry_done + self.rng.uniform(0.3, 1.0)
        for org in RISK_ORGS:
            self.planner.add(h, "register", self.planner.operator, org=org)
            h += self.rng.uniform(0.2, 0.6)
        self.tell_incidents()
        self.monthly_visits()
        self.tag_scans()
        # number the incidents in the order they were reported
        ordered = sorted(self.incidents, key=lambda i: i.reported)
        for n, incident in enumerate(ordered, start=1):
            incident.id = f"INC-{self.at(incident.reported).year}-{n:04d}"
            for step in incident.steps:
                step.args["incident"] = incident.id
        self.incidents = ordered
        by_category = {i.category: i for i in ordered}
        self.examples.update({
            "red_flag_site": by_category["armed_groups"].site,
            "overdue_incident": by_category["armed_groups"].id,
            "remediated_incident": by_category["health_safety"].id,
            "worst_forms_incident": next(i.id for i in ordered if i.category == "child_labour"
                                         and i.status != "dismissed"),
            "dismissed_incident": next(i.id for i in ordered if i.status == "dismissed"),
        })
        self.planner.actions.sort(key=lambda a: (a.h, a.n))

    def tell_incidents(self) -> None:
        site, coop = "kalando-zea", COOP_CD.id
        (self.incident(site, "child_labour")
                 .report(5.0, 4.0, "high",
                         "Nine children aged about 11 to 15 seen carrying sacks of heterogenite out of Puits K-17 "
                         "and washing ore at night; two said they work underground during school holidays.",
                         notes="Names and ages of the children are with the partner's case workers only.",
                         worst_forms=True, summary="Children carrying ore and working underground at a pit",
                         people_affected=9, referred_to=PARTNER.id)
                 .confirm(7.0, "Confirmed with the partner's case workers on a second visit.")
                 .assign(8.0, "A1", site, "Access control at the pit entrances and a register of diggers with ages "
                         "checked against an ID: nobody under 18 in the pits or carrying loads.")
                 .assign(8.1, "A2", PARTNER.id, "Withdraw the nine children from the site: family mediation and "
                         "enrolment in a transitional (catch-up) school.", months_later=1)
                 .assign(8.2, "A3", coop, "Awareness sessions with parents; savings groups (VSLA) for the "
                         "children's families.", final=True)
                 .progress(12.0, "A1", site, "Gates at K-12 and K-17; register started.", 60, "gate-k17.jpg")
                 .progress(18.0, "A1", site, "Register complete: 412 diggers, IDs checked.", 100, "register.pdf")
                 .verify(20.0, "A1", "implemented", "Gates staffed on two unannounced visits; no minors in the pits.",
                         "visit-k17.jpg")
                 .progress(25.0, "A2", PARTNER.id, "Six children enrolled at the Kalando catch-up school.", 40,
                           "enrolment-list.pdf")
                 .progress(40.0, "A3", coop, "Three awareness sessions held, 140 parents.", 30)
                 .progress(45.0, "A2", PARTNER.id, "Eight of nine children attending; one family moved away.", 90)
                 .verify(50.0, "A2", "implemented", "Attendance checked with the school: eight of nine children.")
                 .progress(55.0, "A3", coop, "Two savings groups started (38 members).", 50, "vsla-minutes.pdf"))
        (self.incident("kambove-sud", "health_safety")
         .report(10.5, 10.2, "high",
                 "A gallery of Puits 4 collapsed at about 14:00; three diggers were trapped for two hours, one with "
                 "a broken leg (taken to Kambove general hospital). No supports in the gallery.",
                 summary="Gallery collapse at Puits 4, three diggers injured", people_affected=3)
         .confirm(11.5, "Seen on site; the pit is closed by the site committee.")
         .assign(12.0, "A1", "kambove-sud", "Keep Puits 4 closed until shored; timber supports and a second exit "
                 "for the Colline Est galleries.")
         .assign(12.1, "A2", coop, "Helmets, boots and headlamps for every digger at Kambove-Sud; a first-aid kit "
                 "and a trained first-aider per shift.")
         .progress(16.0, "A1", "kambove-sud", "Supports installed in Puits 4.", 50, "supports-p4.jpg")
         .progress(20.0, "A2", coop, "First delivery: 40 helmets and 40 pairs of boots.", 30)
         .progress(22.0, "A1", "kambove-sud", "Second exit dug and shored.", 100, "second-exit.jpg")
         .verify(24.0, "A1", "implemented", "Supports and second exit inspected with SAEMAPE.")
         .verify(30.0, "A2", "not_implemented", "Only 40 of about 160 diggers equipped; no first-aider yet.")
         .progress(36.0, "A2", coop, "All diggers equipped; two first-aiders trained by the Red Cross.", 100,
                   "ppe-delivery.pdf", "first-aid-certificates.pdf")
         .verify(40.0, "A2", "implemented", "Equipment seen in use on every shift; first-aid kit stocked.")
         .close(41.0, "Remediated: the gallery is shored and every digger is equipped."))
        (self.incident("nyabibwe-site", "armed_groups")
                 .report(15.0, 14.0, "critical",
                         "Four armed men in civilian clothes stop porters on the path between the site and the "
                         "Nyabibwe road on market days and take 1,000 CDF per sack; miners say they belong to a "
                         "local armed group.",
                         notes="Two witnesses; their names are withheld for their safety.",
                         summary="Armed men taking payments from porters on the access path")
                 .confirm(17.0, "Confirmed by three independent sources on two market days.")
                 .assign(18.0, "A1", TRADER_BUKAVU.id, "Enhanced checks on every Nyabibwe bag: route and payments "
                         "recorded at purchase; report any payment to armed men.")
                 .assign(18.1, "A2", SAEMAPE.id, "With the provincial mining division and the mining police, end "
                         "the armed presence on the access path.")
                 .progress(19.0, "A1", TRADER_BUKAVU.id, "Purchase form with route and payments in use.", 100,
                           "purchase-form.pdf")
                 .verify(21.0, "A1", "implemented", "Forms checked for every purchase since the assignment.")
                 .progress(26.0, "A2", SAEMAPE.id, "Joint mission planned; not yet deployed.", 20)
                 .verify(35.0, "A2", "not_implemented", "The armed men were still on the path on the last two "
                         "market days."))
        (self.incident("gatumba-site", "chain_of_custody")
         .report(21.0, 19.5, "medium",
                 "Eleven unused Gatumba tags found at the Gakenke market; three bags were tagged at a depot in "
                 "Gakenke instead of at the pit.",
                 summary="Tags found outside the tagging point; bags tagged away from the pit")
         .confirm(23.0, "The tag numbers match the site's stock; re-graded after the depot visit.", severity="high")
         .assign(24.0, "A1", COOP_RW.id, "A tag stock register at the site, reconciled daily; tags kept under lock "
                 "by the tagging agent.")
         .assign(24.1, "A2", RMB.id, "Inspect the Gatumba tagging point and the Gakenke depots.")
         .progress(28.0, "A1", COOP_RW.id, "Register and locked box in use.", 100, "tag-register.pdf")
         .progress(30.0, "A2", RMB.id, "Inspection done; the eleven tags were voided by the operator.", 100,
                   "rmb-inspection-report.pdf")
         .verify(32.0, "A1", "implemented", "Stock reconciled on site: no tag missing.")
         .verify(33.0, "A2", "implemented", "RMB report received.")
         .close(34.0, "Tag custody at the site audited and reconciled daily."))
        (self.incident("kalando-zea", "governance")
         .report(28.0, 27.0, "medium",
                 "Men at a barrier on the Kalando-Kolwezi road take 2,000 CDF per sack as an 'exit tax', without a "
                 "receipt; the official fees are paid at the site.",
                 summary="Unofficial 'exit tax' per sack at a road barrier")
         .confirm(30.0, "Seen by the monitor on the road; no legal basis for the fee.")
         .assign(31.0, "A1", SAEMAPE.id, "Investigate the barrier; post the official fee schedule at the site; a "
                 "receipt for every legal fee.")
         .assign(31.1, "A2", coop, "Record every fee paid on the road in the cooperative's register; report it "
                 "to the monitor each month.")
         .progress(35.0, "A2", coop, "Fee register in use since the assignment.", 100, "fee-register.pdf")
         .progress(38.0, "A1", SAEMAPE.id, "Fee schedule posted at the site; the barrier's agents not yet "
                   "identified.", 50, "fee-schedule.jpg")
         .verify(42.0, "A2", "implemented", "Register checked: 23 payments recorded."))
        (self.incident("nyakabingo-site", "child_labour")
         .report(33.0, 32.0, "medium",
                 "Anonymous call: children seen at the washing ponds below Adit 5.",
                 summary="Reported: children at the washing ponds", worst_forms=False)
         .dismiss(36.0, "Checked on site with the RMB inspector and the village leader: the young people seen "
                  "were 18 to 20, IDs checked; no minors on site."))
        (self.incident("gatumba-site", "environment")
         .report(57.5, 56.0, "low",
                 "Washing water from Trench 3 runs straight into a stream used downstream for drinking; the "
                 "settling pond is full.",
                 summary="Washing water discharged into a stream; settling pond full"))

    def monthly_visits(self) -> None:
        """One `site_monitored` per site per calendar month of the period (and the part months at its ends)."""
        lo, hi = 2.0 * DAY, HOURS - 2.0
        first, last = self.at(lo), self.at(hi)
        month = datetime(first.year, first.month, 1, tzinfo=timezone.utc)
        while month <= last:
            following = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=timezone.utc)
            a, b = max(lo, self.h_of(month)), min(hi, self.h_of(following))
            if b - a >= 1.0:
                for site in SITES:
                    self.visit(site, self.rng.uniform(a + 0.25 * (b - a), b - 0.25 * (b - a)))
            month = following

    def visit(self, site: _Site, h: float) -> None:
        rng, day, sid = self.rng, h / DAY, site.org.id
        profile = SITE_PROFILES[sid]
        mineral = max(site.minerals, key=lambda m: m.weight)
        reference = REFERENCE_PRICES[mineral.mineral]
        ref = int(reference.minor_per_kg * rng.uniform(0.97, 1.03))
        ratio = rng.uniform(*profile.price_ratio)
        concerns = set(rng.sample(profile.concerns, rng.randint(1, 2)))
        minors = 0
        if sid == "nyabibwe-site" and day >= 14.0:
            ratio = rng.uniform(0.48, 0.55)
            concerns |= {"illegal_taxation", "harassment"}
        if sid == "kambove-sud" and 10.0 <= day < 41.0:
            concerns |= {"safety", "equipment"}
        if sid == "kalando-zea":
            minors = 9 if day < 20.0 else (2 if day < 50.0 else 0)
            if day >= 27.0:
                concerns.add("illegal_taxation")
        women, men = rng.randint(*profile.women), rng.randint(*profile.men)
        interviewed = rng.randint(15, 30)
        self.planner.add(h, "monitor", MONITOR.id, site=sid, period=_month(self.at(h)), observed={
            "price_paid": {"currency": "USD", "minor_per_kg": int(ref * ratio)},
            "reference_price": {"currency": "USD", "minor_per_kg": ref},
            "reference_source": reference.source,
            "workforce": {"women": women, "men": men},
            "minors_observed": minors,
            "concerns": sorted(concerns),
            "note": f"{interviewed} miners interviewed ({rng.randint(4, interviewed // 2)} women), {mineral.ore}.",
        })
        self.visits += 1

    def tag_scans(self) -> None:
        """Authorities scan tags: at a site depot, a trader's depot, customs at the border; and one tag that
        should be gone (its bag was merged into a lot) turns up at a border post far away."""
        self.suspicious_scan()
        if not self.realistic:
            # squeezed into minutes after a recent genesis, the trips take seconds: a plausible scan would be
            # "too fast" from the bag's last position (tag.reuse), so only the suspicious one is recorded
            return
        holdings = _holdings(self.planner.actions)
        for tag in (self.planner.examples.get("fraud_bag"), self.suspicious.get("tag")):
            holdings.pop(tag or "", None)  # the plausible scans are of other tags
        kalando = next(s for s in SITES if s.org.id == "kalando-zea").org.extra["gps"]
        self.scan(holdings, SAEMAPE.id, "kalando-zea", (10.0, 50.0), 2, kalando, "Kalando ZEA, site depot",
                  "inspection")
        self.scan(holdings, RMB.id, TRADER_RW.id, (26.0, 34.0), 2, GAKENKE_DEPOT, "Gakenke Mineral Traders' depot",
                  "inspection")
        self.scan(holdings, CUSTOMS.id, EXPORTER.id, (0.0, 60.0), 3, KASUMBALESA_BORDER,
                  "Kasumbalesa border post, export inspection", "customs")

    def scan(self, holdings: dict[str, list[tuple[str, float, float]]], org: str, holder: str,
             days: tuple[float, float], count: int, gps: dict[str, str], location: str, purpose: str) -> None:
        lo, hi = days[0] * DAY, min(days[1] * DAY, HOURS - 1.0)
        candidates = []
        for tag in sorted(holdings):
            for who, since, until in holdings[tag]:
                a, b = max(since + 1.0, lo), min(until - 1.0, hi)
                if who == holder and b > a:
                    candidates.append((tag, a, b))
                    break
        lat0, lon0 = float(gps["lat"]), float(gps["lon"])
        for tag, a, b in self.rng.sample(candidates, min(count, len(candidates))):
            here = {"lat": f"{lat0 + self.rng.uniform(-0.002, 0.002):.6f}",
                    "lon": f"{lon0 + self.rng.uniform(-0.002, 0.002):.6f}"}
            self.planner.add(self.rng.uniform(a, b), "scan", org, tag=tag, gps=here, location=location,
                             purpose=purpose)
            self.scans.setdefault(purpose, []).append(tag)

    def suspicious_scan(self) -> None:
        """A bag's tag, after the bag was merged into a lot at the comptoir, is scanned by customs at the Goma
        border, some 1,200 km from the comptoir: the tag was taken off and is travelling on other material.

        The bag is from the lot of the refused fraud attempt when possible (that lot carries a flag already),
        never from the example lot whose bags should stay clean; a Katanga bag, so that Goma is far from
        everywhere the bag has been."""
        p = self.planner
        shown = {p.examples.get("consumed_bag"), *p._example_lot_inputs, p.examples.get("fraud_bag")}
        fraud_lot = next((b.lot for b in p.bags if b.tag == p.examples.get("fraud_bag")), None)
        merged = [b for b in p.bags if b.merged_at is not None and b.merged_at < HOURS - 6.0 and b.tag not in shown]
        katanga = {"kalando-zea", "kambove-sud"}
        merged.sort(key=lambda b: (b.lot != fraud_lot, b.site not in katanga, b.tag))
        if not merged:
            return
        bag = merged[0]
        h = min(bag.merged_at + self.rng.uniform(48.0, 120.0), HOURS - 1.0)
        self.planner.add(h, "scan", CUSTOMS.id, tag=bag.tag, gps=dict(GOMA_BORDER),
                         location="Grande Barrière border post, Goma (to Gisenyi)", purpose="customs")
        self.suspicious = {"tag": bag.tag, "lot": bag.lot, "site": bag.site, "h": h}
        self.examples["reused_tag"] = bag.tag

    def summary(self) -> dict[str, Any]:
        end = self.end
        statuses = Counter(i.status for i in self.incidents)
        actions = [(i, a, c) for i in self.incidents for a, c in i.cycles.items()]
        implemented = sum(a in i.implemented for i, a, _ in actions)
        overdue = [f"{i.id}/{a}" for i, a, c in actions if a not in i.implemented and cycle_due(c) <= end]
        open_due = sorted(cycle_due(c) for i, a, c in actions if a not in i.implemented and i.status != "dismissed")
        return {
            "first_due": format_time(open_due[0]) if open_due else None,
            "incidents": len(self.incidents),
            "by_status": dict(sorted(statuses.items())),
            "actions": len(actions),
            "implemented": implemented,
            "overdue": overdue,
            "site_visits": self.visits,
            "scans": sum(len(v) for v in self.scans.values()) + bool(self.suspicious),
        }


# --- running it --------------------------------------------------------------------------------------


def _key_valid_from(transport: Transport, signer: Signer) -> tuple[datetime | None, int]:
    """When the operator's key became valid (its events cannot be older), and the ledger's mass tolerance."""
    tolerance = 20_000
    if isinstance(transport, LocalTransport):
        registry = transport.ledger.registry()
        if registry.ledger is not None:
            tolerance = registry.ledger.mass_tolerance_ppm
        key = registry.key_of(signer.org, signer.keys.kid)
        return (key.added_at if key else None), tolerance
    if isinstance(transport, HttpTransport):
        valid_from = None
        response = transport.http.get(f"/v1/orgs/{signer.org}")
        if response.status_code == 200:
            for key in response.json().get("keys", []):
                if isinstance(key, dict) and key.get("kid") == signer.keys.kid and key.get("valid_from"):
                    valid_from = parse_time(key["valid_from"])
        response = transport.http.get("/v1/ledger")
        if response.status_code == 200:
            params = response.json().get("ledger") or {}
            tolerance = params.get("mass_tolerance_ppm", tolerance)
        return valid_from, tolerance
    return None, tolerance


def _utc(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        return parse_time(moment)
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def load_demo(
    transport: Transport,
    operator_signer: Signer,
    *,
    seed: int = 7,
    tags_per_site: int = 60,
    now: datetime | str | None = None,
) -> DemoReport:
    """Load the demo into a ledger whose genesis is recorded (`operator_signer` holds the operator's key).

    Raises `DemoAlreadyLoaded` if the demo organisations exist, `ValueError` for impossible arguments, and
    `RuntimeError` (from a `LedgerError`) if the ledger refuses an event it should accept.
    """
    started = _time.perf_counter()
    if not MIN_TAGS_PER_SITE <= tags_per_site <= MAX_TAGS_PER_SITE:
        raise ValueError(f"tags_per_site must be between {MIN_TAGS_PER_SITE} and {MAX_TAGS_PER_SITE}")
    if transport.head("ledger") is None:
        raise ValueError("the ledger has no genesis event: create it first")
    if transport.head(f"org:{ORGS[0].id}") is not None:
        raise DemoAlreadyLoaded(f"organisation {ORGS[0].id} already exists: the demo is already loaded")

    valid_from, tolerance = _key_valid_from(transport, operator_signer)
    end = _utc(now) if now is not None else datetime.now(timezone.utc) - timedelta(hours=1)
    start = end - timedelta(days=DEMO_DAYS)
    compressed = False
    if valid_from is not None and valid_from > start:
        compressed = True
        start = valid_from
        if start >= end:
            if now is not None:
                raise ValueError(f"now ({format_time(end)}) is before the operator's key is valid "
                                 f"({format_time(valid_from)})")
            end = max(datetime.now(timezone.utc), start)
    scale = (end - start) / timedelta(hours=HOURS)
    seconds = scale >= 0.5  # round to whole seconds unless the calendar is squeezed

    def at(h: float) -> datetime:
        moment = start + (end - start) * (h / HOURS)
        return moment.replace(microsecond=0) if seconds else moment

    # The story is planned in full before anything is sent. A small `tags_per_site` can leave a story without
    # one of its scenes (e.g. no lot reaches the refiner): then plan again with a seed derived from `seed`.
    for attempt in range(PLAN_ATTEMPTS):
        planner = _Planner(random.Random(seed if attempt == 0 else f"{seed}/{attempt}"), operator_signer.org,
                           tags_per_site, tolerance)
        planner.plan()
        examples, notes = _examples(planner)
        missing = REQUIRED_EXAMPLES - set(examples)
        if not missing:
            break
    else:
        raise ValueError(f"tags_per_site={tags_per_site} is too small for the demo's story "
                         f"(no {', '.join(sorted(missing))}): use more tags per site")
    # The monitoring cycle (incidents, corrective actions, monthly visits, scans) is planned on the real
    # calendar, its months being calendar months; with its own random stream.
    risk = _RiskPlanner(planner, random.Random(f"{seed}/risk"), start, end, at, seed, realistic=seconds)
    risk.plan()
    if "reused_tag" in risk.examples:
        examples["reused_tag"] = risk.examples["reused_tag"]
        notes["reused_tag"] = (f"a bag merged into lot {risk.suspicious['lot']}, whose tag customs then scanned "
                               "at the Goma border, far from the comptoir: the tag is being reused (flagged)")

    # Keys: one per organisation, a second one for the organisation that loses its phone.
    keys = {org.id: KeyPair.generate() for org in ALL_ORGS}
    new_key = KeyPair.generate()
    lost_key = keys[ROTATED_ORG]
    operator = LedgerClient(transport, operator_signer)
    clients = {org_id: LedgerClient(transport, Signer(org_id, pair)) for org_id, pair in keys.items()}
    rotated_client = LedgerClient(transport, Signer(ROTATED_ORG, new_key))
    rotation_from = at(planner.key_added)
    lost_at = format_time(at(planner.lost))
    reason = ROTATION_REASON

    def client(org_id: str, when: datetime) -> LedgerClient:
        if org_id == operator_signer.org:
            return operator
        if org_id == ROTATED_ORG and when >= rotation_from:
            return rotated_client
        return clients[org_id]

    counts: Counter[str] = Counter()
    rejected: RejectedAttempt | None = None
    for action in planner.actions:
        when = at(action.h)
        a = action.args
        try:
            if action.kind == "fraud":
                rejected = _attempt_fraud(transport, client(action.actor, when), action, when)
                continue
            receipt_type, _ = _perform(action, when, operator, client(action.actor, when), keys, new_key,
                                       lost_at, reason)
            if action.kind == "report":  # the reporter uploads the sealed details it committed to
                transport.put_details(a["incident"], a["details"])
        except LedgerError as error:
            raise RuntimeError(f"the ledger refused demo event {action.kind} {a.get('tag') or a.get('lot') or ''} "
                               f"by {action.actor} at {format_time(when)}: {error}") from error
        counts[receipt_type] += 1
    assert rejected is not None
    from ledger.client.labels import upload_labels  # the operator signs every issued tag's QR label, locally
    upload_labels(transport, operator_signer.keys, [f"{a.args['prefix']}{i:06d}" for a in planner.actions
                                                    if a.kind == "issue" for i in range(1, a.args["count"] + 1)])

    orgs_by_role: dict[str, list[str]] = {"operator": [operator_signer.org]}
    for org in ALL_ORGS:
        orgs_by_role.setdefault(org.role, []).append(org.id)
    final_keys = {**keys, ROTATED_ORG: new_key}
    return DemoReport(
        counts=dict(sorted(counts.items())),
        orgs=orgs_by_role,
        examples=examples,
        notes=notes,
        rejected=rejected,
        key_rotation=KeyRotation(ROTATED_ORG, lost_key.kid, new_key.kid, lost_at, reason),
        keys=final_keys,
        revoked_keys={ROTATED_ORG: lost_key},
        start=format_time(start),
        end=format_time(end),
        compressed=compressed,
        elapsed_s=_time.perf_counter() - started,
        risk=risk.summary(),
        risk_examples={k: v for k, v in risk.examples.items() if k != "reused_tag"},
        details={i.id: i.details for i in risk.incidents},
    )


def _perform(action: _Action, when: datetime, operator: LedgerClient, client: LedgerClient,
             keys: dict[str, KeyPair], new_key: KeyPair, lost_at: str, reason: str) -> tuple[str, dict[str, Any]]:
    a = action.args
    kind = action.kind
    if kind == "register":
        org: _Org = a["org"]
        return "org_registered", operator.register_org(org.id, org.name, org.role, org.country,
                                                       [keys[org.id].public_key], time=when, **org.extra)
    if kind == "issue":
        return "tags_issued", operator.issue_tags(a["org"], prefix=a["prefix"], start=1, count=a["count"], width=6,
                                                  time=when)
    if kind == "key_added":
        return "key_added", operator.add_key(a["org"], new_key.public_key, time=when)
    if kind == "key_revoked":
        return "key_revoked", operator.revoke_key(a["org"], keys[a["org"]].kid, reason, effective=lost_at,
                                                  time=when)
    if kind == "attach":
        return "tag_attached", client.attach(a["tag"], mineral=a["mineral"], ore=a["ore"], mass_g=a["mass_g"],
                                             pit=a["pit"], gps=a["gps"], price_paid=a["price_paid"], time=when)
    if kind == "dispatch":
        return "custody_dispatched", client.dispatch(a["tag"], a["to"], mass_g=a["mass_g"], location=a["location"],
                                                     time=when)
    if kind == "receive":
        return "custody_received", client.receive(a["tag"], mass_g=a["mass_g"], location=a["location"], time=when)
    if kind == "merge":
        return "lot_formed", client.merge(a["lot"], a["inputs"], mass_g=a["mass_g"], time=when)
    if kind == "split":
        return "lot_split", client.split(a["lot"], a["outputs"], time=when)
    if kind == "consume":
        return "tag_consumed", client.consume(a["tag"], mass_g=a["mass_g"], product=a["product"], time=when)
    if kind == "void":
        return "tag_voided", client.void(a["tag"], a["reason"], note=a["note"], time=when)
    if kind == "scan":
        return "tag_scanned", client.scan(a["tag"], gps=a["gps"], location=a["location"], purpose=a["purpose"],
                                          time=when)
    # risk and remediation (protocol section 16)
    if kind == "report":
        return "incident_reported", client.report_incident(
            a["incident"], site=a["site"], category=a["category"], severity=a["severity"],
            occurred_at=a["occurred_at"], details_sha256=commitment(a["details"]), time=when, **a["optional"])
    if kind == "confirm":
        return "incident_confirmed", client.confirm_incident(a["incident"], time=when, **a["optional"])
    if kind == "dismiss":
        return "incident_dismissed", client.dismiss_incident(a["incident"], a["reason"], time=when)
    if kind == "close":
        return "incident_closed", client.close_incident(a["incident"], a["resolution"], time=when)
    if kind == "assign":
        return "action_assigned", client.assign_action(a["incident"], a["action"], owner=a["owner"],
                                                       description=a["description"], cycle=a["cycle"], time=when)
    if kind == "progress":
        return "action_progress", client.report_progress(a["incident"], a["action"], a["note"],
                                                         percent=a["percent"], evidence=a["evidence"], time=when)
    if kind == "verify":
        return "action_verified", client.verify_action(a["incident"], a["action"], a["outcome"], note=a["note"],
                                                       evidence=a["evidence"], time=when)
    if kind == "monitor":
        return "site_monitored", client.monitor_site(a["site"], a["period"], time=when, **a["observed"])
    raise AssertionError(f"unknown demo action {kind}")


def _attempt_fraud(transport: Transport, client: LedgerClient, action: _Action, when: datetime) -> RejectedAttempt:
    a = action.args
    stream = f"tag:{a['tag']}"
    before = transport.head(stream)
    try:
        client.dispatch(a["tag"], a["to"], mass_g=a["mass_g"], location=a["location"], time=when)
    except LedgerError as error:
        return RejectedAttempt(
            description=(f"{action.actor} tried to sell bag {a['tag']} again (dispatch to {a['to']}) after the "
                         "comptoir had merged it into a lot (tag recycling)."),
            actor=action.actor,
            tag=a["tag"],
            rule=error.rule,
            detail=str(error.problem.get("detail", "")),
            status=error.status,
            unchanged=transport.head(stream) == before,
        )
    raise RuntimeError(f"the ledger ACCEPTED the demo's fraud attempt on {a['tag']}: this is a bug")


def _examples(planner: _Planner) -> tuple[dict[str, str], dict[str, str]]:
    """Example tags and what to see in them, from the final state of the plan (a fold of the planned actions)."""
    status: dict[str, str] = {}
    holder: dict[str, str] = {}
    towards: dict[str, str] = {}
    for action in planner.actions:
        a = action.args
        if action.kind in {"attach", "receive"}:
            status[a["tag"]], holder[a["tag"]] = "in_custody", action.actor
        elif action.kind == "dispatch":
            status[a["tag"]], towards[a["tag"]] = "in_transit", a["to"]
        elif action.kind == "merge":
            for tag in a["inputs"]:
                status[tag] = "merged"
            status[a["lot"]], holder[a["lot"]] = "in_custody", action.actor
        elif action.kind == "void":
            status[a["tag"]] = "voided"
    examples = dict(planner.examples)
    roles = {o.id: o.role for o in ORGS}
    for wanted in ("trader", "cooperative", "site", "processor"):
        held = [b.tag for b in planner.bags
                if status.get(b.tag) == "in_custody" and roles.get(holder.get(b.tag, "")) == wanted]
        if held:
            examples["in_custody"] = held[0]
            break
    ex = examples.get
    site_of = {b.tag: b.site for b in planner.bags}
    notes = {
        "consumed_bag": f"a bag from {NAME.get(site_of.get(ex('consumed_bag', ''), ''))}, merged into lot "
                        f"{ex('consumed_lot')} and consumed at {REFINER.name}",
        "consumed_lot": "a lot consumed at the refiner; its origins span several mine sites",
        "split_lot": "a lot the exporter split into two containers",
        "split_output": f"one of those containers (from lot {ex('split_lot')})",
        "voided": "a stolen bag: voided, material bearing this tag must not be accepted",
        "in_custody": f"a bag still in the custody of {NAME.get(holder.get(ex('in_custody', ''), ''))}",
        "in_transit": f"a bag on the road from {NAME.get(holder.get(ex('in_transit', ''), ''))} to "
                      f"{NAME.get(towards.get(ex('in_transit', ''), ''))}",
        "unused": "a tag issued to a site, not yet on a bag",
        "fraud_bag": "the bag of the refused fraud attempt",
    }
    order = ["consumed_bag", "consumed_lot", "split_lot", "split_output", "voided", "in_custody", "in_transit",
             "unused", "fraud_bag"]
    return {k: examples[k] for k in order if k in examples}, {k: notes[k] for k in order if k in examples}
