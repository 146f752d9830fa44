"""The auditor's fast per-entry checks (verification.entry_checks) against the reference readers.

The fast path of `check_entry` decides some checks without the reference code: a protocol time without building
a `datetime` (`_time_ok`), a signature's base64url without re-encoding it (`_signature_of`), the whole entry with
the C scanner called directly (`_decode_fast`). Each must accept exactly what the reference accepts (or, for
`_decode_fast`, a subset of it, the rest going to the reference), with the same values: checked here on random
valid and invalid inputs, and `check_entry`'s output against values computed independently from the reference
decoder.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.test_replay import Log
from verification.canonical import jcs, sorted_compact
from verification import event_data
from verification.encoding import (
    EncodingError,
    b64url_decode,
    decode_signature,
    format_time,
    is_key_id,
    is_org_id,
    is_tag_id,
    key_id,
    parse_time,
)
from verification.entry import EntryError, decode_entry
from verification.entry_checks import (
    CheckedEntry,
    EntryProblem,
    SignatureChecker,
    _decode_fast,
    _signature_of,
    _time_ok,
    check_entry,
    fingerprint,
    normalize_time,
)
from verification.custody_state import TagState
from verification.merkle import leaf_hash

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parses(value: Any) -> bool:
    try:
        parse_time(value)
    except EncodingError:
        return False
    return True


def _signature(value: Any) -> bytes | None:
    try:
        return decode_signature(value)
    except EncodingError:
        return None


# --- times ------------------------------------------------------------------------------------------------

_moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
                        timezones=st.just(timezone.utc))


@st.composite
def _time_texts(draw: st.DrawFn) -> str:
    """Protocol times (with 0..6 fractional digits) and near misses: one character changed, added or removed,
    impossible fields (month 13, day 31 of a short month, 29 February of a common year, hour 24, second 60)."""
    text = format_time(draw(_moments))
    digits = draw(st.integers(0, 6))
    text = text[:19] + ("." + text[20:20 + digits] if digits else "") + "Z"
    how = draw(st.sampled_from(["keep", "replace", "insert", "delete", "field"]))
    if how == "keep":
        return text
    i = draw(st.integers(0, len(text) - 1))
    char = draw(st.sampled_from(list("0123456789-:.TZtz +\u0663\n")))
    if how == "replace":
        return text[:i] + char + text[i + 1:]
    if how == "insert":
        return text[:i] + char + text[i:]
    if how == "delete":
        return text[:i] + text[i + 1:]
    start, value = draw(st.sampled_from([(5, "13"), (5, "00"), (8, "00"), (8, "31"), (8, "30"), (8, "29"),
                                         (11, "24"), (11, "23"), (14, "60"), (17, "60"), (17, "59"), (0, "0000")]))
    return text[:start] + value + text[start + len(value):]


@SETTINGS
@given(_time_texts())
def test_time_ok_accepts_exactly_what_parse_time_accepts(text: str) -> None:
    assert _time_ok(text) == _parses(text)


@SETTINGS
@given(st.one_of(st.text(alphabet="0123456789-:.TZ", max_size=30), st.text(max_size=30), st.integers(),
                 st.none(), st.binary(max_size=30)))
def test_time_ok_on_anything(value: Any) -> None:
    assert _time_ok(value) == _parses(value)


def test_time_ok_on_leap_days_and_edges() -> None:
    for text, ok in [("2024-02-29T00:00:00Z", True), ("2023-02-29T00:00:00Z", False),
                     ("2000-02-29T23:59:59.999999Z", True), ("1900-02-29T00:00:00Z", False),
                     ("0000-01-01T00:00:00Z", False), ("0001-01-01T00:00:00Z", True),
                     ("2026-04-31T00:00:00Z", False), ("2026-01-01T24:00:00Z", False),
                     ("2026-01-01T00:00:60Z", False), ("2026-01-01T00:00:00.Z", False),
                     ("2026-01-01T00:00:00.1234567Z", False), ("2026-01-01T00:00:00Z\n", False)]:
        assert _time_ok(text) is ok is _parses(text), text


# --- signatures -------------------------------------------------------------------------------------------

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@st.composite
def _signature_texts(draw: st.DrawFn) -> str:
    """base64url of 64 random bytes, and near misses: a character changed to any base64 or other character
    (unused bits set, '+', '/', '=', whitespace), padding, one character more or less."""
    text = base64.urlsafe_b64encode(draw(st.binary(min_size=64, max_size=64))).rstrip(b"=").decode()
    how = draw(st.sampled_from(["keep", "replace", "last", "insert", "delete", "pad"]))
    char = draw(st.sampled_from(list(_B64URL + "+/= \n.\u00e9")))
    i = draw(st.integers(0, len(text) - 1))
    if how == "replace":
        return text[:i] + char + text[i + 1:]
    if how == "last":
        return text[:-1] + char
    if how == "insert":
        return text[:i] + char + text[i:]
    if how == "delete":
        return text[:i] + text[i + 1:]
    if how == "pad":
        return text + "=" * draw(st.integers(1, 2))
    return text


@SETTINGS
@given(_signature_texts())
def test_signature_of_equals_decode_signature(text: str) -> None:
    assert _signature_of(text) == _signature(text)


@SETTINGS
@given(st.one_of(st.text(alphabet=_B64URL + "+/=", min_size=84, max_size=88), st.text(max_size=90),
                 st.integers(), st.none()))
def test_signature_of_on_anything(value: Any) -> None:
    assert _signature_of(value) == _signature(value)


# --- whole entries ----------------------------------------------------------------------------------------


def _small_log() -> list[bytes]:
    log = Log()
    log.attach("BAG-1")
    log.attach("BAG-2", mass=30_000)
    log.emit("site", "custody_dispatched", "tag:BAG-1", {"to": "trader"})
    return log.entries


ENTRIES = _small_log()

# characters that make the edits interesting: JSON syntax, escapes, digits, exponents, whitespace, non-ASCII
_EDIT_BYTES = [bytes([b]) for b in b'{}[]:,"\\ \n\t0123456789-+.eEtrufalsn'] + [b"\\u0041", b"\xc3\xa9", b"\x00"]


@st.composite
def _edited_entries(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from(ENTRIES))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["replace", "insert", "delete"]))
        piece = draw(st.sampled_from(_EDIT_BYTES))
        if how == "replace":
            raw = raw[:i] + piece + raw[i + 1:]
        elif how == "insert":
            raw = raw[:i] + piece + raw[i:]
        else:
            raw = raw[:i] + raw[i + 1:]
    return raw


def _reference(raw: bytes) -> tuple[int, str, dict[str, Any], bytes] | None:
    try:
        entry = decode_entry(raw)
    except EntryError:
        return None
    return entry.seq, entry.received, entry.envelope.body, b64url_decode(entry.envelope.sig)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edited_entries())
def test_the_fast_decoder_never_accepts_what_the_reference_refuses(raw: bytes) -> None:
    fast = _decode_fast(raw)
    reference = _reference(raw)
    if fast is not None:
        assert reference is not None and fast == reference
    elif raw.isascii() and reference is not None:
        pytest.fail("an ASCII entry the reference accepts must take the fast path")  # it only skips non-ASCII


@SETTINGS
@given(st.sampled_from(ENTRIES), st.sampled_from([
    (b'"seq":', b'"seq":9007199254740991'), (b'"seq":', b'"seq":9007199254740992'),
    (b'"mass_g":', b'"mass_g":-9007199254740992'), (b'"mass_g":', b'"mass_g":40000.0'),
    (b'"mass_g":', b'"mass_g":4e4'), (b'"mass_g":', b'"mass_g":Infinity'), (b'"mass_g":', b'"mass_g":-0'),
]))
def test_numbers_out_of_the_protocol_are_refused_by_both(raw: bytes, edit: tuple[bytes, bytes]) -> None:
    mark, replacement = edit
    assume(mark in raw)
    start = raw.index(mark)
    end = start + len(mark)
    while raw[end:end + 1].isdigit():
        end += 1
    edited = raw[:start] + replacement + raw[end:]
    fast = _decode_fast(edited)
    reference = _reference(edited)
    if fast is not None:
        assert fast == reference


def test_check_entry_equals_values_computed_from_the_reference_decoder() -> None:
    log = Log()
    log.attach("BAG-1")
    log.emit("itsci", "tags_issued", "org:site", {"tags": ["BAG-9"]}, created=["tag:BAG-9"])
    keys = {pair.kid: base64.urlsafe_b64decode(pair.public_key + "=") for pair in log.keys.values()}
    id_key = b"k" * 16
    for raw in log.entries:
        entry = decode_entry(raw)
        body = entry.envelope.body
        checked = check_entry(raw, keys.get, id_key, SignatureChecker())
        assert type(checked) is CheckedEntry
        envelope_bytes = jcs(entry.envelope.to_json())
        public = keys.get(body["key"]) if body["type"] != "ledger_created" else \
            base64.urlsafe_b64decode(body["data"]["root_key"] + "=")
        assert public is not None and key_id(public) == body["key"]
        expected = CheckedEntry(
            seq=entry.seq, received=normalize_time(entry.received), type=body["type"], stream=body["stream"],
            prev=None if body["prev"] is None else bytes.fromhex(body["prev"]),
            links=tuple((k, None if v is None else bytes.fromhex(v)) for k, v in (body.get("links") or {}).items()),
            actor=body["actor"], key=body["key"], time=normalize_time(body["time"]), time_text=body["time"],
            event_id=body["id"], id_fingerprint=int.from_bytes(
                hashlib.blake2b(body["id"].encode("ascii"), digest_size=8, key=id_key).digest(), "big"),
            hash=hashlib.sha256(envelope_bytes).digest(), leaf=leaf_hash(raw), signature_key=public,
            signature_ok=True, data=body["data"],
            issued=("BAG-9",) if body["data"].get("tags") == ["BAG-9"] else checked.issued,
        )
        assert checked == expected
        assert type(checked.hash) is bytes and type(checked.leaf) is bytes
        # the signature checked over the body's bytes: a flipped signature byte fails it
        sig = entry.envelope.sig
        flipped = raw.replace(sig.encode(), (("B" if sig[0] == "A" else "A") + sig[1:]).encode())
        again = check_entry(flipped, keys.get, id_key, SignatureChecker())
        assert type(again) is CheckedEntry and again.signature_ok is False


def test_a_late_received_time_is_still_checked() -> None:
    raw = ENTRIES[1]
    received = decode_entry(raw).received
    later = format_time(parse_time(received) + timedelta(days=400))
    assert type(check_entry(raw.replace(received.encode(), later.encode()), lambda kid: None, b"k" * 16,
                            SignatureChecker())) is CheckedEntry
    bad = received[:5] + "02-30" + received[10:]
    problem = check_entry(raw.replace(received.encode(), bad.encode()), lambda kid: None, b"k" * 16,
                          SignatureChecker())
    assert type(problem) is EntryProblem and problem.field == "/received"


# --- the canonical re-encoding by the C encoder made once (verification.canonical.sorted_compact) ----------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), check_circular=False,
                                 allow_nan=False)


@SETTINGS
@given(st.one_of(st.dictionaries(st.text(max_size=6), _json_values, max_size=5), _json_values))
def test_the_encoder_made_once_writes_what_json_encoder_encode_writes(value: Any) -> None:
    text = sorted_compact(value)
    assert text == _JSON_ENCODER.encode(value)
    if text.isascii():  # on ASCII text it is jcs (names sorted by code point = by UTF-16 code unit)
        assert text.encode("ascii") == jcs(value)


# --- the data checkers (verification.event_data): the shortcuts against what they replaced ------------------

def _object_before(fields: dict[str, tuple[bool, Any]]) -> Any:
    """`event_data._object` as it was: the member names sorted on every call."""

    def check(value: Any, path: tuple[str | int, ...]) -> None:
        if type(value) is not dict:
            raise event_data._fail(path, "is not an object")
        for name, (required, member_check) in fields.items():
            if name in value:
                member = value[name]
                if member is None and not required:
                    continue
                member_check(member, (*path, name))
            elif required:
                raise event_data._fail((*path, name), "is required")
        for name in sorted(value):
            if name not in fields:
                raise event_data._fail((*path, name), "is not a field here")

    return check


def _outcome(check: Any, value: Any) -> tuple[str, str] | None:
    try:
        check(value, ("x",))
    except event_data.DataError as error:
        return error.field, error.message
    return None


_FIELDS = {"a": (False, event_data._COUNT), "bb": (True, event_data._ORG), "c": (False, event_data._TAG)}
_OPTIONAL = {name: (False, check) for name, (_, check) in _FIELDS.items()}
_member_values = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["site", "BAG-1", "a", "", "-x"]),
                           st.text(max_size=4))


@SETTINGS
@given(st.one_of(st.dictionaries(st.sampled_from(["a", "bb", "c", "d", "A", "é", ""]), _member_values, max_size=5),
                 _member_values, st.lists(st.integers(), max_size=2)))
def test_an_object_is_judged_as_before_with_the_same_field_and_message(value: Any) -> None:
    for fields in (_FIELDS, _OPTIONAL):
        assert _outcome(event_data._object(fields), value) == _outcome(_object_before(fields), value)


class _Str(str):
    pass


@SETTINGS
@given(st.one_of(st.text(max_size=45), st.text(alphabet="abcXYZ019-_", max_size=45), st.integers(), st.none(),
                 st.builds(_Str, st.text(alphabet="abcXYZ019-", max_size=45))))
def test_identifiers_are_judged_as_the_predicates_judge_them(value: Any) -> None:
    for check, predicate in ((event_data._ORG, is_org_id), (event_data._TAG, is_tag_id)):
        assert (_outcome(check, value) is None) == predicate(value)
    revoked = {"key": value, "reason": "lost"}  # key_revoked's "key": a key id
    assert (_outcome(event_data._DATA["key_revoked"], revoked) is None) == is_key_id(value)


# --- TagState.canonical: one format per side of the origin, against the former writer (a call per member) ------

def _record_before(state: TagState) -> bytes:
    """`TagState.canonical` as it was written before it became two `%` formats (the reference here)."""
    def text(value: str | None) -> bytes:
        return b"null" if value is None else b'"' + value.encode("ascii") + b'"'

    def number(value: int | None) -> bytes:
        return b"null" if value is None else str(value).encode("ascii")

    def tags(values: tuple[str, ...]) -> bytes:
        return b"[" + b",".join(b'"' + v.encode("ascii") + b'"' for v in values) + b"]"

    return b"".join((
        b'{"dispatched_mass_g":', number(state.dispatched_mass_g), b',"events":', number(state.events),
        b',"head":{"hash":"', state.head_hash.hex().encode("ascii"), b'","seq":', number(state.head_seq),
        b'},"holder":', text(state.holder), b',"inputs":', tags(state.inputs),
        b',"issued_to":', text(state.issued_to), b',"last_time":', text(state.last_time),
        b',"lot":', text(state.lot), b',"mass_g":', number(state.mass_g),
        b',"origin":', b"null" if state.origin is None else state.origin,
        b',"outputs":', tags(state.outputs), b',"parent":', text(state.parent),
        b',"pending_recipient":', text(state.pending_recipient), b',"status":', text(state.status),
        b',"tag":', text(state.tag), b',"void_reason":', text(state.void_reason), b"}",
    ))


_ids = st.text(alphabet="abcXYZ019-_.:", min_size=1, max_size=20)
_maybe_id = st.none() | _ids
_maybe_int = st.none() | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)


@SETTINGS
@given(tag=_ids, issued_to=_ids, head=st.binary(min_size=32, max_size=32), seq=st.integers(0, 2**40),
       last_time=_ids, holder=_maybe_id, pending=_maybe_id, lot=_maybe_id, parent=_maybe_id, void=_maybe_id,
       status=st.sampled_from(["issued", "in_custody", "in_transit", "merged", "split", "consumed", "voided"]),
       dispatched=_maybe_int, mass=_maybe_int, events=st.integers(1, 10**6),
       inputs=st.lists(_ids, max_size=4).map(tuple), outputs=st.lists(_ids, max_size=4).map(tuple),
       origin=st.none() | st.dictionaries(st.sampled_from(["site", "pit", "mineral", "gps"]),
                                          st.none() | st.text(max_size=8) | _maybe_int))
def test_a_state_record_is_written_as_the_former_writer_wrote_it(
    tag: str, issued_to: str, head: bytes, seq: int, last_time: str, holder: str | None, pending: str | None,
    lot: str | None, parent: str | None, void: str | None, status: str, dispatched: int | None, mass: int | None,
    events: int, inputs: tuple[str, ...], outputs: tuple[str, ...], origin: dict[str, Any] | None,
) -> None:
    state = TagState(tag, issued_to, head, seq, last_time)
    state.holder, state.pending_recipient, state.lot = holder, pending, lot
    state.parent, state.void_reason = parent, void
    state.status, state.dispatched_mass_g, state.mass_g, state.events = status, dispatched, mass, events
    state.inputs, state.outputs = inputs, outputs
    state.origin = None if origin is None else jcs(origin)
    record = state.canonical()
    assert record == _record_before(state)
    assert record == jcs(state.to_json())
    assert TagState.from_record(record).canonical() == record


@SETTINGS
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=64), st.uuids().map(str)), min_size=1, max_size=20))
def test_the_fingerprint_from_a_keyed_state_equals_keyed_blake2b(pairs: list[tuple[bytes, str]]) -> None:
    """`fingerprint` (and `check_entry`'s id_fingerprint) copy a BLAKE2b state that absorbed the key once: the
    same 64 bits as hashing with the key each time, for any key, in any order of keys and ids."""
    for key, event_id in pairs + pairs[::-1]:
        expected = int.from_bytes(hashlib.blake2b(event_id.encode("ascii"), digest_size=8, key=key).digest(), "big")
        assert fingerprint(event_id, key) == expected
        assert fingerprint(event_id, bytearray(key)) == expected
