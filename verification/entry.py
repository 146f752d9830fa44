"""Log entries -- docs/protocol.md section 5.

Entry number ``seq`` of the log is the byte string::

    jcs({"v": 1, "seq": <seq>, "received": "<time>", "envelope": <envelope>})

These bytes are stored exactly and are what the verifiable log commits to, so a reader accepts
them only if they *are* that canonical encoding: :func:`decode_entry` re-encodes what it parsed
and compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from verification.canonical import MAX_SAFE_INTEGER, MalformedJSON, jcs, json_pointer, parse_json
from verification.encoding import EncodingError, parse_time
from verification.envelope import Envelope, EnvelopeError

__all__ = [
    "ENTRY_FIELDS",
    "ENTRY_VERSION",
    "EntryError",
    "LogEntry",
    "decode_entry",
    "encode_entry",
]

ENTRY_VERSION = 1
"""The log entry format version, ``v`` (section 5)."""
ENTRY_FIELDS = ("v", "seq", "received", "envelope")
"""The fields of a log entry, all required, no others allowed."""


class EntryError(ValueError):
    """Bytes that are not a log entry of section 5.

    ``field`` is a JSON Pointer into the entry (``""`` for the entry itself, ``/envelope/...``
    for a malformed envelope, whose :class:`~verification.envelope.EnvelopeError` is the
    ``__cause__``).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field or '/'}: {message}")


@dataclass(frozen=True)
class LogEntry:
    """One decoded log entry: its fields and the exact bytes (``raw``) the log commits to."""

    seq: int
    received: str
    envelope: Envelope
    raw: bytes


def _check_seq(seq: Any) -> None:
    if type(seq) is not int or not 0 <= seq <= MAX_SAFE_INTEGER:
        raise EntryError("/seq", "seq is not an integer in [0, 2**53 - 1]")


def _check_received(received: Any) -> None:
    try:
        parse_time(received)
    except EncodingError as error:
        raise EntryError("/received", str(error)) from None


def encode_entry(seq: int, received: str, envelope: Envelope) -> bytes:
    """The bytes of log entry ``seq``: ``jcs({"v": 1, "seq", "received", "envelope"})``.

    ``received`` is a protocol time (section 2), e.g. from
    :func:`~verification.encoding.format_time`.
    """
    _check_seq(seq)
    _check_received(received)
    return jcs(
        {"v": ENTRY_VERSION, "seq": seq, "received": received, "envelope": envelope.to_json()}
    )


def decode_entry(raw: bytes) -> LogEntry:
    """Parse and check the bytes of one log entry (section 5).

    Raises :class:`EntryError` if ``raw`` is not strict JSON in the subset of section 1, is not
    an object with exactly the fields ``v`` (the integer 1), ``seq`` (an integer >= 0),
    ``received`` (a time) and ``envelope`` (an envelope of section 4), or is not byte for byte
    the canonical encoding of what it contains.
    """
    raw = bytes(raw)
    try:
        parsed = parse_json(raw)
    except MalformedJSON as error:
        raise EntryError("", f"not JSON of the protocol: {error}") from None
    if type(parsed) is not dict:
        raise EntryError("", "an entry is a JSON object")
    for name in ENTRY_FIELDS:
        if name not in parsed:
            raise EntryError(f"/{name}", f"{name} is required")
    for name in sorted(parsed):
        if name not in ENTRY_FIELDS:
            raise EntryError(json_pointer((name,)), f"{name!r} is not a field of an entry")
    if type(parsed["v"]) is not int or parsed["v"] != ENTRY_VERSION:
        raise EntryError("/v", f"v is not the integer {ENTRY_VERSION}")
    _check_seq(parsed["seq"])
    _check_received(parsed["received"])
    if jcs(parsed) != raw:
        raise EntryError("", "the bytes are not the canonical encoding (RFC 8785) of the entry")
    try:
        envelope = Envelope._from_canonical(parsed["envelope"])
    except EnvelopeError as error:
        raise EntryError("/envelope" + error.field, error.message) from error
    return LogEntry(seq=parsed["seq"], received=parsed["received"], envelope=envelope, raw=raw)
