"""Signed notes with Ed25519 keys -- c2sp.org/signed-note.

A signed note is a text ending in a newline, a blank line, and one or more signature lines::

    If you think cryptography is the answer to your problem,
    then you don't know what your problem is.

    — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN...AM=

A signature line is an em dash (U+2014), a space, the key name, a space and
``base64(key ID || signature)``; the Ed25519 signature (signature type ``0x01``) covers the text,
final newline included.  The key ID is ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``.
A verifier key ("vkey") is ``<name>+<key ID in 8 hex digits>+<base64(0x01 || public key)>``, as
golang.org/x/mod/sumdb/note writes it.  Base64 is the standard alphabet with padding (RFC 4648
section 4).

This module follows the specification and Go's ``note.Open``, with these choices, all stricter:

- base64 (signature lines, vkeys) and the key ID hex digits must be in their one canonical form:
  padded, no unused bits set, lowercase hex;
- key names must also contain no ASCII control character (no note could carry them anyway);
- *every* signature line of a known key is verified, duplicates included, and one that fails
  rejects the whole note (the spec's SHOULD), even if another known key's signature verifies;
- two different verifier keys with the same name and key ID are refused as ambiguous.

Like Go, a note may have at most :data:`MAX_SIGNATURES` signature lines (the spec asks for at
least 16), signatures from unknown keys are ignored, and a note no known key signed is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "ED25519_SIGNATURE_SIZE",
    "KEY_ID_SIZE",
    "MAX_SIGNATURES",
    "PUBLIC_KEY_SIZE",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteVerifier",
    "add_signature",
    "b64std_decode",
    "b64std_encode",
    "check_key_name",
    "encode_skey",
    "encode_vkey",
    "is_valid_key_name",
    "note_key_id",
    "open_note",
    "parse_skey",
    "parse_vkey",
    "sign_note",
]

ALG_ED25519 = 0x01
"""The signature type byte of Ed25519 note signatures."""
PUBLIC_KEY_SIZE = 32
"""Bytes in a raw Ed25519 public key (and in a private key seed)."""
ED25519_SIGNATURE_SIZE = 64
"""Bytes in an Ed25519 signature (after the 4-byte key ID of a signature line)."""
KEY_ID_SIZE = 4
"""Bytes in a key ID: the first four bytes of a SHA-256 hash, big-endian."""
MAX_SIGNATURES = 100
"""At most this many signature lines in a note (Go's limit; the spec requires at least 16)."""

SIGNATURE_PREFIX = "\u2014 "
"""A signature line starts with an em dash (U+2014) and a space."""
SKEY_PREFIX = "PRIVATE+KEY+"
"""A signer key ("skey") is ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>``."""

UNICODE_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""The characters with the Unicode ``White_Space`` property (Go's ``unicode.IsSpace``)."""

_B64STD_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}", re.ASCII)
_KEY_ID_HEX_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")
"""An ASCII control character other than newline (U+000A): forbidden everywhere in a note."""


class NoteError(ValueError):
    """A signed note, key or key name that c2sp.org/signed-note does not accept."""


# --------------------------------------------------------------------------------------------
# Standard base64 (RFC 4648 section 4), canonical form only
# --------------------------------------------------------------------------------------------


def b64std_encode(data: bytes) -> str:
    """``data`` in standard base64 with padding (RFC 4648 section 4)."""
    return base64.b64encode(data).decode("ascii")


def b64std_decode(text: str, what: str = "value") -> bytes:
    """Decode standard padded base64, strictly: raises ``ValueError`` naming ``what`` otherwise.

    Only the canonical encoding is accepted: alphabet ``A-Z a-z 0-9 + /``, ``=`` padding to a
    multiple of 4 characters, no whitespace, and zero unused bits in the last character -- so
    each byte string has exactly one text.
    """
    if not isinstance(text, str) or not _B64STD_RE.fullmatch(text) or len(text) % 4:
        raise ValueError(f"{what} is not padded standard base64")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"{what} is not padded standard base64") from None
    if b64std_encode(data) != text:
        raise ValueError(f"{what} is non-canonical base64 (unused bits are not zero)")
    return data


# --------------------------------------------------------------------------------------------
# Key names, key IDs and keys
# --------------------------------------------------------------------------------------------


def _utf8(text: str) -> bytes | None:
    """``text`` in UTF-8, or ``None`` if it holds a lone surrogate (no UTF-8 encoding)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _key_name_problem(name: object) -> str | None:
    """Why ``name`` is not a key name, or ``None`` if it is one."""
    if not isinstance(name, str):
        return f"a key name is a string, not {type(name).__name__}"
    if name == "":
        return "a key name must not be empty"
    if _utf8(name) is None:
        return f"key name {name!r} is not valid Unicode (lone surrogate)"
    for char in name:
        if char in UNICODE_SPACES:
            return f"key name {name!r} contains a space character (U+{ord(char):04X})"
        if char == "+":
            return f"key name {name!r} contains '+'"
        if ord(char) < 0x20:
            return f"key name {name!r} contains a control character (U+{ord(char):04X})"
    return None


def is_valid_key_name(name: object) -> bool:
    """True for a key name: non-empty, no Unicode space, no ``+``, no ASCII control character."""
    return _key_name_problem(name) is None


def check_key_name(name: object) -> str:
    """``name`` if it is a valid key name (:func:`is_valid_key_name`), else :class:`NoteError`."""
    problem = _key_name_problem(name)
    if problem is not None:
        raise NoteError(problem)
    return name  # type: ignore[return-value]


def note_key_id(name: str, public_key_raw: bytes) -> bytes:
    """The key ID of an Ed25519 note key: ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
    check_key_name(name)
    if not isinstance(public_key_raw, bytes) or len(public_key_raw) != PUBLIC_KEY_SIZE:
        raise NoteError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} raw bytes")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key_raw)
    return digest.digest()[:KEY_ID_SIZE]


def _key_label(name: str, key_id: bytes) -> str:
    """``name+<key ID hex>``, how keys are named in messages (the start of their vkey)."""
    return f"{name}+{key_id.hex()}"


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 note key: its name, its 4-byte key ID and its raw public key.

    Construction checks that the name is valid, the key is 32 bytes and the key ID is the one
    the name and key give; build it with :meth:`for_public_key` or :func:`parse_vkey`.
    """

    name: str
    key_id: bytes
    public_key_raw: bytes

    def __post_init__(self) -> None:
        expected = note_key_id(self.name, self.public_key_raw)
        if self.key_id != expected:
            raise NoteError(
                f"key ID {self.key_id.hex() if isinstance(self.key_id, bytes) else self.key_id!r}"
                f" is not the key ID of key {self.name!r} ({expected.hex()})"
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key_raw)
        except ValueError as error:
            raise NoteError(f"key {self.label}: not an Ed25519 public key ({error})") from None

    @classmethod
    def for_public_key(cls, name: str, public_key_raw: bytes) -> NoteVerifier:
        """The verifier of the key ``public_key_raw`` (32 raw bytes) named ``name``."""
        return cls(name, note_key_id(name, public_key_raw), public_key_raw)

    @property
    def label(self) -> str:
        """``name+<key ID hex>``: how this key is named in error messages."""
        return _key_label(self.name, self.key_id)

    def vkey(self) -> str:
        """This key as a verifier key string (:func:`encode_vkey`)."""
        return encode_vkey(self.name, self.public_key_raw)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 (RFC 8032) signature of ``message``."""
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key_raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def encode_vkey(name: str, public_key_raw: bytes) -> str:
    """The verifier key ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``."""
    key_id = note_key_id(name, public_key_raw)
    return f"{name}+{key_id.hex()}+{b64std_encode(bytes([ALG_ED25519]) + public_key_raw)}"


def _split_key(text: str, kind: str) -> tuple[str, bytes, bytes]:
    """Split ``<name>+<key ID>+<base64(alg || key)>`` into name, key ID and Ed25519 key bytes."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"{kind} is not <name>+<key ID>+<base64 key>")
    name, key_id_hex, key_b64 = parts
    check_key_name(name)
    if not _KEY_ID_HEX_RE.fullmatch(key_id_hex):
        raise NoteError(f"{kind} {name!r}: key ID {key_id_hex!r} is not 8 lowercase hex digits")
    try:
        key = b64std_decode(key_b64, "the key")
    except ValueError as error:
        raise NoteError(f"{kind} {name!r}: {error}") from None
    if not key:
        raise NoteError(f"{kind} {name!r}: the key is empty")
    if key[0] != ALG_ED25519:
        raise NoteError(
            f"{kind} {name!r}: signature type 0x{key[0]:02x} is not Ed25519 (0x01),"
            " the only type supported"
        )
    if len(key) != 1 + PUBLIC_KEY_SIZE:
        raise NoteError(
            f"{kind} {name!r}: an Ed25519 key is {PUBLIC_KEY_SIZE} bytes, not {len(key) - 1}"
        )
    return name, bytes.fromhex(key_id_hex), key[1:]


def parse_vkey(text: str) -> NoteVerifier:
    """Parse a verifier key ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``, strictly.

    Raises :class:`NoteError` if the name is invalid, the key ID is not 8 lowercase hex digits or
    is not the key ID of this name and key, the base64 is not canonical, or the key is not a
    32-byte Ed25519 key (type ``0x01``).
    """
    if not isinstance(text, str):
        raise NoteError(f"a verifier key is a string, not {type(text).__name__}")
    name, key_id, public_key_raw = _split_key(text, "verifier key")
    expected = note_key_id(name, public_key_raw)
    if key_id != expected:
        raise NoteError(
            f"verifier key {name!r}: key ID {key_id.hex()} does not match the name and key"
            f" (they give {expected.hex()})"
        )
    return NoteVerifier(name, key_id, public_key_raw)


def encode_skey(name: str, private_key: Ed25519PrivateKey) -> str:
    """The secret signer key ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>`` (Go's form)."""
    public_key_raw = private_key.public_key().public_bytes_raw()
    key_id = note_key_id(name, public_key_raw)
    seed = private_key.private_bytes_raw()
    return f"{SKEY_PREFIX}{name}+{key_id.hex()}+{b64std_encode(bytes([ALG_ED25519]) + seed)}"


def parse_skey(text: str) -> tuple[str, Ed25519PrivateKey]:
    """Parse a signer key (:func:`encode_skey`) into its name and private key, strictly.

    The key ID must be the one of the name and the public key derived from the seed.
    """
    if not isinstance(text, str) or not text.startswith(SKEY_PREFIX):
        raise NoteError("a signer key starts with PRIVATE+KEY+")
    name, key_id, seed = _split_key(text[len(SKEY_PREFIX) :], "signer key")
    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    expected = note_key_id(name, private_key.public_key().public_bytes_raw())
    if key_id != expected:
        raise NoteError(
            f"signer key {name!r}: key ID {key_id.hex()} does not match the name and key"
            f" (they give {expected.hex()})"
        )
    return name, private_key


# --------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------


class NoteSignature(NamedTuple):
    """One signature line: the key name, the 4-byte key ID and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def label(self) -> str:
        """``name+<key ID hex>``: the key the line claims to be from."""
        return _key_label(self.name, self.key_id)

    def line(self) -> str:
        """The signature line, ``— <name> <base64(key ID || signature)>`` and a newline."""
        return f"{SIGNATURE_PREFIX}{self.name} {b64std_encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text (final newline included), every signature line in order
    (verified or not), and the names of the known keys whose signatures verified."""

    text: str
    signatures: tuple[NoteSignature, ...]
    verified_by: tuple[str, ...]


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be the text of a note, or ``None`` if it can."""
    if not text.endswith("\n"):
        return "the note text must end with a newline"
    if _utf8(text) is None:
        return "the note text is not valid Unicode (lone surrogate)"
    control = _CONTROL_RE.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        return (
            f"the note text contains a control character (U+{ord(control.group()):04X})"
            f" on line {line}; only newlines are allowed"
        )
    return None


def _sign(text: str, name: str, private_key: Ed25519PrivateKey) -> NoteSignature:
    check_key_name(name)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("a note is signed with an Ed25519PrivateKey")
    key_id = note_key_id(name, private_key.public_key().public_bytes_raw())
    return NoteSignature(name, key_id, private_key.sign(text.encode("utf-8")))


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` with ``private_key`` under the key name ``name``: the signed note.

    The result is ``text``, a blank line and ``— <name> <base64(key ID || signature)>``.
    ``text`` must end with a newline and contain no ASCII control character but newlines; it may
    contain empty lines.  Ed25519 is deterministic: the same inputs give the same note.
    """
    if not isinstance(text, str):
        raise TypeError(f"a note text is a str, not {type(text).__name__}")
    problem = _text_problem(text)
    if problem is not None:
        raise NoteError(problem)
    return text + "\n" + _sign(text, name, private_key).line()


def add_signature(note: str | bytes, name: str, private_key: Ed25519PrivateKey) -> str:
    """Co-sign ``note``: append a signature of its text by ``private_key`` named ``name``.

    The note must be well-formed (as :func:`open_note` parses it), but its existing signatures
    are *not* verified: open it with your verifiers first if you mean to vouch for them.  A
    signature line already there from the same key (name and key ID) is replaced, as Go's
    ``note.Sign`` does.
    """
    text, _, signatures = _parse(note)
    new = _sign(text, name, private_key)
    kept = [sig for sig in signatures if (sig.name, sig.key_id) != (new.name, new.key_id)]
    if len(kept) + 1 > MAX_SIGNATURES:
        raise NoteError(f"a note may have at most {MAX_SIGNATURES} signature lines")
    return text + "\n" + "".join(sig.line() for sig in kept) + new.line()


def _malformed(message: str) -> NoteError:
    return NoteError(f"malformed note: {message}")


def _parse(note: str | bytes) -> tuple[str, bytes, list[NoteSignature]]:
    """Parse a signed note without verifying it: its text, the text's bytes, its signatures."""
    if isinstance(note, str):
        raw = _utf8(note)
        if raw is None:
            raise _malformed("not valid Unicode (lone surrogate)")
    elif isinstance(note, bytes | bytearray | memoryview):
        raw = bytes(note)
    else:
        raise TypeError(f"a signed note is str or bytes, not {type(note).__name__}")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _malformed(f"not valid UTF-8 (byte {error.start})") from None
    control = _CONTROL_RE.search(decoded)
    if control is not None:
        line = decoded.count("\n", 0, control.start()) + 1
        raise _malformed(
            f"control character U+{ord(control.group()):04X} on line {line};"
            " only newlines are allowed"
        )

    # The text is separated from the signatures by the last empty line.
    split = raw.rfind(b"\n\n")
    if split < 0:
        raise _malformed("no blank line separates the text from the signature lines")
    text_bytes, block = raw[: split + 1], raw[split + 2 :]
    if not block:
        raise _malformed("no signature lines after the blank line")
    if not block.endswith(b"\n"):
        raise _malformed("the last signature line does not end with a newline")
    lines = block[:-1].decode("utf-8").split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed(
            f"{len(lines)} signature lines, more than the {MAX_SIGNATURES} this verifier accepts"
        )

    signatures = []
    for number, line in enumerate(lines, start=1):
        where = f"signature line {number}"
        if not line.startswith(SIGNATURE_PREFIX):
            raise _malformed(f"{where} does not start with an em dash (U+2014) and a space")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        problem = _key_name_problem(name)
        if problem is not None:
            raise _malformed(f"{where}: {problem}")
        if encoded == "":
            raise _malformed(f"{where} ({name}): no signature after the key name")
        try:
            data = b64std_decode(encoded, "the signature")
        except ValueError as error:
            raise _malformed(f"{where} ({name}): {error}") from None
        if len(data) <= KEY_ID_SIZE:
            raise _malformed(f"{where} ({name}): the signature is too short ({len(data)} bytes)")
        signatures.append(NoteSignature(name, data[:KEY_ID_SIZE], data[KEY_ID_SIZE:]))
    return text_bytes.decode("utf-8"), text_bytes, signatures


def _index(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        if not isinstance(verifier, NoteVerifier):
            raise TypeError(f"a verifier is a NoteVerifier, not {type(verifier).__name__}")
        other = known.setdefault((verifier.name, verifier.key_id), verifier)
        if other.public_key_raw != verifier.public_key_raw:
            raise NoteError(
                f"ambiguous verifiers: two different keys are named {verifier.label}"
            )
    return known


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> Note:
    """Parse the signed note ``note`` and verify its signatures by the keys ``verifiers``.

    Every signature line whose key name *and* key ID are those of a verifier is verified; lines
    of other keys are kept in :attr:`Note.signatures` but ignored.  Raises :class:`NoteError` if
    the note is malformed (not UTF-8, a control character, no blank line before the signatures,
    a bad signature line, more than :data:`MAX_SIGNATURES` of them), if any known key's signature
    does not verify, or if no known key signed it.
    """
    known = _index(verifiers)
    text, text_bytes, signatures = _parse(note)
    verified_by: list[str] = []
    for signature in signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(text_bytes, signature.signature):
            raise NoteError(
                f"the signature by key {signature.label} does not verify: the note text was"
                " altered or was not signed by this key"
            )
        if signature.name not in verified_by:
            verified_by.append(signature.name)
    if not verified_by:
        found = ", ".join(sorted({sig.label for sig in signatures}))
        trusted = ", ".join(sorted(verifier.label for verifier in known.values())) or "none"
        raise NoteError(
            f"the note is not signed by any known key (signed by: {found}; known keys: {trusted})"
        )
    return Note(text=text, signatures=tuple(signatures), verified_by=tuple(verified_by))
