"""The checks of one log entry that need no state: what the replay's worker processes do.

:func:`check_entry` takes the exact bytes of one log entry and returns a :class:`CheckedEntry`, the few
fields the sequential checks need (no parsed envelope, no entry bytes), or an :class:`EntryProblem`
naming the first rule the bytes break on their own:

- ``entry.malformed`` -- not the canonical encoding of a log entry ``{"v": 1, "seq", "received",
  "envelope"}`` (docs/protocol.md sections 1, 2 and 5);
- ``envelope.malformed`` -- the envelope, its body, or its ``data`` do not match sections 4 and 6
  (:func:`verification.event_data.check_event_shape`);

and computes what is expensive: the envelope hash, the Merkle leaf hash ``SHA-256(0x00 || entry)``, a keyed
fingerprint of the event id, and the Ed25519 signature check against the public key named by ``key``.

Which public key ``key`` names is only known from the registry as it stands at this point of the log. The
caller passes ``public_key_of(kid)``: the replay's registry itself when run sequentially, or a hint table
in a worker process (keys are registered before they are used and a ``kid`` names one key, so a table of
every key seen so far will do). The result records the key the signature was checked with
(``signature_key``); the sequential replay accepts the result only if that is the key its registry holds
for ``kid`` at that point, and checks the signature itself otherwise.
"""

from __future__ import annotations

import binascii
import datetime
import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verification.canonical import MAX_SAFE_INTEGER, sorted_compact
from verification.encoding import (
    HASH_RE,
    KEY_ID_RE,
    ORG_ID_RE,
    UUID_RE,
    b64url_decode,
    decode_public_key,
)
from verification.entry import EntryError, decode_entry
from verification.envelope import STREAM_RE
from verification.event_data import DataError, check_event_shape

__all__ = ["CheckedEntry", "EntryProblem", "SignatureChecker", "check_entry", "fingerprint", "normalize_time",
           "signature_checker"]

_ENTRY_HEAD = b'{"envelope":'
_new_checked = tuple.__new__
_sha256 = hashlib.sha256
_blake2b = hashlib.blake2b
_LEAF = hashlib.sha256(b"\x00")  # RFC 9162: a leaf hash is SHA-256(0x00 || entry) (verification.merkle.leaf_hash)
_RECEIVED_MARK = b',"received":"'
_BODY_HEAD = b'{"body":'
_SIG_MARK = b',"sig":"'


class CheckedEntry(NamedTuple):
    """One entry that passed the stateless checks, reduced to what the sequential checks use.

    Times are normalised to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (:func:`normalize_time`), so that comparing
    two of them as strings compares the instants. Hashes are raw 32-byte digests.
    """

    seq: int
    received: str  # normalised
    type: str
    stream: str
    prev: bytes | None
    links: tuple[tuple[str, bytes | None], ...]  # in the entry's (canonical, sorted) order
    actor: str
    key: str  # the kid
    time: str  # normalised
    time_text: str  # as written in the body
    event_id: str
    id_fingerprint: int  # keyed 64-bit fingerprint of event_id (see verification.event_ids)
    hash: bytes  # the envelope hash
    leaf: bytes  # the Merkle leaf hash of the entry
    signature_key: bytes | None  # the raw public key the signature was checked with (None: not checked)
    signature_ok: bool
    data: dict[str, Any]
    issued: tuple[str, ...] | None  # the tags a tags_issued event issues, in order


class EntryProblem(NamedTuple):
    """The first rule that the bytes of one entry break on their own."""

    rule: str
    field: str
    message: str


def normalize_time(text: str) -> str:
    """A protocol time (already checked) written with 6 fractional digits: string order = instant order."""
    if len(text) == 20:  # YYYY-MM-DDTHH:MM:SSZ
        return text[:19] + ".000000Z"
    if len(text) == 27:
        return text
    return text[:-1].ljust(26, "0") + "Z"


@functools.lru_cache(maxsize=16)
def _keyed(key: bytes) -> Any:
    """A BLAKE2b state (8-byte digest) that has absorbed ``key`` (a replay uses one key): a copy of it hashes a
    message as ``blake2b(message, digest_size=8, key=key)`` does, without compressing the key's block again
    (1.2 us instead of 2.2 us for an event id)."""
    return _blake2b(digest_size=8, key=key)


def fingerprint(event_id: str, key: bytes) -> int:
    """The keyed 64-bit fingerprint of an event id (BLAKE2b with ``key``, first 8 bytes, big-endian)."""
    state = _keyed(key if type(key) is bytes else bytes(key)).copy()
    state.update(event_id.encode("ascii"))
    return int.from_bytes(state.digest(), "big")


class SignatureChecker:
    """Ed25519 verification with the public key objects cached by raw key (there are few keys).

    The reference: OpenSSL through ``cryptography``. A replay may be given another checker by
    :func:`signature_checker`; it must give this one's verdict on every signature.
    """

    engine = "openssl"  # what verifies, named in the audit's report

    def __init__(self) -> None:
        self._keys: dict[bytes, Ed25519PublicKey] = {}

    def verify(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        key = self._keys.get(public_key)
        if key is None:
            key = self._keys[public_key] = Ed25519PublicKey.from_public_bytes(public_key)
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def signature_checker(factory: str | None = None) -> SignatureChecker:
    """A new signature checker: :class:`SignatureChecker` if ``factory`` is None, otherwise what calling the object
    named by ``factory`` (``"package.module:name"``) returns -- something with ``verify(public_key, signature,
    message) -> bool`` and an ``engine`` name. A dotted path rather than an object, so that a replay's worker
    processes can import it themselves (e.g. ``tagledger audit`` names ``ledger.fast_signatures:SignatureChecker``;
    verification/ imports nothing of the kind by itself)."""
    if factory is None:
        return SignatureChecker()
    module_name, _, name = factory.partition(":")
    if not module_name or not name:
        raise ValueError(f"a signature checker factory is 'module:name', not {factory!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)()  # type: ignore[no-any-return]


# --- decoding: a fast path for the common case, the reference decoder for everything else -------------
#
# `verification.entry.decode_entry` is the reference reader of section 5. `_decode_fast` accepts a subset
# of what it accepts -- ASCII entries that pass every one of its checks -- about twice as fast: the C JSON
# parser (with floats, NaN/Infinity and integers beyond 2**53 - 1 refused) and the C encoder for the
# canonical comparison. On ASCII text, `json.dumps(sort_keys=True, separators=(",", ":"),
# ensure_ascii=False)` *is* jcs: names sort by code point, which for ASCII is the UTF-16 order, and strings
# are escaped by the same `encode_basestring`. A repeated member name or any whitespace makes the re-encoding
# differ from the bytes. Whatever the fast path does not accept goes to the reference, which either accepts
# it too (e.g. non-ASCII text) or says precisely what is wrong.


class _Refused(Exception):
    pass


def _refuse(_text: str) -> NoReturn:
    raise _Refused


def _integer(text: str) -> int:
    number = int(text)
    if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        raise _Refused
    return number


_DECODER = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse, parse_int=_integer)
_SCAN = _DECODER.scan_once  # the C scanner, without the whitespace handling of `decode`
# A signature is 64 bytes: 86 base64url characters whose last one carries 2 bits of data and 4 unused bits,
# which must be zero (the canonical form: `verification.encoding.b64url_decode`): A, Q, g or w.
_SIG_TEXT = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]", re.ASCII)
# A protocol time (section 2) with a real clock reading; the date's validity (month length, leap years,
# year 0000) is asked of `datetime` once per distinct date.
_TIME_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z",
                        re.ASCII)
_ENTRY_KEYS = frozenset({"v", "seq", "received", "envelope"})
_ENVELOPE_KEYS = frozenset({"body", "sig"})
_BODY_KEYS = frozenset({"v", "id", "type", "stream", "prev", "actor", "key", "time", "data"})
_BODY_KEYS_LINKED = _BODY_KEYS | {"links"}


def _is(regex: Any, value: Any) -> bool:
    return type(value) is str and regex.fullmatch(value) is not None


_UUID, _STREAM, _HASH, _ORG_ID, _KEY_ID = (r.fullmatch for r in (UUID_RE, STREAM_RE, HASH_RE, ORG_ID_RE, KEY_ID_RE))


@functools.lru_cache(maxsize=4096)
def _date_ok(year: str, month: str, day: str) -> bool:
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def _time_ok(value: Any) -> bool:
    """Whether ``verification.encoding.parse_time(value)`` would accept ``value`` (without building it)."""
    if type(value) is not str:
        return False
    match = _TIME_TEXT.fullmatch(value)
    return match is not None and _date_ok(*match.groups())


def _signature_of(sig: Any) -> bytes | None:
    """``verification.encoding.decode_signature(sig)``, or None where it raises."""
    if type(sig) is not str or _SIG_TEXT.fullmatch(sig) is None:
        return None
    return binascii.a2b_base64(sig.replace("-", "+").replace("_", "/") + "==")


def _decode_fast(raw: bytes) -> tuple[int, str, dict[str, Any], bytes] | None:
    """(seq, received, body, signature) of a canonical ASCII entry that passes every check of the reference
    reader, or None (then ask the reference)."""
    if not raw.isascii():
        return None
    text = raw.decode("ascii")
    try:
        entry, end = _SCAN(text, 0)
    except (StopIteration, _Refused, ValueError, RecursionError):
        return None
    if (end != len(text) or type(entry) is not dict or entry.keys() != _ENTRY_KEYS
            or sorted_compact(entry) != text):
        return None
    seq, received, envelope = entry["seq"], entry["received"], entry["envelope"]
    if entry["v"] != 1 or type(entry["v"]) is not int or type(seq) is not int or seq < 0:
        return None
    if type(envelope) is not dict or envelope.keys() != _ENVELOPE_KEYS:
        return None
    body = envelope["body"]
    if type(body) is not dict or (body.keys() != _BODY_KEYS and body.keys() != _BODY_KEYS_LINKED):
        return None
    stream, prev, event_id, actor, key = body["stream"], body["prev"], body["id"], body["actor"], body["key"]
    if not (
        type(body["v"]) is int and body["v"] == 1
        and type(event_id) is str and _UUID(event_id) is not None
        and type(body["type"]) is str
        and type(stream) is str and _STREAM(stream) is not None
        and (prev is None or (type(prev) is str and _HASH(prev) is not None))
        and type(actor) is str and _ORG_ID(actor) is not None
        and type(key) is str and _KEY_ID(key) is not None
        and type(body["data"]) is dict
    ):
        return None
    links = body.get("links")
    if links is not None:
        if type(links) is not dict:
            return None
        for name, value in links.items():
            if name == stream or not _is(STREAM_RE, name) or not (value is None or _is(HASH_RE, value)):
                return None
    signature = _signature_of(envelope["sig"])
    if signature is None or not _time_ok(received) or not _time_ok(body["time"]):
        return None
    return seq, received, body, signature


def _decode(raw: bytes) -> tuple[int, str, dict[str, Any], bytes] | EntryProblem:
    fast = _decode_fast(raw)
    if fast is not None:
        return fast
    try:
        entry = decode_entry(raw)
    except EntryError as error:
        if error.field.startswith("/envelope"):
            return EntryProblem("envelope.malformed", error.field.removeprefix("/envelope"), error.message)
        return EntryProblem("entry.malformed", error.field, error.message)
    return entry.seq, entry.received, entry.envelope.body, b64url_decode(entry.envelope.sig)


def check_entry(
    raw: bytes,
    public_key_of: Callable[[str], bytes | None],
    id_key: bytes,
    signatures: SignatureChecker,
) -> CheckedEntry | EntryProblem:
    """Check the bytes of one log entry on their own (see the module docstring)."""
    raw = bytes(raw)
    decoded = _decode(raw)
    if type(decoded) is EntryProblem:
        return decoded
    seq, received, body, signature = decoded  # type: ignore[misc]
    try:
        issued = check_event_shape(body)
    except DataError as error:
        return EntryProblem("envelope.malformed", error.field, error.message)

    # The entry is canonical, so the envelope's bytes and the body's bytes are inside it verbatim
    # (section 5): the envelope is the first member, its "sig" is its last member, and neither a time
    # nor a base64url signature can contain the marks searched from the right.
    view = memoryview(raw)  # slices without copies, for the hash and the signature check
    envelope_end = raw.rindex(_RECEIVED_MARK)
    envelope = view[len(_ENTRY_HEAD) : envelope_end]
    signed = view[len(_ENTRY_HEAD) + len(_BODY_HEAD) : raw.rindex(_SIG_MARK, 0, envelope_end)]

    kind = body["type"]
    if kind == "ledger_created":
        public_key: bytes | None = decode_public_key(body["data"]["root_key"])
    else:
        public_key = public_key_of(body["key"])
    ok = public_key is not None and signatures.verify(public_key, signature, signed)

    prev = body["prev"]
    links = body.get("links")
    event_id = body["id"]
    time = body["time"]
    leaf = _LEAF.copy()
    leaf.update(raw)
    mark = _keyed(id_key if type(id_key) is bytes else bytes(id_key)).copy()  # fingerprint(event_id, id_key)
    mark.update(event_id.encode("ascii"))
    return _new_checked(CheckedEntry, (  # the fields in CheckedEntry's order, without a Python-level call
        seq,
        normalize_time(received),
        kind,
        body["stream"],
        None if prev is None else bytes.fromhex(prev),
        () if links is None else tuple(
            (name, None if value is None else bytes.fromhex(value)) for name, value in links.items()
        ),
        body["actor"],
        body["key"],
        normalize_time(time),
        time,
        event_id,
        int.from_bytes(mark.digest(), "big"),
        _sha256(envelope).digest(),
        leaf.digest(),
        public_key,
        ok,
        body["data"],
        None if issued is None else tuple(issued),
    ))
