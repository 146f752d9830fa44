"""Streams and the signed event envelope -- docs/protocol.md sections 3 and 4.

An envelope is ``{"body": {...}, "sig": "<base64url Ed25519 signature over jcs(body)>"}``.
:meth:`Envelope.from_json` checks its *structure* (section 4: the exact field set, the types and
the encodings of section 2); the type-specific ``data`` of section 6 and the rules of section 7
are checked by whoever replays the log.  The one exception is ``tags_issued``: its tags are
streams (section 3), so :func:`streams_of` expands and checks ``data.tags`` and ``data.ranges``.

Every structural problem is an :class:`EnvelopeError` with the rule ``envelope.malformed`` and a
JSON Pointer (RFC 6901) into the envelope, as section 8 answers it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from verification.canonical import MAX_SAFE_INTEGER, NonCanonicalValue, jcs, jcs_parsed, json_pointer
from verification.encoding import (
    HASH_RE,
    EncodingError,
    b64url_encode,
    decode_signature,
    is_hash,
    is_key_id,
    is_org_id,
    is_tag_id,
    is_uuid,
    parse_time,
    sha256_hex,
)

__all__ = [
    "BODY_VERSION",
    "MAX_ISSUED_TAGS",
    "MAX_RANGE_WIDTH",
    "Envelope",
    "EnvelopeError",
    "envelope_bytes",
    "envelope_hash",
    "expand_tag_ranges",
    "is_stream",
    "issued_among",
    "issued_tags",
    "prev_hashes",
    "sign_body",
    "signing_bytes",
    "streams_of",
    "verify_signature",
]

BODY_VERSION = 1
"""The event body format version, ``body.v`` (section 4)."""
MAX_ISSUED_TAGS = 10_000
"""At most this many tags per ``tags_issued`` event (section 6), and per range."""
MAX_RANGE_WIDTH = 12
"""The largest ``width`` of a tag range."""

ENVELOPE_FIELDS = ("body", "sig")
BODY_FIELDS = ("v", "id", "type", "stream", "prev", "links", "actor", "key", "time", "data")
"""The body fields of section 4, in the order of its table."""
OPTIONAL_BODY_FIELDS = frozenset({"links"})
RANGE_FIELDS = ("prefix", "start", "count", "width")

STREAM_RE = re.compile(
    r"ledger|(org|site):[a-z0-9][a-z0-9-]{1,39}|(tag|incident):[A-Z0-9][A-Z0-9-]{2,39}", re.ASCII
)
"""A stream name (sections 3 and 6): ``ledger``, ``org:<organisation id>``, ``tag:<tag id>``,
``incident:<incident id>`` or ``site:<site organisation id>``."""
_TAG_PREFIX_RE = re.compile(r"[A-Z0-9-]{0,39}", re.ASCII)


class EnvelopeError(ValueError):
    """The envelope does not match sections 1, 2, 3 and 4: rule ``envelope.malformed``.

    ``field`` is a JSON Pointer into the envelope (``""`` is the envelope itself, e.g.
    ``/body/prev`` or ``/body/data/ranges/0/width``); ``message`` says what is wrong.
    """

    rule = "envelope.malformed"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field or '/'}: {message}")


def _pointer(*path: str | int) -> str:
    return json_pointer(path)


def _is_int(value: object) -> bool:
    return type(value) is int  # a bool is not an integer (section 1)


def is_stream(value: object) -> bool:
    """True for a stream name (section 3)."""
    return isinstance(value, str) and STREAM_RE.fullmatch(value) is not None


# --------------------------------------------------------------------------------------------
# Structure (section 4)
# --------------------------------------------------------------------------------------------


def _check_members(
    obj: dict[str, Any], fields: tuple[str, ...], optional: frozenset[str], *at: str | int
) -> None:
    """``obj`` has every field of ``fields`` not in ``optional``, and no other member."""
    for name in fields:
        if name not in obj and name not in optional:
            raise EnvelopeError(_pointer(*at, name), f"{name} is required")
    allowed = set(fields)
    if obj.keys() <= allowed:  # the usual case: no member to name, no need to sort them
        return
    for name in sorted(obj, key=str):
        if name not in allowed:
            raise EnvelopeError(_pointer(*at, str(name)), f"{name!r} is not a field here")


def _check_body(body: Any) -> None:
    if type(body) is not dict:
        raise EnvelopeError("/body", "body is not an object")
    _check_members(body, BODY_FIELDS, OPTIONAL_BODY_FIELDS, "body")

    if not _is_int(body["v"]) or body["v"] != BODY_VERSION:
        raise EnvelopeError("/body/v", f"v is not the integer {BODY_VERSION}")
    if not is_uuid(body["id"]):
        raise EnvelopeError("/body/id", "id is not a UUID in lowercase canonical form")
    if type(body["type"]) is not str:
        raise EnvelopeError("/body/type", "type is not a string")
    stream = body["stream"]
    if not is_stream(stream):
        raise EnvelopeError("/body/stream", "stream is not ledger, org:, tag:, incident: or site: with an id")
    if body["prev"] is not None and not is_hash(body["prev"]):
        raise EnvelopeError("/body/prev", "prev is neither null nor a lowercase hex SHA-256")
    if "links" in body:
        links = body["links"]
        if type(links) is not dict:
            raise EnvelopeError("/body/links", "links is not an object")
        if not _links_valid(links, stream):  # else find the first bad link in name order, as always
            _check_links(links, stream)
    if not is_org_id(body["actor"]):
        raise EnvelopeError("/body/actor", "actor is not an organisation id")
    if not is_key_id(body["key"]):
        raise EnvelopeError("/body/key", "key is not a key id (16 lowercase hex characters)")
    try:
        parse_time(body["time"])
    except EncodingError as error:
        raise EnvelopeError("/body/time", str(error)) from None
    if type(body["data"]) is not dict:
        raise EnvelopeError("/body/data", "data is not an object")


def _links_valid(links: dict[Any, Any], stream: str) -> bool:
    """True when every link is a stream name other than ``stream`` with a null or hash value: the usual case,
    checked without sorting the names or building a JSON Pointer for each (:func:`_check_links` finds the
    first bad one)."""
    for name, value in links.items():
        if (type(name) is not str or STREAM_RE.fullmatch(name) is None or name == stream
                or (value is not None and (type(value) is not str or HASH_RE.fullmatch(value) is None))):
            return False
    return True


def _check_links(links: dict[Any, Any], stream: str) -> None:
    """Raise for the first bad link, in name order."""
    for name in sorted(links, key=str):
        at = _pointer("body", "links", str(name))
        if not is_stream(name):
            raise EnvelopeError(at, f"{name!r} is not a stream name")
        if name == stream:
            raise EnvelopeError(at, "links names the event's own stream")
        if links[name] is not None and not is_hash(links[name]):
            raise EnvelopeError(at, "a link is neither null nor a lowercase hex SHA-256")


def _check_envelope(
    obj: Any, *, check_subset: bool, parsed: bool = False, fast: Callable[[Any], bytes | None] | None = None
) -> tuple[bytes | None, bytes]:
    """Check the structure; returns ``(jcs(body), the signature's 64 bytes)``, ``jcs(body)`` only with
    ``check_subset``, which also checks the JSON subset (with ``parsed``, ``obj`` came from :func:`parse_json`:
    inside the subset, encoded by :func:`jcs_parsed`); else ``None``. ``fast``: see :meth:`Envelope.from_json`."""
    if type(obj) is not dict:
        raise EnvelopeError("", "the envelope is not an object")
    _check_members(obj, ENVELOPE_FIELDS, frozenset())
    _check_body(obj["body"])
    try:
        signature = decode_signature(obj["sig"])
    except EncodingError as error:
        raise EnvelopeError("/sig", f"sig is not a base64url Ed25519 signature: {error}") from None
    if not check_subset:
        return None, signature
    # ``sig`` is a base64url string (checked above), always inside the subset, so the envelope is
    # inside it exactly when the body is: encoding the body checks it and gives the signed bytes.
    if fast is not None:
        body_bytes = fast(obj["body"])
        if body_bytes is not None:
            return body_bytes, signature
    try:
        return (jcs_parsed(obj["body"]) if parsed else jcs(obj["body"])), signature
    except NonCanonicalValue as error:
        raise EnvelopeError(json_pointer(("body", *error.path)), error.reason) from None


@dataclass(frozen=True)
class Envelope:
    """A signed event (section 4).  Build it with :meth:`from_json` to have it checked.

    ``body`` is kept as given (not copied): treat it as read-only.  ``body_bytes`` is
    ``jcs(body)`` when :meth:`from_json` computed it while checking (``None`` otherwise): the
    signed bytes and the envelope bytes are derived from it instead of encoding the body again;
    likewise ``sig_bytes``, the decoded signature :func:`verify_signature` checks.
    """

    body: dict[str, Any]
    sig: str
    body_bytes: bytes | None = field(default=None, compare=False, repr=False)
    sig_bytes: bytes | None = field(default=None, compare=False, repr=False)
    """``sig`` decoded, when :meth:`from_json` decoded it while checking (``None`` otherwise)."""

    @classmethod
    def from_json(
        cls, obj: Any, *, parsed: bool = False, fast: Callable[[Any], bytes | None] | None = None
    ) -> Envelope:
        """Check the structure of a parsed envelope (section 4) and wrap it.

        Raises :class:`EnvelopeError` (rule ``envelope.malformed``) naming the first field,
        in the order of section 4's table, that is missing, unknown, of the wrong type or
        badly encoded -- including any value outside the JSON subset of section 1.
        ``parsed``: ``obj`` is what :func:`parse_json` returned, unchanged (it is then inside the
        subset, and its canonical bytes are written faster, :func:`jcs_parsed`).
        ``fast``: a faster :func:`jcs` of the body, once its structure is checked, that returns either
        exactly ``jcs(body)`` or ``None`` where it cannot tell (then :func:`jcs` writes it, or says what
        is outside the subset). The server's writer passes an orjson-based one; this module needs none.
        """
        body_bytes, sig_bytes = _check_envelope(obj, check_subset=True, parsed=parsed, fast=fast)
        return cls(body=obj["body"], sig=obj["sig"], body_bytes=body_bytes, sig_bytes=sig_bytes)

    @classmethod
    def _from_canonical(cls, obj: Any) -> Envelope:
        """:meth:`from_json` for an object just parsed from canonical bytes (section 5)."""
        _, sig_bytes = _check_envelope(obj, check_subset=False)
        return cls(body=obj["body"], sig=obj["sig"], sig_bytes=sig_bytes)

    def to_json(self) -> dict[str, Any]:
        """The envelope as a JSON object, ``{"body": ..., "sig": ...}``."""
        return {"body": self.body, "sig": self.sig}

    def signed_bytes(self) -> bytes:
        """``jcs(body)``, the bytes ``sig`` signs (raises :class:`NonCanonicalValue` outside the subset)."""
        return self.body_bytes if self.body_bytes is not None else signing_bytes(self.body)


# --------------------------------------------------------------------------------------------
# Signature and hash (section 4)
# --------------------------------------------------------------------------------------------


def signing_bytes(body: dict[str, Any]) -> bytes:
    """The bytes the actor signs: ``jcs(body)``."""
    return jcs(body)


def envelope_bytes(envelope: Envelope) -> bytes:
    """The canonical envelope: ``jcs({"body": body, "sig": sig})``.

    JCS sorts ``"body"`` before ``"sig"``, so this is ``{"body":`` + ``jcs(body)`` + ``,"sig":``
    + ``jcs(sig)`` + ``}``, built from the body bytes the envelope already has.
    """
    return b'{"body":' + envelope.signed_bytes() + b',"sig":' + jcs(envelope.sig) + b"}"


def envelope_hash(envelope: Envelope) -> str:
    """The envelope hash: ``sha256_hex(jcs(envelope))``, over the whole envelope with ``sig``.

    This is what ``prev`` and ``links`` of later events name.
    """
    return sha256_hex(envelope_bytes(envelope))


@functools.lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    """The key object of a raw public key, built once per key (a ledger has few keys and checks many
    signatures with each; a key that does not load raises, and is not kept)."""
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(public_key_raw: bytes, envelope: Envelope) -> bool:
    """True if ``sig`` is an Ed25519 (RFC 8032) signature by ``public_key_raw`` over jcs(body).

    Never raises for a bad envelope: an undecodable ``sig`` or a body outside the JSON subset
    simply does not verify.  Raises ``ValueError`` if ``public_key_raw`` is not 32 bytes.
    Whether the key is the actor's key ``body.key`` is the caller's question (rule
    ``key.unknown``).
    """
    if type(public_key_raw) is bytes:
        public_key = _public_key(public_key_raw)
    else:  # e.g. a bytearray: not hashable, loaded each time
        public_key = Ed25519PublicKey.from_public_bytes(public_key_raw)
    try:
        signature = envelope.sig_bytes if envelope.sig_bytes is not None else decode_signature(envelope.sig)
        message = envelope.signed_bytes()
    except (EncodingError, NonCanonicalValue):
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def sign_body(
    private_key: Ed25519PrivateKey, body: dict[str, Any], *, check: bool = True
) -> Envelope:
    """Sign ``body`` with ``private_key`` (client side, section 4) and return the envelope.

    With ``check`` (the default) the result is checked like :meth:`Envelope.from_json`;
    ``check=False`` signs anything inside the JSON subset (for building bad examples).
    """
    sig = b64url_encode(private_key.sign(signing_bytes(body)))
    if check:
        return Envelope.from_json({"body": body, "sig": sig})
    return Envelope(body=body, sig=sig)


# --------------------------------------------------------------------------------------------
# Streams (section 3) and the tags of tags_issued (section 6)
# --------------------------------------------------------------------------------------------


def _range_tags(data: dict[str, Any], issued_before: int) -> list[tuple[str, str]]:
    """(pointer, tag id) for every tag of ``data.ranges``, in order, with their checks."""
    if "ranges" not in data:
        return []
    ranges = data["ranges"]
    if type(ranges) is not list:
        raise EnvelopeError("/body/data/ranges", "ranges is not a list")
    tags: list[tuple[str, str]] = []
    for j, tag_range in enumerate(ranges):
        at = ("body", "data", "ranges", j)
        if type(tag_range) is not dict:
            raise EnvelopeError(_pointer(*at), "a range is not an object")
        _check_members(tag_range, RANGE_FIELDS, frozenset(), *at)
        prefix, start = tag_range["prefix"], tag_range["start"]
        count, width = tag_range["count"], tag_range["width"]
        if type(prefix) is not str or not _TAG_PREFIX_RE.fullmatch(prefix):
            raise EnvelopeError(_pointer(*at, "prefix"), "prefix is not part of a tag id")
        if not _is_int(start) or not 0 <= start <= MAX_SAFE_INTEGER:
            raise EnvelopeError(_pointer(*at, "start"), "start is not an integer >= 0")
        if not _is_int(count) or not 1 <= count <= MAX_ISSUED_TAGS:
            raise EnvelopeError(
                _pointer(*at, "count"), f"count is not an integer in 1..{MAX_ISSUED_TAGS}"
            )
        if not _is_int(width) or not 1 <= width <= MAX_RANGE_WIDTH:
            raise EnvelopeError(
                _pointer(*at, "width"), f"width is not an integer in 1..{MAX_RANGE_WIDTH}"
            )
        if issued_before + len(tags) + count > MAX_ISSUED_TAGS:
            raise EnvelopeError(
                _pointer(*at, "count"), f"the event issues more than {MAX_ISSUED_TAGS} tags"
            )
        pointer = _pointer(*at)  # once per range, not per tag (a range issues up to 10,000)
        for i in range(count):
            # prefix + zero-padded(start + i, width); a longer number is not cut.
            tag = prefix + str(start + i).zfill(width)
            if not is_tag_id(tag):
                raise EnvelopeError(pointer, f"the range issues {tag!r}, not a tag id")
            tags.append((pointer, tag))
    return tags


def _listed_tags(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(pointer, tag id) for every tag of ``data.tags``, in order, with their checks."""
    if "tags" not in data:
        return []
    listed = data["tags"]
    if type(listed) is not list:
        raise EnvelopeError("/body/data/tags", "tags is not a list")
    if len(listed) > MAX_ISSUED_TAGS:
        raise EnvelopeError("/body/data/tags", f"the event issues more than {MAX_ISSUED_TAGS} tags")
    tags: list[tuple[str, str]] = []
    for i, tag in enumerate(listed):
        if not is_tag_id(tag):
            raise EnvelopeError(_pointer("body", "data", "tags", i), f"{tag!r} is not a tag id")
        tags.append((_pointer("body", "data", "tags", i), tag))
    return tags


def _distinct(tags: list[tuple[str, str]]) -> list[str]:
    seen: set[str] = set()
    for at, tag in tags:
        if tag in seen:
            raise EnvelopeError(at, f"tag {tag} is issued twice")
        seen.add(tag)
    return [tag for _, tag in tags]


def expand_tag_ranges(data: dict[str, Any]) -> list[str]:
    """The tag ids that ``data.ranges`` of a ``tags_issued`` event issues (section 6), in order.

    A range ``{"prefix", "start", "count", "width"}`` issues ``prefix + zero-padded(start + i,
    width)`` for ``i`` in ``0..count-1`` (``str(start + i).zfill(width)``: a number longer than
    ``width`` keeps all its digits).  Checks: exactly those four fields; ``prefix`` a string of
    ``A-Z 0-9 -``; ``start >= 0``; ``count`` in 1..10000; ``width`` in 1..12; at most 10000 tags
    in all; every generated id a tag id; no id generated twice.  Returns ``[]`` without
    ``ranges``.  Raises :class:`EnvelopeError` with ``field`` under ``/body/data/ranges``.
    """
    return _distinct(_range_tags(data, 0))


def issued_tags(data: dict[str, Any]) -> list[str]:
    """All tag ids a ``tags_issued`` event issues: ``data.tags`` then ``data.ranges`` (section 6).

    Together they must be 1..10000 distinct tag ids.  Raises :class:`EnvelopeError`.
    """
    listed = _listed_tags(data)
    tags = _distinct(listed + _range_tags(data, len(listed)))
    if not tags:
        raise EnvelopeError("/body/data", "tags_issued issues no tag (give tags or ranges)")
    return tags


def issued_among(data: dict[str, Any], wanted: set[str]) -> list[str]:
    """The tags of ``wanted`` that a valid ``tags_issued`` ``data`` issues, without expanding its ranges.

    Equal to ``[t for t in issued_tags(data) if t in wanted]`` as a set, for data that
    :func:`issued_tags` accepts, but costs O(len(wanted)) per range instead of O(count): a tag ``t``
    is in range ``r`` iff ``t = r.prefix + digits`` and ``str(int(digits)).zfill(r.width) == digits``
    with ``r.start <= int(digits) < r.start + r.count``.
    """
    found = [t for t in data.get("tags") or () if t in wanted]
    for r in data.get("ranges") or ():
        prefix, start, count, width = r["prefix"], r["start"], r["count"], r["width"]
        for tag in wanted:
            digits = tag[len(prefix):]
            if tag.startswith(prefix) and digits.isascii() and digits.isdigit():
                number = int(digits)
                if start <= number < start + count and str(number).zfill(width) == digits:
                    found.append(tag)
    return found


def prev_hashes(body: dict[str, Any]) -> dict[str, str | None]:
    """The streams the event *joins*, each with the hash it names as that stream's head.

    ``{stream: prev, **links}`` (section 3); streams the event creates are not in it.
    """
    return {body["stream"]: body["prev"], **body.get("links", {})}


def streams_of(body: dict[str, Any]) -> list[str]:
    """Every stream of an event (section 3), for a body :meth:`Envelope.from_json` accepted.

    In order: ``stream``; the keys of ``links``, sorted; for ``tags_issued`` only, ``tag:<id>``
    for every tag it issues (streams it creates), in the order of :func:`issued_tags`.
    Raises :class:`EnvelopeError` for bad ``tags``/``ranges`` or if the event would both join
    and create the same stream.
    """
    streams = [body["stream"], *sorted(body.get("links", {}))]
    if body["type"] == "tags_issued":
        joined = set(streams)
        for tag in issued_tags(body["data"]):
            if "tag:" + tag in joined:
                raise EnvelopeError(
                    _pointer("body", "links", "tag:" + tag), f"tag {tag} is both linked and issued"
                )
            streams.append("tag:" + tag)
    return streams
