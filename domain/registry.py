"""Organisations and their keys, as they stand at a point in the log.

The registry is folded from the registry events (`ledger_created`, `org_registered`, `key_added`,
`key_revoked`, `tags_issued`) in log order. Because a key's validity is part of the log, anyone replaying the
log can tell which key was valid when.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.roles import Role
from verification.encoding import b64url_decode, key_id, parse_time


@dataclass(frozen=True)
class StreamHead:
    """The last event of a stream: its envelope hash, log position and the actor's time."""

    hash: str
    seq: int
    time: datetime


@dataclass
class KeyRecord:
    kid: str
    org: str
    public_key: str
    added_at: datetime
    added_seq: int
    revoked_effective: datetime | None = None
    revoked_seq: int | None = None
    revoked_reason: str | None = None

    @property
    def public_key_raw(self) -> bytes:
        return b64url_decode(self.public_key)

    def problem_at(self, when: datetime) -> tuple[str, str] | None:
        """Why this key cannot sign, now, an event dated `when`, as (rule, detail), or None if it can.

        The registry holds the log as it stands, so a revocation here is an entry already in the log: from then
        on the key signs nothing the ledger receives, whatever time the event claims (protocol section 7). A
        revocation's `effective` time matters only to what was received before it (`custody.revoked_key`)."""
        if when < self.added_at:
            return "key.not_yet_valid", f"key {self.kid} is valid only from {self.added_at.isoformat()}"
        if self.revoked_seq is not None:
            effective = self.revoked_effective.isoformat() if self.revoked_effective else "its revocation"
            return (
                "key.revoked",
                f"key {self.kid} was revoked by entry #{self.revoked_seq} (with effect from {effective}): it signs "
                "nothing received after that entry, whatever time the event claims",
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "org": self.org,
            "public_key": self.public_key,
            "added_seq": self.added_seq,
            "revoked_seq": self.revoked_seq,
            "revoked_reason": self.revoked_reason,
            "valid_from": _iso(self.added_at),
            "revoked_from": _iso(self.revoked_effective) if self.revoked_effective else None,
        }


@dataclass
class OrgRecord:
    id: str
    name: str
    role: Role
    country: str
    registered_seq: int
    head: StreamHead
    kids: list[str] = field(default_factory=list)
    rmi_cid: str | None = None
    operated_by: str | None = None
    gps: dict[str, str] | None = None
    capacity_kg_per_month: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": str(self.role),
            "country": self.country,
            "registered_seq": self.registered_seq,
            "keys": list(self.kids),
            "rmi_cid": self.rmi_cid,
            "operated_by": self.operated_by,
            "gps": self.gps,
            "capacity_kg_per_month": self.capacity_kg_per_month,
        }


@dataclass(frozen=True)
class LedgerParams:
    name: str
    operator: str
    root_key: str
    log_key_name: str
    log_public_key: str
    mass_tolerance_ppm: int


@dataclass
class Registry:
    """Everything a rule needs to know about organisations, keys and the ledger's parameters."""

    ledger: LedgerParams | None = None
    ledger_head: StreamHead | None = None
    orgs: dict[str, OrgRecord] = field(default_factory=dict)
    keys: dict[str, KeyRecord] = field(default_factory=dict)

    def head_of(self, stream: str) -> StreamHead | None:
        if stream == "ledger":
            return self.ledger_head
        org = self.orgs.get(stream.removeprefix("org:"))
        return org.head if org else None

    def key_of(self, org_id: str, kid: str) -> KeyRecord | None:
        key = self.keys.get(kid)
        return key if key is not None and key.org == org_id else None

    def role_of(self, org_id: str) -> Role | None:
        org = self.orgs.get(org_id)
        return org.role if org else None

    # -- folding ------------------------------------------------------------------------------

    def apply(self, body: dict[str, Any], envelope_hash: str, seq: int) -> None:
        """Fold one accepted event into the registry (non-registry events only move org heads)."""
        event_type = body["type"]
        when = parse_time(body["time"])
        head = StreamHead(envelope_hash, seq, when)
        data = body["data"]
        if event_type == "ledger_created":
            self._create_ledger(data, head)
        elif event_type == "org_registered":
            org_id = body["stream"].removeprefix("org:")
            self.orgs[org_id] = OrgRecord(
                id=org_id,
                name=data["name"],
                role=Role(data["role"]),
                country=data["country"],
                registered_seq=seq,
                head=head,
                rmi_cid=data.get("rmi_cid"),
                operated_by=data.get("operated_by"),
                gps=data.get("gps"),
                capacity_kg_per_month=data.get("capacity_kg_per_month"),
            )
            for public_key in data["public_keys"]:
                self._add_key(org_id, public_key, when, seq)
        elif event_type == "key_added":
            org_id = body["stream"].removeprefix("org:")
            self._add_key(org_id, data["public_key"], when, seq)
            self.orgs[org_id].head = head
        elif event_type == "key_revoked":
            org_id = body["stream"].removeprefix("org:")
            key = self.keys[data["key"]]
            key.revoked_effective = parse_time(data["effective"]) if data.get("effective") else when
            key.revoked_seq = seq
            key.revoked_reason = data["reason"]
            self.orgs[org_id].head = head
        elif event_type == "tags_issued":
            self.orgs[body["stream"].removeprefix("org:")].head = head

    def _create_ledger(self, data: dict[str, Any], head: StreamHead) -> None:
        operator = data["operator"]
        self.ledger = LedgerParams(
            name=data["ledger"],
            operator=operator["org"],
            root_key=data["root_key"],
            log_key_name=data["log_key"]["name"],
            log_public_key=data["log_key"]["public_key"],
            mass_tolerance_ppm=data["mass_tolerance_ppm"],
        )
        self.ledger_head = head
        self.orgs[operator["org"]] = OrgRecord(
            id=operator["org"],
            name=operator["name"],
            role=Role.OPERATOR,
            country=operator["country"],
            registered_seq=head.seq,
            head=head,
        )
        self._add_key(operator["org"], data["root_key"], head.time, head.seq)

    def _add_key(self, org_id: str, public_key: str, when: datetime, seq: int) -> None:
        kid = key_id(b64url_decode(public_key))
        self.keys[kid] = KeyRecord(kid, org_id, public_key, when, seq)
        self.orgs[org_id].kids.append(kid)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
