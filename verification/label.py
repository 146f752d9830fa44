"""Signed QR labels (``tagledger/label/v1``) -- docs/protocol.md section 13.

A tag's QR code encodes an https URL in the spirit of GS1 Digital Link::

    {public_base_url}/t/{tag_id}?s={kid}.{sig}

``sig`` is the operator's Ed25519 signature (base64url, no padding) over :func:`label_message`: the
ledger's origin (the log key's name) and the tag id. Any phone camera opens the verification page; an
app that holds the operator's public keys checks the signature first, with no network, and so exposes a
fabricated tag number before it asks the ledger anything. The base URL is not signed: an app compares it
with the ledger it trusts.

Standard library and ``cryptography`` only, like the rest of ``verification/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from verification.encoding import (
    PUBLIC_KEY_SIZE,
    EncodingError,
    b64url_encode,
    decode_signature,
    is_key_id,
    is_tag_id,
    key_id,
)

__all__ = [
    "LABEL_DOMAIN",
    "MAX_URL_LENGTH",
    "LabelError",
    "LabelPayload",
    "format_label_url",
    "label_message",
    "parse_label",
    "parse_label_url",
    "sign_label",
    "verify_label",
]

LABEL_DOMAIN = b"tagledger-label/v1\n"
"""The first bytes of every signed label message (domain separation from envelopes and notes)."""
MAX_URL_LENGTH = 2048
"""A label URL longer than this is refused unread."""

_LABEL_RE = re.compile(r"([0-9a-f]{16})\.([A-Za-z0-9_-]{86})", re.ASCII)
_QUERY_RE = re.compile(r"s=([0-9a-f]{16}\.[A-Za-z0-9_-]{86})", re.ASCII)
_URL_CHARS_RE = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+", re.ASCII)  # RFC 3986 characters only
_SCHEMES = ("https", "http")


class LabelError(ValueError):
    """A label that is malformed or does not verify.

    ``reason`` is one of ``malformed`` (not a label URL or label text), ``unknown_key`` (``kid`` is not
    one of the operator keys given) and ``bad_signature`` (the signature does not verify).
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class LabelPayload:
    """What a label URL carries: the (unsigned) base URL, and the signed tag id with ``kid`` and ``sig``."""

    base_url: str
    tag_id: str
    kid: str
    sig: str

    @property
    def label(self) -> str:
        """The ``s`` parameter: ``kid.sig``."""
        return f"{self.kid}.{self.sig}"

    @property
    def url(self) -> str:
        """The URL, rebuilt (equal to the one parsed)."""
        return f"{self.base_url}/t/{self.tag_id}?s={self.label}"


def _check_origin(origin: str) -> bytes:
    if not isinstance(origin, str) or not origin or "\n" in origin:
        raise LabelError("malformed", "the origin is a non-empty string without a newline")
    return origin.encode("utf-8")


def _check_tag(tag_id: str) -> bytes:
    if not is_tag_id(tag_id):
        raise LabelError("malformed", f"{tag_id!r} is not a tag id (^[A-Z0-9][A-Z0-9-]{{2,39}}$)")
    return tag_id.encode("ascii")


def label_message(origin: str, tag_id: str) -> bytes:
    """The signed bytes: ``b"tagledger-label/v1\\n" + origin + b"\\n" + tag_id`` (UTF-8, no final newline)."""
    return LABEL_DOMAIN + _check_origin(origin) + b"\n" + _check_tag(tag_id)


def sign_label(private_key: Ed25519PrivateKey, kid: str, origin: str, tag_id: str) -> str:
    """The label of ``tag_id`` (the URL's ``s`` parameter): ``kid.sig``, signed with ``private_key``.

    ``kid`` must be the key id of ``private_key`` (a key of the ledger's operator).
    """
    raw = private_key.public_key().public_bytes_raw()
    if kid != key_id(raw):
        raise LabelError("malformed", f"{kid!r} is not the key id of this private key ({key_id(raw)})")
    return f"{kid}.{b64url_encode(private_key.sign(label_message(origin, tag_id)))}"


def parse_label(tag_id: str, label: str) -> LabelPayload:
    """A payload from a tag id and a label text ``kid.sig`` (no base URL), checked as in a URL."""
    _check_tag(tag_id)
    match = _LABEL_RE.fullmatch(label) if isinstance(label, str) else None
    if match is None:
        raise LabelError("malformed", "a label is kid.sig: 16 lowercase hex, a dot, 86 base64url characters")
    try:
        decode_signature(match[2])
    except EncodingError as error:
        raise LabelError("malformed", f"the signature is not canonical base64url: {error}") from None
    return LabelPayload("", tag_id, match[1], match[2])


def format_label_url(base_url: str, tag_id: str, label: str) -> str:
    """The label URL ``{base_url}/t/{tag_id}?s={label}``; a trailing ``/`` of ``base_url`` is dropped."""
    base = base_url.rstrip("/") if isinstance(base_url, str) else base_url
    payload = parse_label(tag_id, label)
    url = f"{base}/t/{payload.tag_id}?s={payload.label}"
    parsed = parse_label_url(url)  # the base URL must make a URL that parses back to the same payload
    if parsed.base_url != base:
        raise LabelError("malformed", f"{base_url!r} is not a base URL for labels")
    return url


def parse_label_url(url: str) -> LabelPayload:
    """Parse a label URL strictly (section 13.2), without checking the signature.

    ``http`` or ``https`` (lowercase), a host and no user info, a path ending in ``/t/<tag id>`` (a tag id
    as section 2 writes it: no lowercase, no percent-encoding), a query that is exactly ``s=<kid>.<sig>``
    (one parameter, nothing else), no fragment. Raises :class:`LabelError` (``malformed``) otherwise.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH or not _URL_CHARS_RE.fullmatch(url):
        raise LabelError("malformed", "a label URL is made of RFC 3986 URL characters only, at most "
                                      f"{MAX_URL_LENGTH} characters")
    if "#" in url:
        raise LabelError("malformed", "a label URL has no fragment")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as error:
        raise LabelError("malformed", f"not a URL: {error}") from None
    del port
    scheme = url.split(":", 1)[0]
    if scheme not in _SCHEMES:
        raise LabelError("malformed", "a label URL starts with https:// (or http://)")
    if not url.startswith(scheme + "://") or not parts.hostname or "@" in parts.netloc:
        raise LabelError("malformed", "a label URL names a host (and no user)")
    head, sep, tag_id = parts.path.rpartition("/t/")
    if not sep or not is_tag_id(tag_id):
        raise LabelError("malformed", "the path of a label URL ends with /t/<tag id>")
    if head.endswith("/"):
        raise LabelError("malformed", "the path of a label URL has no empty segment before /t/")
    query = _QUERY_RE.fullmatch(parts.query)
    if query is None or url.count("?") != 1:
        raise LabelError("malformed", "the query of a label URL is exactly s=<kid>.<sig> (one parameter)")
    payload = parse_label(tag_id, query[1])
    return LabelPayload(f"{scheme}://{parts.netloc}{head}", tag_id, payload.kid, payload.sig)


def verify_label(payload: LabelPayload, origin: str, operator_keys: Mapping[str, bytes]) -> None:
    """Check the label's signature with the operator's keys (``kid`` -> raw 32-byte Ed25519 public key).

    Raises :class:`LabelError`: ``unknown_key`` if ``payload.kid`` is not in ``operator_keys``,
    ``bad_signature`` if the signature is not the operator's over this origin and tag id, ``malformed`` for
    a payload that is not a label or a key given under another key's id. Returns None when it verifies.
    """
    parse_label(payload.tag_id, payload.label)
    message = label_message(origin, payload.tag_id)
    raw = operator_keys.get(payload.kid) if is_key_id(payload.kid) else None
    if raw is None:
        raise LabelError("unknown_key", f"key {payload.kid} is not a key of the ledger's operator: "
                                        "this label was not made by the operator")
    if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_SIZE or key_id(raw) != payload.kid:
        raise LabelError("malformed", f"the public key given for {payload.kid} is not a 32-byte key with that id")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(decode_signature(payload.sig), message)
    except InvalidSignature:
        raise LabelError("bad_signature", f"the label's signature does not verify for tag {payload.tag_id} "
                                          f"and origin {origin!r}: the tag number or the label was altered "
                                          "or fabricated") from None
