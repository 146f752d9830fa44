"""verification.entry: log entries, docs/protocol.md section 5."""

from __future__ import annotations

import json
from datetime import timezone
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from verification.canonical import MAX_SAFE_INTEGER, jcs
from verification.encoding import format_time, key_id
from verification.entry import EntryError, LogEntry, decode_entry, encode_entry
from verification.envelope import (
    Envelope,
    EnvelopeError,
    envelope_hash,
    sign_body,
    verify_signature,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
PUBLIC = KEY.public_key().public_bytes_raw()
RECEIVED = "2026-11-23T08:15:01.000000Z"
ENVELOPE = sign_body(
    KEY,
    {
        "v": 1,
        "id": "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        "type": "custody_received",
        "stream": "tag:CD-KOL-000123",
        "prev": "ab" * 32,
        "actor": "trader-likasi",
        "key": key_id(PUBLIC),
        "time": "2026-11-23T08:15:00Z",
        "data": {"mass_g": 48100, "location": "Likasi \u00e9tape \U0001f69a"},
    },
)


def entry_json(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"v": 1, "seq": 7, "received": RECEIVED, "envelope": ENVELOPE.to_json()}
    entry.update(changes)
    return entry


times = st.datetimes(timezones=st.just(timezone.utc)).map(format_time) | st.sampled_from(
    [
        "2026-11-23T08:15:00Z",
        "2026-11-23T08:15:00.5Z",
        "2026-11-23T08:15:00.123Z",
        "9999-12-31T23:59:59Z",
    ]
)


@given(seq=st.integers(0, MAX_SAFE_INTEGER), received=times)
def test_round_trip(seq: int, received: str) -> None:
    raw = encode_entry(seq, received, ENVELOPE)
    assert raw == rfc8785.dumps(
        {"v": 1, "seq": seq, "received": received, "envelope": ENVELOPE.to_json()}
    )
    entry = decode_entry(raw)
    assert entry == LogEntry(seq=seq, received=received, envelope=ENVELOPE, raw=raw)
    assert type(entry.raw) is bytes
    assert envelope_hash(entry.envelope) == envelope_hash(ENVELOPE)
    assert verify_signature(PUBLIC, entry.envelope)


def test_entry_layout() -> None:
    raw = encode_entry(0, RECEIVED, ENVELOPE)
    assert raw.startswith(b'{"envelope":{"body":{"actor":"trader-likasi",')
    assert raw.endswith(b'},"received":"2026-11-23T08:15:01.000000Z","seq":0,"v":1}')
    assert decode_entry(bytearray(raw)).raw == raw


CANONICAL = encode_entry(7, RECEIVED, ENVELOPE)


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(entry_json(), indent=1, ensure_ascii=False).encode(),  # whitespace
        json.dumps(
            entry_json(), sort_keys=False, separators=(",", ":"), ensure_ascii=False
        ).encode(),  # order
        json.dumps(entry_json(), sort_keys=True, separators=(",", ":")).encode(),  # \u escapes
        CANONICAL + b"\n",
        b" " + CANONICAL,
        CANONICAL.replace(b'"seq":7', b'"seq":7 '),
        CANONICAL.replace(b"Likasi \xc3\xa9tape", b"Likasi \\u00e9tape"),
        CANONICAL.replace(b"Likasi", b"\\u004cikasi"),
        CANONICAL.replace(b'"location"', b'"loc\\u0061tion"'),
        encode_entry(0, RECEIVED, ENVELOPE).replace(b'"seq":0', b'"seq":-0'),
    ],
)
def test_non_canonical_bytes_are_refused(raw: bytes) -> None:
    assert raw != CANONICAL
    with pytest.raises(EntryError) as caught:
        decode_entry(raw)
    assert caught.value.field == ""
    assert "canonical" in caught.value.message


def test_key_order_check_uses_utf16() -> None:
    # members sorted by code point instead of UTF-16 code units are not canonical
    envelope = sign_body(KEY, {**ENVELOPE.body, "data": {"\U0001f600": 1, "\ufb33": 2}})
    raw = encode_entry(1, RECEIVED, envelope)
    assert raw.index("\U0001f600".encode()) < raw.index("\ufb33".encode())
    swapped = raw.replace(
        b'"\xf0\x9f\x98\x80":1,"\xef\xac\xb3":2', b'"\xef\xac\xb3":2,"\xf0\x9f\x98\x80":1'
    )
    assert swapped != raw
    with pytest.raises(EntryError, match="canonical"):
        decode_entry(swapped)


@pytest.mark.parametrize("version", [2, 0, True, "1", None])
def test_wrong_version_is_refused(version: Any) -> None:
    raw = rfc8785.dumps(entry_json(v=version))
    with pytest.raises(EntryError) as caught:
        decode_entry(raw)
    assert caught.value.field == "/v"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({k: v for k, v in entry_json().items() if k != "v"}, "/v"),
        ({k: v for k, v in entry_json().items() if k != "seq"}, "/seq"),
        ({k: v for k, v in entry_json().items() if k != "received"}, "/received"),
        ({k: v for k, v in entry_json().items() if k != "envelope"}, "/envelope"),
        (entry_json(hash="ab" * 32), "/hash"),
        (entry_json(**{"a/b": 1}), "/a~1b"),
        (entry_json(seq=-1), "/seq"),
        (entry_json(seq=True), "/seq"),
        (entry_json(seq="7"), "/seq"),
        (entry_json(received="2026-11-23T08:15:01+00:00"), "/received"),
        (entry_json(received=None), "/received"),
        (entry_json(envelope=[]), "/envelope"),
        (entry_json(envelope={**ENVELOPE.to_json(), "sig": "x"}), "/envelope/sig"),
        (
            entry_json(
                envelope={"body": {**ENVELOPE.body, "prev": "AB" * 32}, "sig": ENVELOPE.sig}
            ),
            "/envelope/body/prev",
        ),
        ([1, 2], ""),
        ("entry", ""),
    ],
)
def test_malformed_entries_name_the_field(entry: Any, field: str) -> None:
    with pytest.raises(EntryError) as caught:
        decode_entry(rfc8785.dumps(entry))
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_malformed_envelope_keeps_its_cause() -> None:
    raw = rfc8785.dumps(
        entry_json(envelope={"body": {**ENVELOPE.body, "v": 2}, "sig": ENVELOPE.sig})
    )
    with pytest.raises(EntryError) as caught:
        decode_entry(raw)
    assert caught.value.field == "/envelope/body/v"
    assert isinstance(caught.value.__cause__, EnvelopeError)
    assert caught.value.__cause__.rule == "envelope.malformed"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        CANONICAL[:-1],
        CANONICAL.replace(b'"seq":7', b'"seq":7,"seq":7'),  # duplicate member
        CANONICAL.replace(b'"seq":7', b'"seq":7.0'),
        CANONICAL.replace(b"Likasi", b"Lik\xffsi"),
        CANONICAL.replace(b"Likasi", b"\\ud800ikasi"),
    ],
)
def test_not_json_of_the_protocol(raw: bytes) -> None:
    with pytest.raises(EntryError) as caught:
        decode_entry(raw)
    assert caught.value.field == ""


def test_encode_entry_checks_its_arguments() -> None:
    for seq in (-1, True, 2**53, "0"):
        with pytest.raises(EntryError):
            encode_entry(seq, RECEIVED, ENVELOPE)  # type: ignore[arg-type]
    with pytest.raises(EntryError):
        encode_entry(0, "yesterday", ENVELOPE)


def test_a_stored_entry_is_decoded_as_is() -> None:
    entry = decode_entry(CANONICAL)
    assert encode_entry(entry.seq, entry.received, entry.envelope) == entry.raw == CANONICAL
    assert jcs({"body": entry.envelope.body, "sig": entry.envelope.sig}) in CANONICAL
    assert Envelope.from_json(entry.envelope.to_json()) == ENVELOPE
