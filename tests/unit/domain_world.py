"""Test helper (no tests here): a tiny in-memory ledger for the pure domain rules.

`World` holds a `Registry`, a tag map and a log, and admits plain event *bodies* exactly as
`ledger/writer.py` (`LedgerWriter._admit`) does: `domain.rules.check`, then `Registry.apply`, then
`domain.custody.apply`. Signatures are not part of `check`, so bodies carry no `sig`; envelope hashes are
fake (sha256 of the seq). There is no database, no HTTP and no wall clock: event times come from a
monotonically increasing test clock, and `World.now` is the ledger's clock handed to `check`.

Builders (`genesis`, `register`, `add_key`, `revoke_key`, `issue`, `attach`, `dispatch`, `receive`,
`merge`, `split`, `consume`, `void`) return a body with sensible defaults (the right actor, its first
key, the current stream heads, the next time); every field can be overridden. `record(body)` admits
and folds it and returns its hash; `reject(body)` returns the `RuleViolation` (and fails if accepted).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from domain import custody
from domain.custody import Status, TagState
from domain.errors import RuleViolation
from domain.registry import Registry, StreamHead
from domain.roles import Role
from domain.rules import Admitted, check
from ledger.keys import KeyPair
from verification.encoding import parse_time
from verification.envelope import issued_tags

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
"""The time of the genesis event; every later builder call is one TICK later."""
TICK = timedelta(minutes=1)
NOW = START + timedelta(days=365)
"""The default ledger clock handed to `check` (far after every auto time)."""

OPERATOR = "operator"
CAST: dict[str, Role] = {
    "site-a": Role.SITE,
    "site-b": Role.SITE,
    "coop": Role.COOPERATIVE,
    "trader": Role.TRADER,
    "processor": Role.PROCESSOR,
    "exporter": Role.EXPORTER,
    "refiner": Role.REFINER,
    "auditor": Role.AUDITOR,
    "monitor": Role.MONITOR,
}
"""The organisations `World.cast()` registers (besides the operator, named at genesis)."""

AUTO: Any = object()
"""Sentinel: "compute this field from the world" (prev, links, key...)."""


def ts(moment: datetime) -> str:
    """A protocol time: whole seconds as `...SSZ`, otherwise with 6 fractional digits."""
    utc = moment.astimezone(timezone.utc)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def fake_hash(seq: int) -> str:
    """A stand-in envelope hash for log entry `seq` (64 lowercase hex characters)."""
    return hashlib.sha256(f"tagledger-test-entry-{seq}".encode()).hexdigest()


def streams_of(body: Mapping[str, Any]) -> list[str]:
    """Every stream an event joins or creates (protocol section 3)."""
    streams = [body["stream"], *(body.get("links") or {})]
    if body["type"] == "tags_issued":
        streams += [f"tag:{t}" for t in issued_tags(body["data"])]
    return streams


def fold(
    log: Iterable[tuple[dict[str, Any], str, int]], only: set[str] | None = None
) -> tuple[Registry, dict[str, TagState]]:
    """Replay accepted (body, hash, seq) triples from scratch, as a verifier or projection would.

    With `only`, this is a partial view (as the ledger writer builds one): `log` may be just the events of
    those tag streams, only their states are folded, and the returned registry stays empty.
    """
    registry = Registry()
    tags: dict[str, TagState] = {}
    for body, envelope_hash, seq in log:
        if only is None:
            registry.apply(body, envelope_hash, seq)
        custody.apply(tags, body, envelope_hash, seq, only=only)
    return registry, tags


class World:
    """A registry, the tag states and the accepted log, folded exactly like the ledger writer."""

    def __init__(
        self,
        *,
        tolerance_ppm: int = 20_000,
        genesis: bool = True,
        operator: str = OPERATOR,
        now: datetime = NOW,
    ) -> None:
        self.registry = Registry()
        self.tags: dict[str, TagState] = {}
        self.log: list[tuple[dict[str, Any], str, int]] = []
        self.operator = operator
        self.tolerance_ppm = tolerance_ppm
        self.now = now
        self.clock = START - TICK
        self.root = KeyPair.generate()
        self.log_key = KeyPair.generate()
        self.keypairs: dict[str, KeyPair] = {self.root.kid: self.root}
        self._ids = 0
        if genesis:
            self.record(self.genesis())

    # -- clock, heads, keys -------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The seq the next accepted event gets."""
        return len(self.log)

    def next_time(self) -> str:
        self.clock += TICK
        return ts(self.clock)

    def at(self, **delta: float) -> str:
        """A time relative to the last handed-out time (`at(seconds=-1)`), without moving the clock."""
        return ts(self.clock + timedelta(**delta))

    def head(self, stream: str) -> StreamHead | None:
        if stream.startswith("tag:"):
            state = self.tags.get(stream.removeprefix("tag:"))
            return state.head if state else None
        return self.registry.head_of(stream)

    def head_hash(self, stream: str) -> str | None:
        head = self.head(stream)
        return head.hash if head else None

    def kids(self, org: str) -> list[str]:
        record = self.registry.orgs.get(org)
        return list(record.kids) if record else []

    def kid(self, org: str) -> str:
        """The org's first key (a made-up kid for an unknown org)."""
        kids = self.kids(org)
        return kids[0] if kids else "0" * 16

    def new_public_key(self) -> str:
        pair = KeyPair.generate()
        self.keypairs[pair.kid] = pair
        return pair.public_key

    def state(self, tag: str) -> TagState:
        return self.tags[tag]

    def role(self, org: str) -> Role | None:
        return self.registry.role_of(org)

    # -- admission ----------------------------------------------------------------------------

    def admit(self, body: dict[str, Any], *, now: datetime | None = None) -> Admitted:
        """Only `check` (no folding)."""
        return check(body, registry=self.registry, tags=self.tags, now=now or self.now)

    def record(self, body: dict[str, Any], *, now: datetime | None = None) -> str:
        """Admit `body` (raising its `RuleViolation` if refused), fold it, and return its hash."""
        self.admit(body, now=now)
        seq = self.seq
        envelope_hash = fake_hash(seq)
        self.registry.apply(body, envelope_hash, seq)
        custody.apply(self.tags, body, envelope_hash, seq)
        self.log.append((body, envelope_hash, seq))
        self.clock = max(self.clock, parse_time(body["time"]))
        return envelope_hash

    def reject(self, body: dict[str, Any], *, now: datetime | None = None) -> RuleViolation:
        """The `RuleViolation` `check` raises for `body`; AssertionError if it is accepted."""
        try:
            self.admit(body, now=now)
        except RuleViolation as violation:
            return violation
        raise AssertionError(f"expected a rule violation, but {body['type']} was accepted: {body}")

    # -- generic body builder -----------------------------------------------------------------

    def event(
        self,
        event_type: str,
        stream: str,
        data: Any,
        *,
        actor: str,
        prev: Any = AUTO,
        links: Any = None,
        key: Any = AUTO,
        time: Any = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        self._ids += 1
        body: dict[str, Any] = {
            "v": 1,
            "id": id or str(uuid.UUID(int=self._ids)),
            "type": event_type,
            "stream": stream,
            "prev": self.head_hash(stream) if prev is AUTO else prev,
            "actor": actor,
            "key": self.kid(actor) if key is AUTO else key,
            "time": time if time is not None else self.next_time(),
            "data": data,
        }
        if links is not None:
            body["links"] = links
        return body

    def _links(self, tags: Sequence[str]) -> dict[str, str | None]:
        return {f"tag:{t}": self.head_hash(f"tag:{t}") for t in tags}

    # -- registry events ----------------------------------------------------------------------

    def genesis(self, **overrides: Any) -> dict[str, Any]:
        data = {
            "ledger": "Test ledger",
            "operator": {"org": self.operator, "name": "The operator", "country": "CD"},
            "root_key": self.root.public_key,
            "log_key": {"name": "log-2026", "public_key": self.log_key.public_key},
            "mass_tolerance_ppm": self.tolerance_ppm,
        }
        data.update(overrides.pop("data", {}))
        overrides.setdefault("key", self.root.kid)
        overrides.setdefault("prev", None)
        stream = overrides.pop("stream", "ledger")
        actor = overrides.pop("actor", self.operator)
        return self.event("ledger_created", stream, data, actor=actor, **overrides)

    def register(
        self,
        org: str,
        role: str | Role = Role.SITE,
        *,
        public_keys: list[str] | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "name": f"Organisation {org}",
            "role": str(role),
            "country": "CD",
            "public_keys": public_keys if public_keys is not None else [self.new_public_key()],
        }
        payload.update(data or {})
        return self.event("org_registered", f"org:{org}", payload, actor=actor or self.operator, **fields)

    def add_key(
        self, org: str, public_key: str | None = None, *, actor: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        data = {"public_key": public_key or self.new_public_key()}
        return self.event("key_added", f"org:{org}", data, actor=actor or self.operator, **fields)

    def revoke_key(
        self,
        org: str,
        kid: str,
        *,
        reason: str = "compromised",
        effective: str | None = None,
        actor: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"key": kid, "reason": reason}
        if effective is not None:
            data["effective"] = effective
        return self.event("key_revoked", f"org:{org}", data, actor=actor or self.operator, **fields)

    def issue(
        self,
        org: str,
        tags: list[str] | None = None,
        *,
        ranges: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if tags is not None:
            data["tags"] = list(tags)
        if ranges is not None:
            data["ranges"] = ranges
        return self.event("tags_issued", f"org:{org}", data, actor=actor or self.operator, **fields)

    # -- tag lifecycle events -----------------------------------------------------------------

    def attach(
        self,
        tag: str,
        *,
        actor: str | None = None,
        site: str | None = None,
        mineral: str = "cobalt",
        mass_g: int = 1000,
        pit: str = "pit-1",
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        state = self.tags.get(tag)
        actor = actor or (state.issued_to if state else "site-a")
        payload: dict[str, Any] = {"site": site or actor, "mineral": mineral, "mass_g": mass_g, "pit": pit}
        payload.update(data or {})
        return self.event("tag_attached", f"tag:{tag}", payload, actor=actor, **fields)

    def _holder(self, tag: str) -> str:
        state = self.tags.get(tag)
        if state is None:
            return "site-a"
        return state.holder or state.issued_to

    def dispatch(
        self,
        tag: str,
        to: str,
        *,
        actor: str | None = None,
        mass_g: int | None = None,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"to": to}
        if mass_g is not None:
            payload["mass_g"] = mass_g
        payload.update(data or {})
        return self.event("custody_dispatched", f"tag:{tag}", payload, actor=actor or self._holder(tag), **fields)

    def receive(
        self,
        tag: str,
        *,
        actor: str | None = None,
        mass_g: int | None = None,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        state = self.tags.get(tag)
        if actor is None:
            actor = (state.pending_recipient if state else None) or self._holder(tag)
        if mass_g is None:
            mass_g = (state and (state.dispatched_mass_g or state.mass_g)) or 1000
        payload: dict[str, Any] = {"mass_g": mass_g}
        payload.update(data or {})
        return self.event("custody_received", f"tag:{tag}", payload, actor=actor, **fields)

    def merge(
        self,
        lot: str,
        inputs: Sequence[str],
        *,
        actor: str | None = None,
        mass_g: int | None = None,
        links: Any = AUTO,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        if mass_g is None:
            mass_g = sum((self.tags[t].mass_g or 0) if t in self.tags else 0 for t in inputs) or 1
        payload: dict[str, Any] = {"inputs": list(inputs), "mass_g": mass_g}
        payload.update(data or {})
        actor = actor or (self._holder(inputs[0]) if inputs else "site-a")
        links = self._links(inputs) if links is AUTO else links
        return self.event("lot_formed", f"tag:{lot}", payload, actor=actor, links=links, **fields)

    def split(
        self,
        lot: str,
        outputs: Sequence[tuple[str, int]] | Mapping[str, int],
        *,
        actor: str | None = None,
        links: Any = AUTO,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        pairs = list(outputs.items()) if isinstance(outputs, Mapping) else list(outputs)
        payload: dict[str, Any] = {"outputs": [{"tag": t, "mass_g": m} for t, m in pairs]}
        payload.update(data or {})
        links = self._links([t for t, _ in pairs]) if links is AUTO else links
        return self.event("lot_split", f"tag:{lot}", payload, actor=actor or self._holder(lot), links=links, **fields)

    def consume(
        self,
        tag: str,
        *,
        actor: str | None = None,
        mass_g: int | None = None,
        product: str | None = None,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if mass_g is not None:
            payload["mass_g"] = mass_g
        if product is not None:
            payload["product"] = product
        payload.update(data or {})
        return self.event("tag_consumed", f"tag:{tag}", payload, actor=actor or self._holder(tag), **fields)

    def void(
        self,
        tag: str,
        *,
        actor: str | None = None,
        reason: str = "lost",
        note: str | None = None,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"reason": reason}
        if note is not None:
            payload["note"] = note
        payload.update(data or {})
        return self.event("tag_voided", f"tag:{tag}", payload, actor=actor or self._holder(tag), **fields)

    # -- shortcuts that record ----------------------------------------------------------------

    def add_org(self, org: str, role: str | Role, *, keys: int = 1, **data: Any) -> list[str]:
        """Register `org` with `keys` fresh keys; return its kids."""
        public_keys = [self.new_public_key() for _ in range(keys)]
        self.record(self.register(org, role, public_keys=public_keys, data=data or None))
        return self.kids(org)

    def cast(self) -> World:
        """Register every organisation of `CAST`."""
        for org, role in CAST.items():
            self.add_org(org, role)
        return self

    def issue_tags(self, org: str, *tags: str) -> str:
        return self.record(self.issue(org, list(tags)))

    def bag(self, tag: str, org: str = "site-a", mass_g: int = 1000, **attach: Any) -> str:
        """Issue `tag` to `org` and attach it (status in_custody, held by `org`)."""
        self.issue_tags(org, tag)
        return self.record(self.attach(tag, mass_g=mass_g, **attach))

    def hand_over(self, tag: str, to: str, *, mass_g: int | None = None) -> str:
        """Dispatch `tag` from its holder to `to`, and receive it there."""
        self.record(self.dispatch(tag, to))
        return self.record(self.receive(tag, mass_g=mass_g))

    def bag_at(self, tag: str, holder: str, mass_g: int = 1000) -> str:
        """A bag attached at site-a and handed over to `holder` (unless that is site-a)."""
        last = self.bag(tag, "site-a", mass_g)
        if holder != "site-a":
            last = self.hand_over(tag, holder)
        return last


__all__ = [
    "AUTO",
    "CAST",
    "NOW",
    "OPERATOR",
    "START",
    "Status",
    "TICK",
    "World",
    "fake_hash",
    "fold",
    "streams_of",
    "ts",
]
