"""A small ledger world for tests: genesis, a few organisations with keys, clients for each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ledger.client import LedgerClient, LocalTransport, Signer
from ledger.genesis import GenesisKeys, create_ledger
from ledger.keys import KeyPair
from ledger.service import Ledger

ROLES = {
    "kalimbi": "site",
    "coop": "cooperative",
    "trader": "trader",
    "depot": "processor",
    "exporter": "exporter",
    "refiner": "refiner",
    "monitor": "monitor",
}


@dataclass
class World:
    ledger: Ledger
    root: KeyPair
    log_key: KeyPair = field(default_factory=KeyPair.generate)
    keys: dict[str, KeyPair] = field(default_factory=dict)
    clients: dict[str, LedgerClient] = field(default_factory=dict)
    clock: datetime = field(default_factory=lambda: datetime.now(timezone.utc) - timedelta(days=30))

    def tick(self, minutes: int = 10) -> datetime:
        self.clock += timedelta(minutes=minutes)
        return self.clock

    def signer(self, org: str) -> Signer:
        return Signer(org, self.keys[org])

    @property
    def operator(self) -> LedgerClient:
        return self.clients["itsci"]


def make_world(url: str, *, tags: int = 20, days_ago: int = 30) -> World:
    """A ledger at `url` with its genesis, the organisations of ROLES and tags issued, its clock `days_ago` days
    back (every event is dated by `world.tick()`)."""
    ledger = Ledger.open(url)
    root = KeyPair.generate()
    world = World(ledger, root, clock=datetime.now(timezone.utc) - timedelta(days=days_ago))
    create_ledger(ledger, name="test", operator="itsci", operator_name="ITSCI", country="CD",
                  log_key_name="test/log", keys=GenesisKeys(root, world.log_key), time=world.tick())
    transport = LocalTransport(ledger)
    world.keys["itsci"] = root
    world.clients["itsci"] = LedgerClient(transport, Signer("itsci", root))
    for org, role in ROLES.items():
        world.keys[org] = KeyPair.generate()
        world.operator.register_org(org, org.title(), role, "CD", [world.keys[org].public_key],
                                    rmi_cid="CID001234" if role == "refiner" else None, time=world.tick())
        world.clients[org] = LedgerClient(transport, Signer(org, world.keys[org]))
    world.operator.issue_tags("kalimbi", prefix="KAL-", start=1, count=tags, time=world.tick())
    world.operator.issue_tags("depot", prefix="LOT-", start=1, count=5, width=4, time=world.tick())
    return world


def attach_and_deliver(world: World, tag: str, to: str = "trader", grams: int = 50_000) -> None:
    """Attach `tag` at the site and hand it over to `to`."""
    world.clients["kalimbi"].attach(tag, mineral="tin", mass_g=grams, pit="P1", time=world.tick())
    world.clients["kalimbi"].dispatch(tag, to, time=world.tick())
    world.clients[to].receive(tag, mass_g=grams - 100, time=world.tick())


@contextmanager
def example_database(pg_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own for one hypothesis example (a fixture's lasts the whole test), dropped
    afterwards; yields its URL on the same server as `pg_url`."""
    import psycopg

    name = "tl_" + uuid.uuid4().hex[:12]
    server = pg_url.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
