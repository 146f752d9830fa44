"""The admission rules (protocol section 7): may this signed event join the log now?

`check` is a pure function of the event body, the registry and tag states as they stand, and the ledger's
clock. It either returns the parsed payload or raises `RuleViolation` naming the rule and the field.
Signature verification is not here: it needs only the key (`Registry.key_of`) and is done by whoever
calls `check` (the ledger on the way in, the auditor on replay), before `check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.custody import Status, TagState, tag_of
from domain.errors import RuleViolation
from domain.payloads import (
    CustodyDispatched,
    CustodyReceived,
    LotFormed,
    LotSplit,
    OrgRegistered,
    Strict,
    TagAttached,
    TagConsumed,
    TagsIssued,
    parse_data,
)
from domain.registry import Registry, StreamHead
from domain.risk import RiskBook
from domain.risk_rules import check_risk_event
from domain.roles import ALLOWED_ROLES, CUSTODY_ROLES, RISK_EVENT_TYPES, STREAM_KIND, Role
from verification.encoding import b64url_decode, key_id, parse_time
from verification.envelope import EnvelopeError, issued_tags
from verification.weak_keys import is_weak_public_key

MAX_CLOCK_SKEW = timedelta(seconds=300)
PPM = 1_000_000


@dataclass(frozen=True)
class Admitted:
    """What `check` learned: the parsed payload and the tag streams the event creates."""

    payload: Strict
    created_tags: list[str]


def touched_tags(body: dict[str, Any]) -> list[str]:
    """The tag ids whose state `check` needs: the primary tag stream, the linked ones, split outputs."""
    streams = [body.get("stream", ""), *(body.get("links") or {})]
    return [tag_of(s) for s in streams if isinstance(s, str) and s.startswith("tag:")]


def touched_risk_stream(body: dict[str, Any]) -> str | None:
    """The `incident:` or `site:` stream whose state `check` needs (in a `RiskBook`), if any."""
    stream = body.get("stream", "")
    return stream if stream.startswith(("incident:", "site:")) else None


def check(
    body: dict[str, Any],
    *,
    registry: Registry,
    tags: Mapping[str, TagState | None],
    now: datetime,
    payload: Strict | None = None,
    risk: RiskBook | None = None,
) -> Admitted:
    """Admit `body` or raise `RuleViolation`. `tags` holds the state of every tag in `touched_tags(body)`
    and, for `tags_issued`, of every issued tag (None where the tag does not exist); `risk` holds the state of
    `touched_risk_stream(body)`, if any. `payload` is `parse_data(body["type"], body["data"])` when the caller
    has it already."""
    event_type = body["type"]
    if payload is None:
        payload = parse_data(event_type, body["data"])
    when = parse_time(body["time"])

    if event_type == "ledger_created":
        _check_genesis(body, registry, payload)
        _check_time(body, [], when, now)
        return Admitted(payload, [])
    if registry.ledger is None:
        raise RuleViolation("stream.unknown", "/body/stream", "the ledger has no genesis event yet")

    _check_stream_shape(body, event_type)
    try:
        created = issued_tags(body["data"]) if isinstance(payload, TagsIssued) else []
    except EnvelopeError as exc:
        raise RuleViolation("envelope.malformed", exc.field, exc.message) from None
    _check_actor_and_key(body, registry, when, event_type)
    book = risk if risk is not None else RiskBook()
    heads = _check_heads(body, registry, tags, created, book)
    _check_time(body, heads, when, now)
    if event_type in RISK_EVENT_TYPES:
        check_risk_event(body, payload, registry, book)
        return Admitted(payload, [])

    tolerance = registry.ledger.mass_tolerance_ppm
    rule = _TYPE_RULES[event_type]
    rule(body, payload, registry, tags, tolerance)
    return Admitted(payload, created)


# --- the generic rules ---------------------------------------------------------------------------


def _check_genesis(body: dict[str, Any], registry: Registry, payload: Strict) -> None:
    if registry.ledger is not None:
        raise RuleViolation(
            "stream.conflict",
            "/body/prev",
            "the ledger already has its genesis event",
            {"stream": "ledger", "expected": body["prev"], "head": _head_json(registry.ledger_head)},
        )
    if body["stream"] != "ledger" or body["prev"] is not None or "links" in body:
        raise RuleViolation("envelope.malformed", "/body/stream", "genesis is the first event of `ledger`")
    assert payload.__class__.__name__ == "LedgerCreated"
    if body["actor"] != payload.operator.org:  # type: ignore[attr-defined]
        raise RuleViolation("actor.unknown", "/body/actor", "genesis is signed by the operator")
    try:
        root_key = b64url_decode(payload.root_key, 32)  # type: ignore[attr-defined]
        log_key = b64url_decode(payload.log_key.public_key, 32)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise RuleViolation("envelope.malformed", "/body/data/root_key", f"not a public key: {exc}") from None
    if body["key"] != key_id(root_key):
        raise RuleViolation("key.unknown", "/body/key", "genesis is signed by the root key")
    _refuse_weak_key(root_key, "/body/data/root_key")
    _refuse_weak_key(log_key, "/body/data/log_key/public_key")


def _check_actor_and_key(
    body: dict[str, Any], registry: Registry, when: datetime, event_type: str
) -> None:
    actor = registry.orgs.get(body["actor"])
    if actor is None:
        raise RuleViolation("actor.unknown", "/body/actor", f"no organisation {body['actor']!r}")
    key = registry.key_of(actor.id, body["key"])
    if key is None:
        raise RuleViolation("key.unknown", "/body/key", f"{body['key']} is not a key of {actor.id}")
    problem = key.problem_at(when)
    if problem is not None:
        raise RuleViolation(problem[0], "/body/key", problem[1])
    if actor.role not in ALLOWED_ROLES[event_type]:
        raise RuleViolation(
            "actor.role", "/body/actor", f"a {actor.role} may not record {event_type}"
        )


def _check_stream_shape(body: dict[str, Any], event_type: str) -> None:
    stream: str = body["stream"]
    want = STREAM_KIND[event_type]
    if not stream.startswith(want):
        raise RuleViolation("envelope.malformed", "/body/stream", f"{event_type} belongs to a {want} stream")
    if "links" in body and not body["links"]:
        raise RuleViolation("envelope.malformed", "/body/links", "links, when present, is not empty")
    links = body.get("links") or {}
    if links and event_type not in {"lot_formed", "lot_split"}:
        raise RuleViolation("envelope.malformed", "/body/links", f"{event_type} has no links")
    for linked in links:
        if not linked.startswith("tag:"):
            raise RuleViolation("envelope.malformed", f"/body/links/{_escape(linked)}", "links name tag streams")


def _check_heads(
    body: dict[str, Any],
    registry: Registry,
    tags: Mapping[str, TagState | None],
    created: list[str],
    book: RiskBook,
) -> list[StreamHead]:
    """Each joined stream's declared previous hash must be its current head (compare-and-swap)."""
    joined = [(body["stream"], body["prev"])]
    links = body.get("links")
    if links:
        joined += links.items()
    creates = body["type"] in ("org_registered", "incident_reported")
    heads = []
    for i, (stream, declared) in enumerate(joined):
        pointer = "/body/prev" if i == 0 else None  # a link's pointer is written only for a refusal
        if stream.startswith("tag:"):
            state = tags.get(tag_of(stream))
            head = state.head if state else None
        elif stream.startswith(("incident:", "site:")):
            head = book.head_of(stream)
            if head is None and stream.startswith("site:"):  # exists, empty, for every registered site
                site = stream.removeprefix("site:")
                if registry.role_of(site) != Role.SITE:
                    raise RuleViolation("stream.unknown", "/body/stream", f"{site} is not a registered mine site")
                if declared is not None:
                    raise RuleViolation(
                        "stream.conflict", pointer or _link_pointer(stream), f"{stream} has no event yet",
                        {"stream": stream, "expected": declared, "head": None},
                    )
                continue
        else:
            head = registry.head_of(stream)
        if head is None:
            if declared is not None or not creates:
                what = "tag was never issued" if stream.startswith("tag:") else "stream does not exist"
                where = "/body/stream" if i == 0 else _link_pointer(stream)
                raise RuleViolation("stream.unknown", where, f"{stream}: {what}")
            continue
        if creates:  # a registration or a report starts a stream; it never continues one
            raise RuleViolation(
                "stream.conflict",
                pointer or _link_pointer(stream),
                f"{stream} already exists (entry #{head.seq})",
                {"stream": stream, "expected": declared, "head": _head_json(head)},
            )
        if declared != head.hash:
            raise RuleViolation(
                "stream.conflict",
                pointer or _link_pointer(stream),
                f"{stream} has moved on: its last event is #{head.seq}",
                {"stream": stream, "expected": declared, "head": _head_json(head)},
            )
        heads.append(head)
    for i, tag in enumerate(created):
        if tags.get(tag) is not None:
            raise RuleViolation(
                "tag.already_issued", _issued_pointer(body["data"], i), f"tag {tag} is already issued"
            )
    return heads


def _issued_pointer(data: dict[str, Any], index: int) -> str:
    """The JSON Pointer of the `index`-th tag a `tags_issued` event issues (explicit ids first, then ranges)."""
    listed = data.get("tags") or []
    if index < len(listed):
        return f"/body/data/tags/{index}"
    index -= len(listed)
    for j, r in enumerate(data.get("ranges") or []):
        if index < r["count"]:
            return f"/body/data/ranges/{j}"
        index -= r["count"]
    return "/body/data"


def _check_time(body: dict[str, Any], heads: list[StreamHead], when: datetime, now: datetime) -> None:
    for head in heads:
        if when < head.time:
            raise RuleViolation(
                "time.before_previous",
                "/body/time",
                f"time is before the previous event #{head.seq} of a stream it joins",
            )
    if when > now + MAX_CLOCK_SKEW:
        raise RuleViolation("time.in_future", "/body/time", "time is more than 300 s in the future")


# --- the rules of each event type ---------------------------------------------------------------


def _org_registered(body, payload: OrgRegistered, registry: Registry, tags, tolerance) -> None:
    if payload.role == Role.OPERATOR:
        raise RuleViolation("actor.role", "/body/data/role", "there is one operator, named at genesis")
    if payload.operated_by is not None and payload.operated_by not in registry.orgs:
        raise RuleViolation("stream.unknown", "/body/data/operated_by", "no such organisation")
    seen: set[str] = set()
    for i, public_key in enumerate(payload.public_keys):
        _check_new_key(public_key, registry, seen, f"/body/data/public_keys/{i}")


def _key_added(body, payload, registry: Registry, tags, tolerance) -> None:
    _check_new_key(payload.public_key, registry, set(), "/body/data/public_key")


def _check_new_key(public_key: str, registry: Registry, seen: set[str], pointer: str) -> None:
    try:
        raw = b64url_decode(public_key)
    except ValueError as exc:
        raise RuleViolation("envelope.malformed", pointer, f"not a public key: {exc}") from None
    _refuse_weak_key(raw, pointer)
    kid = key_id(raw)
    if kid in registry.keys or kid in seen:
        raise RuleViolation("key.already_registered", pointer, f"key {kid} is already registered")
    seen.add(kid)


def _refuse_weak_key(raw: bytes, pointer: str) -> None:
    """`key.weak`: only a key of prime order may be registered, or anyone could sign for it (protocol 7)."""
    if is_weak_public_key(raw):
        raise RuleViolation(
            "key.weak",
            pointer,
            "not a usable Ed25519 public key: it must be the canonical encoding of a point of prime order "
            "(a small-order key lets anyone sign for it)",
        )


def _key_revoked(body, payload, registry: Registry, tags, tolerance) -> None:
    org_id = body["stream"].removeprefix("org:")
    key = registry.key_of(org_id, payload.key)
    if key is None:
        raise RuleViolation("key.unknown", "/body/data/key", f"{payload.key} is not a key of {org_id}")
    if key.revoked_seq is not None:
        raise RuleViolation("key.already_revoked", "/body/data/key", f"{payload.key} is already revoked")
    if payload.effective is not None and parse_time(payload.effective) > parse_time(body["time"]):
        raise RuleViolation("envelope.malformed", "/body/data/effective", "a revocation cannot take effect later")


def _tags_issued(body, payload: TagsIssued, registry: Registry, tags, tolerance) -> None:
    recipient = registry.orgs[body["stream"].removeprefix("org:")]
    if recipient.role not in CUSTODY_ROLES:
        raise RuleViolation("recipient.invalid", "/body/stream", f"a {recipient.role} cannot hold tags")


def _tag_attached(body, payload: TagAttached, registry, tags, tolerance) -> None:
    state = _tag(tags, body["stream"])
    if state.status != Status.ISSUED:
        raise RuleViolation("tag.already_attached", "/body/stream", f"{state.tag} is {state.status}")
    if body["actor"] != state.issued_to:
        raise RuleViolation("tag.not_issued_to_actor", "/body/actor", f"{state.tag} was issued to {state.issued_to}")
    if payload.site != state.issued_to:
        raise RuleViolation("tag.not_issued_to_actor", "/body/data/site", f"{state.tag} belongs to site {state.issued_to}")


def _custody_dispatched(body, payload: CustodyDispatched, registry: Registry, tags, tolerance) -> None:
    state = _live_tag(tags, body["stream"], "/body/stream")
    _require_holder(state, body["actor"], "/body/actor")
    _require_not_in_transit(state, "/body/stream")
    recipient = registry.orgs.get(payload.to)
    if recipient is None or recipient.role not in CUSTODY_ROLES or payload.to == body["actor"]:
        raise RuleViolation(
            "recipient.invalid", "/body/data/to", "the recipient must be another organisation that can hold custody"
        )
    if payload.mass_g is not None:
        _require_no_gain(payload.mass_g, state.mass_g, tolerance, "/body/data/mass_g")


def _custody_received(body, payload: CustodyReceived, registry, tags, tolerance) -> None:
    state = _live_tag(tags, body["stream"], "/body/stream")
    if state.status != Status.IN_TRANSIT:
        raise RuleViolation("custody.not_in_transit", "/body/stream", f"{state.tag} was not dispatched")
    if body["actor"] != state.pending_recipient:
        raise RuleViolation(
            "custody.not_recipient", "/body/actor", f"{state.tag} was dispatched to {state.pending_recipient}"
        )
    reference = state.dispatched_mass_g if state.dispatched_mass_g is not None else state.mass_g
    _require_no_gain(payload.mass_g, reference, tolerance, "/body/data/mass_g")


def _lot_formed(body, payload: LotFormed, registry, tags, tolerance) -> None:
    lot = _tag(tags, body["stream"])
    _require_fresh_tag_of(lot, body["actor"], "/body/stream")
    links = set(body.get("links") or {})
    if len(set(payload.inputs)) != len(payload.inputs) or lot.tag in payload.inputs:
        raise RuleViolation("envelope.malformed", "/body/data/inputs", "inputs are distinct and exclude the lot")
    if links != {f"tag:{t}" for t in payload.inputs}:
        raise RuleViolation("envelope.malformed", "/body/links", "links must name exactly the inputs' streams")
    total = 0
    for i, tag in enumerate(payload.inputs):
        state = _live_tag(tags, f"tag:{tag}", f"/body/data/inputs/{i}")
        _require_holder(state, body["actor"], f"/body/data/inputs/{i}")
        _require_not_in_transit(state, f"/body/data/inputs/{i}")
        total += state.mass_g or 0
    _require_balance(payload.mass_g, total, tolerance, "/body/data/mass_g", "the sum of the inputs")


def _lot_split(body, payload: LotSplit, registry, tags, tolerance) -> None:
    lot = _live_tag(tags, body["stream"], "/body/stream")
    _require_holder(lot, body["actor"], "/body/actor")
    _require_not_in_transit(lot, "/body/stream")
    outputs = [o.tag for o in payload.outputs]
    if len(set(outputs)) != len(outputs) or lot.tag in outputs:
        raise RuleViolation("envelope.malformed", "/body/data/outputs", "outputs are distinct and exclude the lot")
    if set(body.get("links") or {}) != {f"tag:{t}" for t in outputs}:
        raise RuleViolation("envelope.malformed", "/body/links", "links must name exactly the outputs' streams")
    for i, tag in enumerate(outputs):
        _require_fresh_tag_of(_tag(tags, f"tag:{tag}"), body["actor"], f"/body/data/outputs/{i}/tag")
    total = sum(o.mass_g for o in payload.outputs)
    _require_balance(total, lot.mass_g or 0, tolerance, "/body/data/outputs", "the lot's mass")


def _tag_consumed(body, payload: TagConsumed, registry, tags, tolerance) -> None:
    state = _live_tag(tags, body["stream"], "/body/stream")
    _require_holder(state, body["actor"], "/body/actor")
    _require_not_in_transit(state, "/body/stream")
    if payload.mass_g is not None:
        _require_no_gain(payload.mass_g, state.mass_g, tolerance, "/body/data/mass_g")


def _tag_voided(body, payload, registry: Registry, tags, tolerance) -> None:
    state = _tag(tags, body["stream"])
    if state.finished:
        raise RuleViolation("tag.finished", "/body/stream", f"{state.tag} is already {state.status}")
    actor = body["actor"]
    if registry.role_of(actor) == Role.OPERATOR:
        return
    owner = state.issued_to if state.status == Status.ISSUED else state.holder
    if actor != owner:
        raise RuleViolation("custody.not_holder", "/body/actor", f"{state.tag} is held by {owner}")


_TYPE_RULES = {
    "org_registered": _org_registered,
    "key_added": _key_added,
    "key_revoked": _key_revoked,
    "tags_issued": _tags_issued,
    "tag_attached": _tag_attached,
    "custody_dispatched": _custody_dispatched,
    "custody_received": _custody_received,
    "lot_formed": _lot_formed,
    "lot_split": _lot_split,
    "tag_consumed": _tag_consumed,
    "tag_voided": _tag_voided,
    "tag_scanned": lambda body, payload, registry, tags, tolerance: _tag(tags, body["stream"]),
}


# --- small shared checks -------------------------------------------------------------------------


def _tag(tags: Mapping[str, TagState | None], stream: str) -> TagState:
    state = tags.get(tag_of(stream))
    if state is None:  # _check_heads already refused unknown streams; this guards direct callers
        raise RuleViolation("stream.unknown", "/body/stream", f"{stream}: tag was never issued")
    return state


def _live_tag(tags: Mapping[str, TagState | None], stream: str, pointer: str) -> TagState:
    state = _tag(tags, stream)
    if state.status == Status.ISSUED:
        raise RuleViolation("tag.not_attached", pointer, f"{state.tag} is not on a bag yet")
    if state.finished:
        raise RuleViolation("tag.finished", pointer, f"{state.tag} is {state.status}: nothing can follow")
    return state


def _require_holder(state: TagState, actor: str, pointer: str) -> None:
    if state.holder != actor:
        raise RuleViolation("custody.not_holder", pointer, f"{state.tag} is held by {state.holder}")


def _require_not_in_transit(state: TagState, pointer: str) -> None:
    if state.status == Status.IN_TRANSIT:
        raise RuleViolation(
            "custody.in_transit", pointer, f"{state.tag} is in transit to {state.pending_recipient}"
        )


def _require_fresh_tag_of(state: TagState, actor: str, pointer: str) -> None:
    if state.issued_to != actor:
        raise RuleViolation("tag.not_issued_to_actor", pointer, f"{state.tag} was issued to {state.issued_to}")
    if state.status != Status.ISSUED:
        raise RuleViolation("tag.already_attached", pointer, f"{state.tag} is already in use ({state.status})")


def _require_no_gain(mass: int, current: int | None, tolerance: int, pointer: str) -> None:
    if current is not None and mass * PPM > current * (PPM + tolerance):
        raise RuleViolation(
            "mass.gain", pointer, f"{mass} g is more than {current} g plus the tolerance ({tolerance} ppm)"
        )


def _require_balance(mass: int, reference: int, tolerance: int, pointer: str, what: str) -> None:
    if abs(mass - reference) * PPM > reference * tolerance:
        raise RuleViolation(
            "mass.balance", pointer, f"{mass} g differs from {what} ({reference} g) by more than {tolerance} ppm"
        )


def _head_json(head: StreamHead | None) -> dict[str, Any] | None:
    return None if head is None else {"hash": head.hash, "seq": head.seq}


def _link_pointer(stream: str) -> str:
    return f"/body/links/{_escape(stream)}"


def _escape(stream: str) -> str:
    return stream.replace("~", "~0").replace("/", "~1")
