"""Encodings of primitive values -- docs/protocol.md section 2.

Every check here is exact and ASCII-only: patterns are matched with ``re.fullmatch`` on
``re.ASCII`` patterns (so ``\\d`` never matches a non-ASCII digit and ``$`` never accepts a
trailing newline), and base64url is accepted only in its one canonical, unpadded form.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from datetime import datetime, timezone

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "EncodingError",
    "b64url_decode",
    "b64url_encode",
    "decode_public_key",
    "decode_signature",
    "format_time",
    "is_hash",
    "is_key_id",
    "is_org_id",
    "is_tag_id",
    "is_time",
    "is_uuid",
    "key_id",
    "parse_time",
    "sha256_hex",
]

PUBLIC_KEY_SIZE = 32
"""Bytes in a raw Ed25519 public key (43 base64url characters)."""
SIGNATURE_SIZE = 64
"""Bytes in an Ed25519 signature (86 base64url characters)."""

HASH_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
"""A hash: lowercase hex of SHA-256."""
KEY_ID_RE = re.compile(r"[0-9a-f]{16}", re.ASCII)
"""A key id (``kid``): the first 16 lowercase hex characters of SHA-256(raw public key)."""
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
"""An event id: a UUID in lowercase canonical 8-4-4-4-12 form (any version)."""
ORG_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,39}", re.ASCII)
"""An organisation id."""
TAG_ID_RE = re.compile(r"[A-Z0-9][A-Z0-9-]{2,39}", re.ASCII)
"""A tag id."""
TIME_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<clock>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,6}))?Z",
    re.ASCII,
)
"""A time: RFC 3339 in UTC with a ``Z`` suffix, ``YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z``."""
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)


class EncodingError(ValueError):
    """A primitive value that does not have the encoding section 2 requires."""


# --------------------------------------------------------------------------------------------
# base64url (RFC 4648 section 5) without padding
# --------------------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """``data`` in base64url without padding (RFC 4648 section 5; RFC 7515 appendix C)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, size: int | None = None) -> bytes:
    """Decode unpadded base64url, strictly.

    Only the canonical encoding is accepted: no ``=`` padding, no characters outside
    ``A-Z a-z 0-9 - _`` (no whitespace, no ``+``/``/``), no impossible length, and the unused
    low bits of the last character must be zero -- so each byte string has exactly one text.
    With ``size``, the decoded value must be exactly ``size`` bytes long.
    """
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text):
        raise EncodingError("not unpadded base64url")
    if len(text) % 4 == 1:
        raise EncodingError("base64url text has an impossible length")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as error:  # pragma: no cover - excluded by the checks above
        raise EncodingError(f"not base64url: {error}") from None
    if b64url_encode(data) != text:
        raise EncodingError("non-canonical base64url: unused bits are not zero")
    if size is not None and len(data) != size:
        raise EncodingError(f"decodes to {len(data)} bytes, expected {size}")
    return data


def decode_public_key(text: str) -> bytes:
    """A public key: raw 32-byte Ed25519 key, base64url without padding (43 characters)."""
    return b64url_decode(text, PUBLIC_KEY_SIZE)


def decode_signature(text: str) -> bytes:
    """A signature: 64-byte Ed25519 signature, base64url without padding (86 characters)."""
    return b64url_decode(text, SIGNATURE_SIZE)


# --------------------------------------------------------------------------------------------
# Hashes and key ids
# --------------------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    """A hash: lowercase hex of SHA-256 (64 characters)."""
    return hashlib.sha256(data).hexdigest()


def key_id(raw_public_key: bytes) -> str:
    """The ``kid`` of a key: the first 16 lowercase hex characters of SHA-256(raw 32-byte key)."""
    if len(raw_public_key) != PUBLIC_KEY_SIZE:
        raise EncodingError(f"a raw Ed25519 public key is {PUBLIC_KEY_SIZE} bytes")
    return sha256_hex(raw_public_key)[:16]


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """Parse a protocol time, ``YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z``, into an aware UTC datetime.

    Times are compared as instants: ``...:00Z``, ``...:00.0Z`` and ``...:00.000000Z`` are equal.
    Raises :class:`EncodingError` for anything else, including impossible dates and times
    (``2026-02-30``, hour 24, leap second 60), offsets other than ``Z``, lowercase ``t``/``z``.
    """
    if type(text) is not str:
        raise EncodingError(f"not a time YYYY-MM-DDTHH:MM:SS[.ffffff]Z: {text!r}")
    return _parse_time(text)


@functools.lru_cache(maxsize=1 << 16)
def _parse_time(text: str) -> datetime:
    """:func:`parse_time` of a ``str``, memoised: replaying a log parses the same times many times."""
    match = TIME_RE.fullmatch(text)
    if match is None:
        raise EncodingError(f"not a time YYYY-MM-DDTHH:MM:SS[.ffffff]Z: {text!r}")
    year, month, day = map(int, match["date"].split("-"))
    hour, minute, second = map(int, match["clock"].split(":"))
    microsecond = int((match["fraction"] or "").ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=timezone.utc)
    except ValueError as error:
        raise EncodingError(f"not a valid time: {text!r} ({error})") from None


def format_time(moment: datetime) -> str:
    """Format an aware datetime as a protocol time in UTC, always with 6 fractional digits.

    ``format_time(parse_time(t))`` is the same instant as ``t``; it equals ``t`` when ``t`` has
    6 fractional digits.  Naive datetimes are refused (their instant is unknown).
    """
    if moment.utcoffset() is None:
        raise EncodingError("a naive datetime has no instant; give it a timezone")
    utc = moment.astimezone(timezone.utc)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


# --------------------------------------------------------------------------------------------
# Identifiers
# --------------------------------------------------------------------------------------------


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def is_hash(value: object) -> bool:
    """True for a hash: 64 lowercase hex characters."""
    return _matches(HASH_RE, value)


def is_key_id(value: object) -> bool:
    """True for a key id: 16 lowercase hex characters."""
    return _matches(KEY_ID_RE, value)


def is_uuid(value: object) -> bool:
    """True for an event id: a UUID in lowercase canonical 8-4-4-4-12 form."""
    return _matches(UUID_RE, value)


def is_org_id(value: object) -> bool:
    """True for an organisation id: ``^[a-z0-9][a-z0-9-]{1,39}$``."""
    return _matches(ORG_ID_RE, value)


def is_tag_id(value: object) -> bool:
    """True for a tag id: ``^[A-Z0-9][A-Z0-9-]{2,39}$``."""
    return _matches(TAG_ID_RE, value)


def is_time(value: object) -> bool:
    """True for a protocol time that :func:`parse_time` accepts."""
    try:
        parse_time(value)  # type: ignore[arg-type]
    except EncodingError:
        return False
    return True
