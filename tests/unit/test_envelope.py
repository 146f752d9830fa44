"""verification.envelope (docs/protocol.md sections 3 and 4) and the section 2 encodings it uses."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from verification.canonical import MalformedJSON, parse_json
from verification.encoding import (
    EncodingError,
    b64url_decode,
    b64url_encode,
    decode_public_key,
    decode_signature,
    format_time,
    is_hash,
    is_key_id,
    is_org_id,
    is_tag_id,
    is_time,
    is_uuid,
    key_id,
    parse_time,
    sha256_hex,
)
from verification.envelope import (
    Envelope,
    EnvelopeError,
    envelope_bytes,
    envelope_hash,
    expand_tag_ranges,
    is_stream,
    issued_tags,
    prev_hashes,
    sign_body,
    signing_bytes,
    streams_of,
    verify_signature,
)

ACTOR_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
ACTOR_PUBLIC = ACTOR_KEY.public_key().public_bytes_raw()
OTHER_PUBLIC = OTHER_KEY.public_key().public_bytes_raw()
HASH_A = "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d1f"
HASH_B = "0" * 63 + "1"


def make_body(**changes: Any) -> dict[str, Any]:
    """A realistic, structurally valid body (a dispatch of a bag to a trader)."""
    body: dict[str, Any] = {
        "v": 1,
        "id": "0b8a4c1e-3f7d-4e2a-9c61-5d2f8e7a1b3c",
        "type": "custody_dispatched",
        "stream": "tag:CD-KOL-000123",
        "prev": HASH_A,
        "actor": "coop-kolwezi-01",
        "key": key_id(ACTOR_PUBLIC),
        "time": "2026-11-23T08:15:00.123456Z",
        "data": {
            "to": "trader-likasi",
            "mass_g": 48250,
            "location": "Kolwezi depot",
            "gps": {"lat": "-10.712345", "lon": "25.467890"},
        },
    }
    body.update(changes)
    return body


def make_envelope(**changes: Any) -> dict[str, Any]:
    return sign_body(ACTOR_KEY, make_body(**changes)).to_json()


# --------------------------------------------------------------------------------------------
# Signature and hash (section 4)
# --------------------------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    envelope = sign_body(ACTOR_KEY, make_body())
    assert verify_signature(ACTOR_PUBLIC, envelope)
    assert not verify_signature(OTHER_PUBLIC, envelope)
    assert len(envelope.sig) == 86
    assert envelope.body["key"] == key_id(ACTOR_PUBLIC)
    # the signature is over jcs(body), nothing else (checked with the reference JCS)
    ACTOR_KEY.public_key().verify(decode_signature(envelope.sig), rfc8785.dumps(envelope.body))
    assert signing_bytes(envelope.body) == rfc8785.dumps(envelope.body)


def test_verification_does_not_depend_on_member_order() -> None:
    envelope = sign_body(ACTOR_KEY, make_body())
    reordered = dict(reversed(list(envelope.body.items())))
    assert verify_signature(ACTOR_PUBLIC, Envelope(body=reordered, sig=envelope.sig))


def test_parsed_envelope_verifies() -> None:
    raw = envelope_bytes(sign_body(ACTOR_KEY, make_body()))
    assert verify_signature(ACTOR_PUBLIC, Envelope.from_json(parse_json(raw)))


def test_bad_signatures_are_false_not_errors() -> None:
    envelope = sign_body(ACTOR_KEY, make_body())
    other = sign_body(OTHER_KEY, make_body())
    assert not verify_signature(ACTOR_PUBLIC, Envelope(body=envelope.body, sig=other.sig))
    assert not verify_signature(ACTOR_PUBLIC, Envelope(body=envelope.body, sig="not base64!"))
    assert not verify_signature(ACTOR_PUBLIC, Envelope(body=envelope.body, sig=envelope.sig + "="))
    assert not verify_signature(ACTOR_PUBLIC, Envelope(body=envelope.body, sig=envelope.sig[:-2]))
    assert not verify_signature(
        ACTOR_PUBLIC, Envelope(body=envelope.body, sig=b64url_encode(bytes(64)))
    )
    assert not verify_signature(
        ACTOR_PUBLIC, Envelope(body={**envelope.body, "x": 1.5}, sig=envelope.sig)
    )
    with pytest.raises(ValueError):
        verify_signature(ACTOR_PUBLIC[:31], envelope)


def test_every_single_byte_change_of_the_body_breaks_the_signature() -> None:
    envelope = sign_body(ACTOR_KEY, make_body())
    signed = signing_bytes(envelope.body)
    parsed_changes = 0
    for position in range(len(signed)):
        for replacement in {b"0", b"a", b"A", b"-", signed[position : position + 1].swapcase()}:
            changed = signed[:position] + replacement + signed[position + 1 :]
            if changed == signed:
                continue
            try:
                body = parse_json(changed)
            except MalformedJSON:
                continue
            parsed_changes += 1
            assert not verify_signature(ACTOR_PUBLIC, Envelope(body=body, sig=envelope.sig)), (
                changed
            )
    assert parsed_changes > 3 * len(signed) // 2


def _leaf_paths(value: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(value, dict):
        return [p for name, member in value.items() for p in _leaf_paths(member, (*path, name))]
    return [path]


LEAF_PATHS = _leaf_paths(make_body())
SIGNED = sign_body(ACTOR_KEY, make_body())


@given(path=st.sampled_from(LEAF_PATHS), data=st.data())
def test_any_field_mutation_breaks_the_signature(
    path: tuple[str, ...], data: st.DataObject
) -> None:
    body = copy.deepcopy(SIGNED.body)
    parent = body
    for name in path[:-1]:
        parent = parent[name]
    old = parent[path[-1]]
    if isinstance(old, str):
        new: Any = data.draw(
            st.one_of(
                st.text(max_size=len(old) + 2),
                st.integers(0, max(len(old) - 1, 0)).flatmap(
                    lambda i: st.characters(codec="utf-8").map(lambda c: old[:i] + c + old[i + 1 :])
                ),
            ).filter(lambda s: s != old)
        )
    elif isinstance(old, int):
        new = data.draw(
            st.integers(-(2**53) + 1, 2**53 - 1).filter(lambda n: n != old) | st.just(True)
        )
    else:  # prev: null or a hash
        new = data.draw(st.sampled_from([HASH_B, None]).filter(lambda h: h != old))
    parent[path[-1]] = new
    assert not verify_signature(ACTOR_PUBLIC, Envelope(body=body, sig=SIGNED.sig))


@given(name=st.text(min_size=1, max_size=5).filter(lambda n: n not in make_body()))
def test_an_added_field_breaks_the_signature(name: str) -> None:
    body = {**SIGNED.body, name: None}
    assert not verify_signature(ACTOR_PUBLIC, Envelope(body=body, sig=SIGNED.sig))


def test_envelope_hash_covers_the_signature() -> None:
    a = sign_body(ACTOR_KEY, make_body())
    b = sign_body(OTHER_KEY, make_body())
    assert a.body == b.body and a.sig != b.sig
    assert envelope_hash(a) != envelope_hash(b)
    assert envelope_hash(a) == envelope_hash(
        sign_body(ACTOR_KEY, make_body())
    )  # Ed25519 is deterministic
    expected = hashlib.sha256(rfc8785.dumps({"body": a.body, "sig": a.sig})).hexdigest()
    assert envelope_hash(a) == expected == sha256_hex(envelope_bytes(a))
    assert is_hash(envelope_hash(a))
    assert envelope_bytes(a).startswith(b'{"body":{') and envelope_bytes(a).endswith(b'"}')


def test_sign_body_checks_unless_told_not_to() -> None:
    with pytest.raises(EnvelopeError):
        sign_body(ACTOR_KEY, make_body(prev="nope"))
    unchecked = sign_body(ACTOR_KEY, make_body(prev="nope"), check=False)
    assert verify_signature(ACTOR_PUBLIC, unchecked)


def test_envelope_is_frozen() -> None:
    envelope = sign_body(ACTOR_KEY, make_body())
    with pytest.raises(AttributeError):
        envelope.sig = "x"  # type: ignore[misc]
    assert Envelope.from_json(envelope.to_json()) == envelope


# --------------------------------------------------------------------------------------------
# Structure (section 4): each malformed field, with its JSON Pointer
# --------------------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]
"""Changes a valid envelope in place and returns it, or returns something to use instead."""


def _set(path: str, value: Any) -> Mutation:
    def mutate(envelope: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = envelope
        for name in parents:
            target = target[name]
        target[last] = value
        return envelope

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(envelope: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = envelope
        for name in parents:
            target = target[name]
        del target[last]
        return envelope

    return mutate


def _replace(value: Any) -> Mutation:
    return lambda envelope: value


MALFORMED: list[tuple[str, Mutation, str]] = [
    # the envelope itself
    ("envelope is a list", _replace([]), ""),
    ("envelope is null", _replace(None), ""),
    ("no body", _delete("body"), "/body"),
    ("no sig", _delete("sig"), "/sig"),
    ("extra envelope field", _set("hash", HASH_A), "/hash"),
    ("body is a string", _set("body", "{}"), "/body"),
    # missing body fields, in the order of section 4's table
    *[
        (f"no {name}", _delete(f"body.{name}"), f"/body/{name}")
        for name in ("v", "id", "type", "stream", "prev", "actor", "key", "time", "data")
    ],
    ("unknown body field", _set("body.seq", 1), "/body/seq"),
    ("unknown field with a slash", _set("body.a/b", 1), "/body/a~1b"),
    # v
    ("v is 2", _set("body.v", 2), "/body/v"),
    ("v is true", _set("body.v", True), "/body/v"),
    ("v is a string", _set("body.v", "1"), "/body/v"),
    ("v is a float", _set("body.v", 1.0), "/body/v"),
    # id
    ("id uppercase", _set("body.id", "0B8A4C1E-3F7D-4E2A-9C61-5D2F8E7A1B3C"), "/body/id"),
    ("id without dashes", _set("body.id", "0b8a4c1e3f7d4e2a9c615d2f8e7a1b3c"), "/body/id"),
    ("id in braces", _set("body.id", "{0b8a4c1e-3f7d-4e2a-9c61-5d2f8e7a1b3c}"), "/body/id"),
    ("id with newline", _set("body.id", "0b8a4c1e-3f7d-4e2a-9c61-5d2f8e7a1b3c\n"), "/body/id"),
    ("id is an int", _set("body.id", 7), "/body/id"),
    # type
    ("type is an int", _set("body.type", 5), "/body/type"),
    ("type is null", _set("body.type", None), "/body/type"),
    ("type has a lone surrogate", _set("body.type", "x\ud800"), "/body/type"),
    # stream
    ("stream unknown kind", _set("body.stream", "bag:ABC"), "/body/stream"),
    ("stream org uppercase", _set("body.stream", "org:Coop"), "/body/stream"),
    ("stream org too short", _set("body.stream", "org:a"), "/body/stream"),
    ("stream tag lowercase", _set("body.stream", "tag:abc"), "/body/stream"),
    ("stream tag too short", _set("body.stream", "tag:AB"), "/body/stream"),
    ("stream tag too long", _set("body.stream", "tag:" + "A" * 41), "/body/stream"),
    ("stream ledger suffix", _set("body.stream", "ledger2"), "/body/stream"),
    ("stream with newline", _set("body.stream", "ledger\n"), "/body/stream"),
    ("stream bare id", _set("body.stream", "CD-KOL-000123"), "/body/stream"),
    # prev
    ("prev uppercase", _set("body.prev", HASH_A.upper()), "/body/prev"),
    ("prev too short", _set("body.prev", HASH_A[:-1]), "/body/prev"),
    ("prev is 0", _set("body.prev", 0), "/body/prev"),
    ("prev is empty", _set("body.prev", ""), "/body/prev"),
    # links
    ("links is a list", _set("body.links", []), "/body/links"),
    ("links is null", _set("body.links", None), "/body/links"),
    ("link name not a stream", _set("body.links", {"CD-1": None}), "/body/links/CD-1"),
    ("link name with slash", _set("body.links", {"a/b": None}), "/body/links/a~1b"),
    (
        "link to own stream",
        _set("body.links", {"tag:CD-KOL-000123": None}),
        "/body/links/tag:CD-KOL-000123",
    ),
    ("link value not a hash", _set("body.links", {"tag:ABC": "xyz"}), "/body/links/tag:ABC"),
    (
        "link value an int",
        _set("body.links", {"tag:ABC": None, "tag:ABD": 3}),
        "/body/links/tag:ABD",
    ),
    # actor, key
    ("actor uppercase", _set("body.actor", "Coop"), "/body/actor"),
    ("actor leading dash", _set("body.actor", "-coop"), "/body/actor"),
    ("actor too short", _set("body.actor", "c"), "/body/actor"),
    ("actor with org: prefix", _set("body.actor", "org:coop"), "/body/actor"),
    ("key too short", _set("body.key", "0123456789abcde"), "/body/key"),
    ("key uppercase", _set("body.key", "0123456789ABCDEF"), "/body/key"),
    ("key full hash", _set("body.key", HASH_A), "/body/key"),
    # time
    ("time with space", _set("body.time", "2026-11-23 08:15:00Z"), "/body/time"),
    ("time with offset", _set("body.time", "2026-11-23T08:15:00+00:00"), "/body/time"),
    ("time 7 decimals", _set("body.time", "2026-11-23T08:15:00.1234567Z"), "/body/time"),
    ("time empty fraction", _set("body.time", "2026-11-23T08:15:00.Z"), "/body/time"),
    ("time no seconds", _set("body.time", "2026-11-23T08:15Z"), "/body/time"),
    ("time lowercase z", _set("body.time", "2026-11-23T08:15:00z"), "/body/time"),
    ("time impossible date", _set("body.time", "2026-02-30T00:00:00Z"), "/body/time"),
    ("time hour 24", _set("body.time", "2026-11-23T24:00:00Z"), "/body/time"),
    ("time leap second", _set("body.time", "2026-12-31T23:59:60Z"), "/body/time"),
    ("time arabic digits", _set("body.time", "\u0662026-11-23T08:15:00Z"), "/body/time"),
    ("time trailing newline", _set("body.time", "2026-11-23T08:15:00Z\n"), "/body/time"),
    ("time is an int", _set("body.time", 1790000000), "/body/time"),
    # data
    ("data is a list", _set("body.data", []), "/body/data"),
    ("data is null", _set("body.data", None), "/body/data"),
    ("data has a float", _set("body.data.mass_g", 48250.0), "/body/data/mass_g"),
    ("data too big an int", _set("body.data.mass_g", 2**53), "/body/data/mass_g"),
    (
        "data nested float",
        _set("body.data.gps", {"lat": -10.7, "lon": "25.4"}),
        "/body/data/gps/lat",
    ),
    ("data has a tuple", _set("body.data.to", ("a",)), "/body/data/to"),
    ("data non-str name", _set("body.data", {1: "x"}), "/body/data"),
    # sig
    ("sig padded", lambda e: {**e, "sig": e["sig"] + "=="}, "/sig"),
    ("sig too short", lambda e: {**e, "sig": e["sig"][:-1]}, "/sig"),
    ("sig 63 bytes", _set("sig", b64url_encode(bytes(63))), "/sig"),
    ("sig standard alphabet", _set("sig", "+/" + "A" * 84), "/sig"),
    ("sig with whitespace", lambda e: {**e, "sig": e["sig"][:40] + " " + e["sig"][41:]}, "/sig"),
    ("sig non-zero spare bits", _set("sig", "A" * 85 + "B"), "/sig"),
    ("sig is bytes", _set("sig", bytes(64)), "/sig"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_structural_validation_names_the_field(mutate: Mutation, field: str) -> None:
    obj = mutate(make_envelope())
    with pytest.raises(EnvelopeError) as caught:
        Envelope.from_json(obj)
    assert caught.value.field == field
    assert caught.value.rule == "envelope.malformed"
    assert caught.value.message and str(caught.value).startswith(f"{field or '/'}: ")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"prev": None},
        {"links": {}},
        {"links": {"tag:LOT-0001": None, "tag:ABC": HASH_B, "org:coop-kolwezi-01": HASH_A}},
        {"stream": "ledger", "type": "ledger_created"},
        {"stream": "org:coop-kolwezi-01"},
        {"time": "2026-11-23T08:15:00Z"},
        {"time": "2026-11-23T08:15:00.1Z"},
        {"type": ""},
        {"data": {}},
        {"id": "00000000-0000-0000-0000-000000000000"},
        {"actor": "a" * 40},
    ],
)
def test_structural_validation_accepts(changes: dict[str, Any]) -> None:
    envelope = make_envelope(**changes)
    assert Envelope.from_json(envelope).body == make_body(**changes)


# --------------------------------------------------------------------------------------------
# Streams (section 3)
# --------------------------------------------------------------------------------------------


def test_streams_of_each_kind() -> None:
    ledger = make_body(type="ledger_created", stream="ledger", prev=None, actor="operator")
    assert streams_of(ledger) == ["ledger"]
    org = make_body(type="org_registered", stream="org:coop-kolwezi-01", prev=None)
    assert streams_of(org) == ["org:coop-kolwezi-01"]
    assert streams_of(make_body()) == ["tag:CD-KOL-000123"]
    lot = make_body(
        type="lot_formed",
        stream="tag:LOT-0001",
        prev=None,
        links={"tag:CD-0002": HASH_B, "tag:CD-0001": HASH_A},
        data={"inputs": ["CD-0001", "CD-0002"], "mass_g": 10},
    )
    assert streams_of(lot) == ["tag:LOT-0001", "tag:CD-0001", "tag:CD-0002"]
    assert prev_hashes(lot) == {"tag:LOT-0001": None, "tag:CD-0001": HASH_A, "tag:CD-0002": HASH_B}


def test_streams_of_tags_issued_expands_tags_and_ranges() -> None:
    body = make_body(
        type="tags_issued",
        stream="org:coop-kolwezi-01",
        actor="operator",
        data={
            "tags": ["LOT-A", "LOT-B"],
            "ranges": [{"prefix": "CD-", "start": 98, "count": 3, "width": 4}],
        },
    )
    assert Envelope.from_json(sign_body(ACTOR_KEY, body).to_json())
    assert streams_of(body) == [
        "org:coop-kolwezi-01",
        "tag:LOT-A",
        "tag:LOT-B",
        "tag:CD-0098",
        "tag:CD-0099",
        "tag:CD-0100",
    ]
    # created streams are not joined: no prev for them
    assert prev_hashes(body) == {"org:coop-kolwezi-01": HASH_A}


def test_only_tags_issued_creates_streams() -> None:
    body = make_body(type="tag_attached", data={"tags": ["NOT-ISSUED"]})
    assert streams_of(body) == ["tag:CD-KOL-000123"]


def test_tags_issued_may_not_link_a_tag_it_creates() -> None:
    body = make_body(
        type="tags_issued",
        stream="org:coop-kolwezi-01",
        links={"tag:ABC": None},
        data={"tags": ["ABC"]},
    )
    with pytest.raises(EnvelopeError) as caught:
        streams_of(body)
    assert caught.value.field == "/body/links/tag:ABC"


def test_is_stream() -> None:
    assert is_stream("ledger") and is_stream("org:ab") and is_stream("tag:ABC")
    assert not is_stream("org:") and not is_stream("tag:") and not is_stream(None)
    assert not is_stream("Ledger") and not is_stream("org:ab\n")


# --------------------------------------------------------------------------------------------
# expand_tag_ranges / issued_tags edge cases (section 6, tags_issued)
# --------------------------------------------------------------------------------------------


def _range(prefix: Any = "CD-", start: Any = 0, count: Any = 1, width: Any = 6) -> dict[str, Any]:
    return {"prefix": prefix, "start": start, "count": count, "width": width}


def test_range_expansion() -> None:
    assert expand_tag_ranges({"ranges": [_range(start=7, count=3)]}) == [
        "CD-000007",
        "CD-000008",
        "CD-000009",
    ]
    assert expand_tag_ranges({"ranges": [_range(prefix="", start=100, count=2, width=3)]}) == [
        "100",
        "101",
    ]
    assert expand_tag_ranges({"ranges": [_range(prefix="XY", count=10, width=1)]}) == [
        f"XY{i}" for i in range(10)
    ]
    assert expand_tag_ranges({"ranges": [_range(prefix="X", width=12)]}) == ["X000000000000"]
    assert expand_tag_ranges({"ranges": []}) == []
    assert expand_tag_ranges({"tags": ["ABC"]}) == []  # only ranges
    many = expand_tag_ranges({"ranges": [_range(count=10_000)]})
    assert len(many) == len(set(many)) == 10_000 and many[-1] == "CD-009999"
    split = expand_tag_ranges({"ranges": [_range(count=5_000), _range(start=5_000, count=5_000)]})
    assert split == many


def test_range_numbers_longer_than_width_keep_their_digits() -> None:
    # zero-padded(start + i, width) pads and never cuts: str(n).zfill(width)
    assert expand_tag_ranges({"ranges": [_range(prefix="AB-", start=9, count=2, width=1)]}) == [
        "AB-9",
        "AB-10",
    ]


@pytest.mark.parametrize(
    ("ranges", "field"),
    [
        ({"prefix": "CD-"}, "/body/data/ranges"),
        ([["CD-", 0, 1, 6]], "/body/data/ranges/0"),
        ([_range(), {"prefix": "CD-", "start": 5, "count": 1}], "/body/data/ranges/1/width"),
        ([{**_range(), "step": 2}], "/body/data/ranges/0/step"),
        ([_range(prefix="cd-")], "/body/data/ranges/0/prefix"),
        ([_range(prefix=None)], "/body/data/ranges/0/prefix"),
        ([_range(prefix="A" * 40)], "/body/data/ranges/0/prefix"),
        ([_range(start=-1)], "/body/data/ranges/0/start"),
        ([_range(start=True)], "/body/data/ranges/0/start"),
        ([_range(start="0")], "/body/data/ranges/0/start"),
        ([_range(start=2**53)], "/body/data/ranges/0/start"),
        ([_range(count=0)], "/body/data/ranges/0/count"),
        ([_range(count=10_001)], "/body/data/ranges/0/count"),
        ([_range(count=1.0)], "/body/data/ranges/0/count"),
        ([_range(width=0)], "/body/data/ranges/0/width"),
        ([_range(width=13)], "/body/data/ranges/0/width"),
        ([_range(width=False)], "/body/data/ranges/0/width"),
        ([_range(count=6_000), _range(start=6_000, count=4_001)], "/body/data/ranges/1/count"),
        ([_range(prefix="A" * 30, width=12)], "/body/data/ranges/0"),  # 42 characters
        ([_range(prefix="", width=2)], "/body/data/ranges/0"),  # "00": too short
        ([_range(prefix="-", width=3)], "/body/data/ranges/0"),  # starts with "-"
        ([_range(count=10), _range(start=9, count=2)], "/body/data/ranges/1"),  # CD-000009 twice
    ],
)
def test_bad_ranges(ranges: Any, field: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        expand_tag_ranges({"ranges": ranges})
    assert caught.value.field == field
    assert caught.value.rule == "envelope.malformed"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "/body/data"),
        ({"tags": [], "ranges": []}, "/body/data"),
        ({"tags": "ABC"}, "/body/data/tags"),
        ({"tags": ["ABC", "abc"]}, "/body/data/tags/1"),
        ({"tags": ["ABC", 7]}, "/body/data/tags/1"),
        ({"tags": ["ABC", "ABC"]}, "/body/data/tags/1"),
        ({"tags": ["CD-000001"], "ranges": [_range(count=3)]}, "/body/data/ranges/0"),
        ({"tags": [f"T{i:05d}" for i in range(10_001)]}, "/body/data/tags"),
        ({"tags": ["ABC"], "ranges": [_range(count=10_000)]}, "/body/data/ranges/0/count"),
    ],
)
def test_bad_issued_tags(data: dict[str, Any], field: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        issued_tags(data)
    assert caught.value.field == field


def test_issued_tags_limit_is_inclusive() -> None:
    tags = issued_tags({"tags": ["ABC"], "ranges": [_range(count=9_999)]})
    assert len(tags) == 10_000 and tags[0] == "ABC"


# --------------------------------------------------------------------------------------------
# Encodings of primitive values (section 2)
# --------------------------------------------------------------------------------------------


@given(st.binary(max_size=100))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize(
    "text",
    ["AAAA=", "AA==", "A", "AAAAA", "AA AA", "AA\n", "+/+/", "AB", "AAB", "Zg=", "é", "AA.A"],
)
def test_b64url_decode_is_strict(text: str) -> None:
    # "AB" / "AAB": the unused low bits are not zero (the canonical forms are "AA", "AAA")
    with pytest.raises(EncodingError):
        b64url_decode(text)


def test_key_and_signature_sizes() -> None:
    assert decode_public_key(b64url_encode(ACTOR_PUBLIC)) == ACTOR_PUBLIC
    assert len(b64url_encode(ACTOR_PUBLIC)) == 43 and len(b64url_encode(bytes(64))) == 86
    for wrong in (bytes(31), bytes(33), bytes(64)):
        with pytest.raises(EncodingError):
            decode_public_key(b64url_encode(wrong))
    for wrong in (bytes(63), bytes(65), bytes(32)):
        with pytest.raises(EncodingError):
            decode_signature(b64url_encode(wrong))
    with pytest.raises(EncodingError):
        decode_public_key(None)  # type: ignore[arg-type]


def test_hashes_and_key_ids() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert key_id(ACTOR_PUBLIC) == hashlib.sha256(ACTOR_PUBLIC).hexdigest()[:16]
    assert is_key_id(key_id(ACTOR_PUBLIC))
    with pytest.raises(EncodingError):
        key_id(ACTOR_PUBLIC + b"\0")


def test_time_parsing() -> None:
    base = datetime(2026, 11, 23, 8, 15, tzinfo=timezone.utc)
    assert parse_time("2026-11-23T08:15:00Z") == base
    assert parse_time("2026-11-23T08:15:00.1Z") == base + timedelta(microseconds=100_000)
    assert parse_time("2026-11-23T08:15:00.000001Z") == base + timedelta(microseconds=1)
    assert parse_time("2026-11-23T08:15:00.000000Z") == parse_time("2026-11-23T08:15:00Z")
    assert parse_time("2026-11-23T08:15:00Z").tzinfo is timezone.utc
    assert parse_time("2024-02-29T23:59:59.999999Z").day == 29
    for bad in [
        "2026-11-23T08:15:00",
        "2026-11-23t08:15:00Z",
        "2025-02-29T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-1-23T08:15:00Z",
        "2026-11-23T08:15:00.Z",
        "2026-11-23T08:15:00,5Z",
        " 2026-11-23T08:15:00Z",
        "2026-13-01T00:00:00Z",
    ]:
        assert not is_time(bad), bad
        with pytest.raises(EncodingError):
            parse_time(bad)
    assert not is_time(None)


@given(st.datetimes(timezones=st.just(timezone.utc)))
def test_time_format_round_trip(moment: datetime) -> None:
    text = format_time(moment)
    assert len(text) == 27 and text.endswith("Z")
    assert parse_time(text) == moment
    assert format_time(parse_time(text)) == text


def test_format_time_converts_to_utc_and_refuses_naive() -> None:
    cet = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 11, 23, 9, 15, tzinfo=cet)) == "2026-11-23T08:15:00.000000Z"
    with pytest.raises(EncodingError):
        format_time(datetime(2026, 11, 23, 8, 15))


def test_identifier_validators() -> None:
    assert is_uuid("0b8a4c1e-3f7d-4e2a-9c61-5d2f8e7a1b3c")
    assert not is_uuid("0b8a4c1e-3f7d-4e2a-9c61-5d2f8e7a1b3") and not is_uuid(None)
    assert is_org_id("ab") and is_org_id("0-") and is_org_id("a" * 40)
    assert (
        not is_org_id("a")
        and not is_org_id("a" * 41)
        and not is_org_id("ab_c")
        and not is_org_id("ab\n")
    )
    assert is_tag_id("ABC") and is_tag_id("9--") and is_tag_id("A" * 40)
    assert (
        not is_tag_id("AB")
        and not is_tag_id("A" * 41)
        and not is_tag_id("-AB")
        and not is_tag_id("ABc")
    )
    assert not is_tag_id("AB\u0663")  # a non-ASCII digit
    assert is_hash(HASH_A) and not is_hash(HASH_A.upper()) and not is_hash(HASH_A + "\n")


# --------------------------------------------------------------------------------------------
# issued_among: membership without expansion == the expansion
# --------------------------------------------------------------------------------------------

from hypothesis import given as _given, settings as _settings, strategies as _st  # noqa: E402

from verification.envelope import issued_among as _issued_among, issued_tags as _issued_tags  # noqa: E402

_PREFIXES = _st.sampled_from(["A-", "AB", "KAL-", "X1", "LOT-0", "Z"])


@_settings(max_examples=300, deadline=None)
@_given(
    ranges=_st.lists(
        _st.fixed_dictionaries({
            "prefix": _PREFIXES,
            "start": _st.integers(0, 1200),
            "count": _st.integers(1, 40),
            "width": _st.integers(1, 5),
        }),
        min_size=0,
        max_size=3,
    ),
    listed=_st.lists(_st.sampled_from(["ABC-1", "KAL-000007", "X10", "ZZZ"]), unique=True, max_size=3),
    probes=_st.lists(
        _st.builds(lambda p, n, w: p + str(n).zfill(w), _PREFIXES, _st.integers(0, 1300), _st.integers(1, 6)),
        max_size=30,
    ),
)
def test_issued_among_equals_the_expansion(ranges, listed, probes) -> None:
    data = {"tags": listed, "ranges": ranges}
    try:
        expanded = _issued_tags(data)
    except EnvelopeError:
        return  # only valid issuance data is folded
    wanted = set(probes) | set(expanded[:5]) | set(listed)
    assert sorted(_issued_among(data, wanted)) == sorted(t for t in expanded if t in wanted)


@given(data=st.dictionaries(st.text(max_size=6), st.integers(-(2**53 - 1), 2**53 - 1) | st.text(max_size=10)
                            | st.none() | st.booleans(), max_size=6),
       sig=st.text(max_size=20))
def test_envelope_bytes_are_jcs_of_the_whole_envelope(data: dict[str, Any], sig: str) -> None:
    # envelope_bytes is assembled from jcs(body) and jcs(sig); it must equal the reference JCS of the envelope
    body = {**make_body(), "data": data}
    try:
        expected = rfc8785.dumps({"body": body, "sig": sig})
    except rfc8785.CanonicalizationError:  # a lone surrogate: there is no encoding, ours must refuse too
        with pytest.raises(ValueError):
            envelope_bytes(Envelope(body=body, sig=sig))
        return
    assert envelope_bytes(Envelope(body=body, sig=sig)) == expected


def test_from_json_keeps_the_body_bytes_it_checked() -> None:
    signed = sign_body(ACTOR_KEY, make_body())
    parsed = Envelope.from_json(parse_json(envelope_bytes(signed)))
    assert parsed.body_bytes == rfc8785.dumps(parsed.body) == parsed.signed_bytes()
    assert Envelope(body=parsed.body, sig=parsed.sig).body_bytes is None  # built directly: encoded on demand
    assert envelope_bytes(parsed) == envelope_bytes(Envelope(body=parsed.body, sig=parsed.sig))
    assert parsed == Envelope(body=parsed.body, sig=parsed.sig)  # the cache is not part of equality


def test_from_json_keeps_the_signature_it_decoded() -> None:
    signed = sign_body(ACTOR_KEY, make_body())
    parsed = Envelope.from_json(parse_json(envelope_bytes(signed)))
    assert parsed.sig_bytes == decode_signature(parsed.sig)
    assert verify_signature(ACTOR_PUBLIC, parsed)
    with pytest.raises(TypeError):  # as cryptography answers a key that is not bytes (not kept either)
        verify_signature(bytearray(ACTOR_PUBLIC), parsed)
    assert not verify_signature(OTHER_PUBLIC, parsed)
    assert Envelope(body=parsed.body, sig=parsed.sig).sig_bytes is None  # built directly: decoded on demand
    with pytest.raises(ValueError):
        verify_signature(ACTOR_PUBLIC[:31], parsed)


def test_from_json_takes_fast_bytes_only_when_given() -> None:
    signed = sign_body(ACTOR_KEY, make_body())
    obj = parse_json(envelope_bytes(signed))
    assert Envelope.from_json(obj, fast=lambda body: None).body_bytes == rfc8785.dumps(obj["body"])
    assert Envelope.from_json(obj, fast=lambda body: b"given").body_bytes == b"given"
    with pytest.raises(EnvelopeError) as refused:  # the structure is checked before
        Envelope.from_json({**obj, "sig": "x"}, fast=lambda body: pytest.fail("encoded a bad envelope"))
    assert refused.value.field == "/sig"


_link_names = st.sampled_from(["tag:CD-S01-000001", "tag:CD-S01-000002", "site:site-01", "org:trader-01",
                               "tag:cd-lower", "nonsense", "", "tag:CD-S01-000009"])
_link_values = st.sampled_from([None, HASH_A, HASH_B, HASH_A.upper(), "", 3, True, ["x"]])


@given(st.dictionaries(_link_names | st.integers(0, 3), _link_values, max_size=5))
def test_links_are_refused_as_the_name_ordered_check_refuses(links: dict[Any, Any]) -> None:
    """The usual-case check (`_links_valid`, no sorting, no pointers) passes exactly the links that the
    name-ordered check (`_check_links`, which names the first bad one) passes."""
    from verification.envelope import _check_links, _links_valid

    own = "tag:CD-S01-000009"
    try:
        _check_links(links, own)
        ordered_ok = True
    except EnvelopeError:
        ordered_ok = False
    assert _links_valid(links, own) is ordered_ok
