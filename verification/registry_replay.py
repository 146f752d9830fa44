"""The key registry as it stands at each point of the log -- docs/protocol.md sections 3, 6 and 7.

The registry is folded from the registry events in log order: ``ledger_created`` (the ledger's
parameters, the operator organisation and its first key, the root key), ``org_registered`` (an
organisation, its role and first keys), ``key_added``, ``key_revoked``; every registry event also moves the
head of its ``org:`` stream (``tags_issued`` too).

Key validity (section 7), for an event dated ``time`` signed by key ``kid`` of organisation ``actor``:

- ``key.unknown`` -- ``kid`` is not a key of ``actor`` in the registry *as of this point in the log*
  (a key registered later, or another organisation's key, does not count);
- ``key.not_yet_valid`` -- ``time`` is before the ``time`` of the event that added the key;
- ``key.revoked`` -- the key was revoked by an *earlier* entry: a revoked key signs nothing received after
  the revocation, whatever ``time`` the event claims (since protocol 1.7; a backdated ``time`` no longer
  slips under the revocation's ``effective`` time, which matters only to entries received before the
  revocation: the fraud flag ``custody.revoked_key`` of section 9.1).

The operator organisation's stream ``org:<operator>`` starts at the genesis: its head is the genesis
entry (so the first event of that stream names the genesis hash as ``prev``), as the ledger does.

Times are normalised protocol times (``verification.entry_checks.normalize_time``): comparing the strings
compares the instants.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from verification.encoding import decode_public_key, key_id
from verification.entry_checks import CheckedEntry, normalize_time
from verification.event_data import CUSTODY_ROLES
from verification.replay_errors import RuleBroken
from verification.weak_keys import is_weak_public_key

__all__ = ["Head", "KeyRecord", "KeyRegistry", "LedgerParams", "OrgRecord", "refuse_weak_key"]


def refuse_weak_key(raw: bytes, field: str) -> None:
    """Raise ``key.weak`` unless ``raw`` is a key of prime order (section 7; :mod:`verification.weak_keys`)."""
    if is_weak_public_key(raw):
        raise RuleBroken("key.weak", field, "not a usable Ed25519 public key: it must be the canonical encoding "
                         "of a point of prime order (a small-order key lets anyone sign for it)")


class Head(NamedTuple):
    """The last event of a stream: its envelope hash (raw), its seq and its (normalised) time."""

    hash: bytes
    seq: int
    time: str


class KeyRecord:
    __slots__ = ("kid", "org", "public_key", "added_time", "added_seq", "revoked_effective", "revoked_seq",
                 "revoked_reason")

    def __init__(self, kid: str, org: str, public_key: bytes, added_time: str, added_seq: int) -> None:
        self.kid = kid
        self.org = org
        self.public_key = public_key
        self.added_time = added_time
        self.added_seq = added_seq
        self.revoked_effective: str | None = None
        self.revoked_seq: int | None = None
        self.revoked_reason: str | None = None

    def problem_at(self, time: str) -> tuple[str, str] | None:
        """Why this key cannot sign an event dated ``time`` (normalised), as (rule, message), or None."""
        if time < self.added_time:
            return "key.not_yet_valid", f"key {self.kid} is valid only from {self.added_time}"
        if self.revoked_seq is not None:
            return "key.revoked", (f"key {self.kid} was revoked by entry #{self.revoked_seq} (with effect from "
                                   f"{self.revoked_effective}): it signs nothing received after that entry")
        return None


class OrgRecord:
    __slots__ = ("id", "name", "role", "country", "registered_seq", "head", "kids")

    def __init__(self, org_id: str, name: str, role: str, country: str, registered_seq: int, head: Head) -> None:
        self.id = org_id
        self.name = name
        self.role = role
        self.country = country
        self.registered_seq = registered_seq
        self.head = head
        self.kids: list[str] = []


class LedgerParams(NamedTuple):
    name: str
    operator: str
    root_key: bytes
    log_key_name: str
    log_key: bytes
    mass_tolerance_ppm: int


class KeyRegistry:
    """Organisations, keys, the ledger's parameters and the heads of the ``ledger`` and ``org:`` streams."""

    def __init__(self) -> None:
        self.ledger: LedgerParams | None = None
        self.ledger_head: Head | None = None
        self.orgs: dict[str, OrgRecord] = {}
        self.keys: dict[str, KeyRecord] = {}

    # -- questions --------------------------------------------------------------------------------------

    def public_key(self, kid: str) -> bytes | None:
        """The raw public key registered under ``kid`` (to anyone), or None."""
        record = self.keys.get(kid)
        return None if record is None else record.public_key

    def role_of(self, org_id: str) -> str | None:
        org = self.orgs.get(org_id)
        return None if org is None else org.role

    def head(self, stream: str) -> Head | None:
        """The head of ``ledger`` or of ``org:<id>`` (None if the stream does not exist)."""
        if stream == "ledger":
            return self.ledger_head
        org = self.orgs.get(stream[4:]) if stream.startswith("org:") else None
        return None if org is None else org.head

    def signing_key(self, actor: str, kid: str) -> KeyRecord:
        """The actor's key ``kid`` as of now; raises ``actor.unknown`` or ``key.unknown``."""
        if actor not in self.orgs:
            raise RuleBroken("actor.unknown", "/body/actor", f"no organisation {actor!r} is registered")
        record = self.keys.get(kid)
        if record is None or record.org != actor:
            raise RuleBroken("key.unknown", "/body/key", f"{kid} is not a key of {actor}")
        return record

    # -- the rules of the registry events themselves (section 7, "Registry") -----------------------------

    def check_event(self, entry: CheckedEntry) -> None:
        """Raise :class:`RuleBroken` if ``entry`` (a registry event past the generic checks) breaks a rule."""
        data = entry.data
        if entry.type == "org_registered":
            if data["role"] == "operator":
                raise RuleBroken("actor.role", "/body/data/role", "there is one operator, named at genesis")
            if data.get("operated_by") is not None and data["operated_by"] not in self.orgs:
                raise RuleBroken("stream.unknown", "/body/data/operated_by", "no such organisation")
            seen: set[str] = set()
            for i, text in enumerate(data["public_keys"]):
                raw = decode_public_key(text)
                refuse_weak_key(raw, f"/body/data/public_keys/{i}")
                kid = key_id(raw)
                if kid in self.keys or kid in seen:
                    raise RuleBroken("key.already_registered", f"/body/data/public_keys/{i}",
                                     f"key {kid} is already registered")
                seen.add(kid)
        elif entry.type == "key_added":
            raw = decode_public_key(data["public_key"])
            refuse_weak_key(raw, "/body/data/public_key")
            kid = key_id(raw)
            if kid in self.keys:
                raise RuleBroken("key.already_registered", "/body/data/public_key", f"key {kid} is already registered")
        elif entry.type == "key_revoked":
            org = entry.stream[4:]
            record = self.keys.get(data["key"])
            if record is None or record.org != org:
                raise RuleBroken("key.unknown", "/body/data/key", f"{data['key']} is not a key of {org}")
            if record.revoked_seq is not None:
                raise RuleBroken("key.already_revoked", "/body/data/key", f"{data['key']} is already revoked")
            effective = data.get("effective")
            if effective is not None and normalize_time(effective) > entry.time:
                raise RuleBroken("envelope.malformed", "/body/data/effective",
                                 "a revocation cannot take effect after the event's time")
        elif entry.type == "tags_issued":
            role = self.role_of(entry.stream[4:])
            if role not in CUSTODY_ROLES:
                raise RuleBroken("recipient.invalid", "/body/stream", f"a {role} cannot hold tags")

    # -- folding -----------------------------------------------------------------------------------------

    def apply(self, entry: CheckedEntry, seq: int) -> None:
        """Fold an accepted registry event into the registry (other events do not touch it)."""
        head = Head(entry.hash, seq, entry.time)
        data: dict[str, Any] = entry.data
        kind = entry.type
        if kind == "ledger_created":
            operator = data["operator"]
            self.ledger = LedgerParams(
                name=data["ledger"],
                operator=operator["org"],
                root_key=decode_public_key(data["root_key"]),
                log_key_name=data["log_key"]["name"],
                log_key=decode_public_key(data["log_key"]["public_key"]),
                mass_tolerance_ppm=data["mass_tolerance_ppm"],
            )
            self.ledger_head = head
            self.orgs[operator["org"]] = OrgRecord(operator["org"], operator["name"], "operator",
                                                   operator["country"], seq, head)
            self._add_key(operator["org"], data["root_key"], entry.time, seq)
        elif kind == "org_registered":
            org_id = entry.stream[4:]
            self.orgs[org_id] = OrgRecord(org_id, data["name"], data["role"], data["country"], seq, head)
            for text in data["public_keys"]:
                self._add_key(org_id, text, entry.time, seq)
        elif kind == "key_added":
            self._add_key(entry.stream[4:], data["public_key"], entry.time, seq)
            self.orgs[entry.stream[4:]].head = head
        elif kind == "key_revoked":
            record = self.keys[data["key"]]
            effective = data.get("effective")
            record.revoked_effective = entry.time if effective is None else normalize_time(effective)
            record.revoked_seq = seq
            record.revoked_reason = data["reason"]
            self.orgs[entry.stream[4:]].head = head
        elif kind == "tags_issued":
            self.orgs[entry.stream[4:]].head = head

    def _add_key(self, org_id: str, text: str, time: str, seq: int) -> None:
        raw = decode_public_key(text)
        kid = key_id(raw)
        self.keys[kid] = KeyRecord(kid, org_id, raw, time, seq)
        self.orgs[org_id].kids.append(kid)
