"""Transparency log checkpoints -- c2sp.org/tlog-checkpoint.

A checkpoint is a signed note (:mod:`verification.note`) whose text is at least three non-empty
lines, each ending in a newline::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

1. the **origin**, the log's identity: any non-empty line (the spec recommends, but clients
   must not assume, a schema-less URL without spaces or ``+``);
2. the **tree size**, in ASCII decimal without sign or leading zeros (``0`` for an empty tree);
   this module bounds it to an unsigned 64-bit integer, as the Go implementations do;
3. the **root hash**, standard base64 (canonical, padded) of the 32-byte RFC 6962 Merkle root;
4. optional **extension lines**, opaque and non-empty (the spec does not recommend them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verification.note import (
    NoteError,
    NoteVerifier,
    b64std_decode,
    b64std_encode,
    open_note,
    sign_note,
)

__all__ = [
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CheckpointError",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

HASH_SIZE = 32
"""Bytes in a root hash (SHA-256, RFC 6962)."""
MAX_TREE_SIZE = 2**64 - 1
"""The largest tree size accepted: an unsigned 64-bit integer."""

_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f]")
"""An ASCII control character, newline included: none may appear inside a line."""


class CheckpointError(ValueError):
    """A checkpoint (or its signed note) that c2sp.org/tlog-checkpoint does not accept."""


def _line_problem(value: object, what: str) -> str | None:
    """Why ``value`` cannot be a checkpoint line (``what`` names it), or ``None``."""
    if not isinstance(value, str):
        return f"the {what} is a string, not {type(value).__name__}"
    if value == "":
        return f"the {what} must not be empty"
    control = _CONTROL_RE.search(value)
    if control is not None:
        return f"the {what} contains a control character (U+{ord(control.group()):04X})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"the {what} is not valid Unicode (lone surrogate)"
    return None


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head: origin, tree size, root hash and extension lines.

    Construction checks every field (raising :class:`CheckpointError`), so :meth:`to_text`
    always gives a text :func:`parse_checkpoint` accepts and maps back to an equal checkpoint.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _line_problem(self.origin, "origin")
        if problem is not None:
            raise CheckpointError(problem)
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"the tree size must be an integer from 0 to {MAX_TREE_SIZE}")
        if type(self.root_hash) is not bytes or len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"the root hash must be {HASH_SIZE} bytes")
        if isinstance(self.extensions, str):
            raise CheckpointError("the extension lines are a sequence of strings, not a string")
        extensions = tuple(self.extensions)
        for number, line in enumerate(extensions, start=1):
            problem = _line_problem(line, f"extension line {number}")
            if problem is not None:
                raise CheckpointError(problem)
        object.__setattr__(self, "extensions", extensions)

    def to_text(self) -> str:
        """The note text: origin, size, base64 root hash and extension lines, each with ``\\n``."""
        lines = (self.origin, str(self.size), b64std_encode(self.root_hash), *self.extensions)
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text, strictly; raises :class:`CheckpointError`.

    The text must end with a newline and hold at least three lines, none empty: a non-empty
    origin, a tree size in canonical decimal (no sign, no leading zero, at most 2**64 - 1), a
    root hash in canonical standard base64 of exactly 32 bytes, then any extension lines.  No
    line may contain an ASCII control character.
    """
    if not isinstance(text, str):
        raise CheckpointError(f"a checkpoint text is a str, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise CheckpointError("the checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(
            f"a checkpoint has at least 3 lines (origin, tree size, root hash), not {len(lines)}"
        )
    origin, size_text, hash_text, *extensions = lines
    names = ["origin", "tree size", "root hash"]
    names += [f"extension line {number}" for number in range(1, len(extensions) + 1)]
    for number, (name, line) in enumerate(zip(names, lines, strict=True), start=1):
        problem = _line_problem(line, name)
        if problem is not None:
            raise CheckpointError(f"line {number}: {problem}")

    if not _SIZE_RE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise CheckpointError(
            f"line 2: tree size {size_text!r} is not a decimal number from 0 to {MAX_TREE_SIZE}"
            " without sign or leading zeros"
        )
    try:
        root_hash = b64std_decode(hash_text, "the root hash")
    except ValueError as error:
        raise CheckpointError(f"line 3: {error}") from None
    if len(root_hash) != HASH_SIZE:
        raise CheckpointError(
            f"line 3: the root hash is {len(root_hash)} bytes, not {HASH_SIZE} (SHA-256)"
        )
    return Checkpoint(origin, int(size_text), root_hash, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note of ``cp`` by the log's key ``private_key``, named ``name``.

    ``name`` must be the checkpoint's origin: :func:`open_checkpoint` accepts a checkpoint only
    under a key named after its origin.  (To co-sign as a witness, use
    :func:`verification.note.add_signature`.)
    """
    if not isinstance(cp, Checkpoint):
        raise TypeError(f"expected a Checkpoint, not {type(cp).__name__}")
    if name != cp.origin:
        raise CheckpointError(
            f"a checkpoint is signed under its origin {cp.origin!r} as key name, not {name!r}"
        )
    try:
        return sign_note(cp.to_text(), name, private_key)
    except NoteError as error:
        raise CheckpointError(f"cannot sign the checkpoint: {error}") from None


def open_checkpoint(note: str | bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify the signed checkpoint ``note`` with the log's key ``verifier`` and parse it.

    The note must carry a valid signature by ``verifier`` (signatures by other keys, such as
    witnesses, are ignored; see :func:`verification.note.open_note`), its text must be a
    checkpoint (:func:`parse_checkpoint`), and its origin must equal the verifier's key name.

    The spec only says the key name SHOULD match the origin; tagledger makes it a MUST, so that
    a key trusted for one log can never vouch for a checkpoint claiming another origin.
    Everything wrong raises :class:`CheckpointError` (the note's own problem is its cause).
    """
    if not isinstance(verifier, NoteVerifier):
        raise TypeError(f"expected a NoteVerifier, not {type(verifier).__name__}")
    try:
        opened = open_note(note, [verifier])
    except NoteError as error:
        raise CheckpointError(f"checkpoint from {verifier.name!r} rejected: {error}") from error
    checkpoint = parse_checkpoint(opened.text)
    if checkpoint.origin != verifier.name:
        raise CheckpointError(
            f"the checkpoint's origin {checkpoint.origin!r} is not the name of the log key"
            f" {verifier.name!r} that signed it"
        )
    return checkpoint
