"""Ed25519 verification with the protocol's verdict, at about half the CPU: libsodium accepts, OpenSSL decides.

The protocol's acceptance rule is OpenSSL's (docs/protocol.md section 4; written out in
verification/ed25519_reference.py). libsodium, through PyNaCl, verifies about twice as fast, and the libsodium
that PyNaCl 1.6 bundles accepts a *subset* of what the rule accepts: it uses the same cofactorless byte
comparison and, on top of it, refuses small-order keys and ``R``, and keys written with ``y`` >= p
(docs/benchmarks.md 12.8). So, for that libsodium, this gives exactly the rule's verdict:

    verify(public_key, signature, message) =
        libsodium accepts                                   -> True   (the fast path: nearly every signature)
        otherwise                                           -> OpenSSL's verdict (through ``cryptography``)

libsodium is asked only about a 32-byte key and a 64-byte signature (``crypto_sign_open`` reads the signature
from the front of ``signature || message``, so a signature of another length would move bytes between the two);
anything else goes to OpenSSL alone, which refuses it.

That equality holds only while libsodium never accepts a signature the rule refuses. A libsodium with a
cofactored check (libsodium's ``master`` since 2022, not in any release up to 1.0.22) would accept ``R`` offset
by a small-order point, which the rule refuses; PyNaCl may also be built against the system's libsodium. So the
first use of this module runs a **self-test**: every vector of the published edge-case file
(``verification/vectors/ed25519-edge-cases.json``, installed with the package) through libsodium alone and
through the combination. If libsodium accepts any vector whose verdict is ``reject``, or refuses the ordinary
valid signature (it would only add its cost), or the combination gives any verdict other than the file's, the
fast path is off for the life of the process and OpenSSL alone verifies; one warning line says why.

The fast path is also off when PyNaCl is not importable, and when the environment sets
``TAGLEDGER_ED25519=openssl`` (an operator's switch: OpenSSL alone, as verification/ always does).
:func:`engine` names what is in use: ``"libsodium+openssl"`` or ``"openssl"``.

verification/ does not import this module nor PyNaCl (an outsider's auditor needs only ``cryptography``); the
ledger's write path and ``tagledger audit`` use it, ``python -m verification.audit`` does not. Both give the
same verdicts: that is what the self-test guards.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verification.canonical import NonCanonicalValue
from verification.encoding import EncodingError, decode_signature
from verification.envelope import Envelope

__all__ = [
    "ENGINE_FAST",
    "ENGINE_OPENSSL",
    "ENVIRONMENT",
    "FastVerifier",
    "SignatureChecker",
    "default",
    "edge_case_vectors",
    "engine",
    "libsodium_open",
    "verify",
    "verify_envelope",
]

log = logging.getLogger("tagledger.signatures")

ENVIRONMENT = "TAGLEDGER_ED25519"
"""``TAGLEDGER_ED25519=openssl`` turns the fast path off (any other value, or none, leaves it to the self-test)."""
ENGINE_FAST = "libsodium+openssl"
ENGINE_OPENSSL = "openssl"
_KEY_CACHE = 4096  # public key objects kept for OpenSSL (there are few keys; a bound all the same)

Verify = Callable[[bytes, bytes, Any], bool]  # (raw public key, signature, message bytes or memoryview) -> accepted


def edge_case_vectors() -> list[tuple[str, bytes, bytes, bytes, bool]]:
    """(name, public key, signature, message, the protocol's verdict) of every published edge-case vector."""
    text = (resources.files("verification") / "vectors" / "ed25519-edge-cases.json").read_text(encoding="utf-8")
    return [(v["name"], bytes.fromhex(v["public_key"]), bytes.fromhex(v["signature"]), bytes.fromhex(v["message"]),
             v["verdict"] == "accept") for v in json.loads(text)["vectors"]]


def libsodium_open() -> Verify | None:
    """libsodium's verification through PyNaCl's public binding ``crypto_sign_open``, or None without PyNaCl.

    Only for a 32-byte key and a 64-byte signature (the caller's check: the C function reads 32 bytes of key).
    """
    try:
        from nacl.bindings import crypto_sign_open
        from nacl.exceptions import BadSignatureError
    except ImportError:
        return None

    def opens(public_key: bytes, signature: bytes, message: Any) -> bool:
        try:
            crypto_sign_open(signature + message, public_key)
        except BadSignatureError:
            return False
        return True

    return opens


class FastVerifier:
    """The combination of the module docstring around one libsodium (``None``: OpenSSL alone).

    ``libsodium`` is injectable so that the self-test can be tested with a libsodium that behaves otherwise;
    ``vectors`` defaults to the published file. The self-test runs in the constructor.
    """

    def __init__(self, libsodium: Verify | None, vectors: Iterable[tuple[str, bytes, bytes, bytes, bool]] | None = None,
                 *, why_off: str | None = None) -> None:
        self._keys: dict[bytes, Ed25519PublicKey] = {}
        self.why_off = why_off if libsodium is None else None  # why the fast path is off, for the warning and tests
        self._libsodium = libsodium
        if libsodium is not None:
            problem = self._self_test(libsodium, edge_case_vectors() if vectors is None else list(vectors))
            if problem is not None:
                self._libsodium = None
                self.why_off = problem
                log.warning("Ed25519: libsodium's fast path is off, OpenSSL alone verifies: %s", problem)

    @property
    def engine(self) -> str:
        return ENGINE_OPENSSL if self._libsodium is None else ENGINE_FAST

    def openssl(self, public_key: bytes, signature: bytes, message: Any) -> bool:
        """The reference verdict (OpenSSL through ``cryptography``), with the key object cached."""
        key = self._keys.get(public_key)
        if key is None:
            key = Ed25519PublicKey.from_public_bytes(public_key)  # ValueError unless 32 bytes
            if len(self._keys) >= _KEY_CACHE:
                self._keys.clear()
            self._keys[public_key] = key
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verify(self, public_key: bytes, signature: bytes, message: Any) -> bool:
        """The protocol's verdict: libsodium's acceptance if it accepts, else OpenSSL's verdict."""
        fast = self._libsodium
        if fast is not None and len(signature) == 64 and len(public_key) == 32 and fast(public_key, signature, message):
            return True
        return self.openssl(public_key, signature, message)

    def _self_test(self, libsodium: Verify, vectors: list[tuple[str, bytes, bytes, bytes, bool]]) -> str | None:
        """None if this libsodium, and the combination with it, agree with every vector; else what differs."""
        if not vectors:
            return "no edge-case vectors to test libsodium with"
        for name, public_key, signature, message, accepted in vectors:
            if libsodium(public_key, signature, message) and not accepted:
                return f"libsodium accepts the edge case {name!r}, which the protocol refuses"
            if name == "valid" and not libsodium(public_key, signature, message):
                return "libsodium refuses an ordinary valid signature"
            fast = libsodium(public_key, signature, message) or self.openssl(public_key, signature, message)
            if fast is not accepted:
                return f"libsodium then OpenSSL give {'accept' if fast else 'reject'} on the edge case {name!r}"
        return None


class SignatureChecker:
    """``verification.entry_checks.SignatureChecker``'s interface (``verify``, ``engine``) over :func:`default`:
    what ``tagledger audit`` gives the replay (its workers build one from the dotted path
    ``ledger.fast_signatures:SignatureChecker``)."""

    def __init__(self) -> None:
        self._verifier = default()
        self.verify = self._verifier.verify
        self.engine = self._verifier.engine


_default: FastVerifier | None = None
_lock = threading.Lock()


def default() -> FastVerifier:
    """This process's verifier, made (and self-tested) at first use."""
    global _default
    verifier = _default
    if verifier is None:
        with _lock:
            if _default is None:
                _default = _make()
            verifier = _default
    return verifier


def _make() -> FastVerifier:
    if os.environ.get(ENVIRONMENT, "").strip().lower() == "openssl":
        return FastVerifier(None, why_off=f"{ENVIRONMENT}=openssl")
    libsodium = libsodium_open()
    if libsodium is None:
        log.warning("Ed25519: PyNaCl is not importable; OpenSSL alone verifies")
        return FastVerifier(None, why_off="PyNaCl is not importable")
    return FastVerifier(libsodium)


def verify(public_key_raw: bytes, signature: bytes, message: Any) -> bool:
    """True if ``signature`` is, by the protocol's rule, an Ed25519 signature by ``public_key_raw`` of ``message``.

    Raises ``ValueError`` if the key is not 32 bytes (as ``cryptography`` does)."""
    return default().verify(public_key_raw, signature, message)


def engine() -> str:
    """``"libsodium+openssl"`` when the fast path is on in this process, ``"openssl"`` otherwise."""
    return default().engine


def verify_envelope(public_key_raw: bytes, envelope: Envelope) -> bool:
    """:func:`verification.envelope.verify_signature` (the reference, OpenSSL alone) through :func:`verify`: True if
    ``sig`` is a signature by ``public_key_raw`` over jcs(body). An undecodable ``sig`` or a body outside the JSON
    subset does not verify; ``ValueError`` if the key is not 32 bytes."""
    if len(public_key_raw) != 32:
        Ed25519PublicKey.from_public_bytes(public_key_raw)  # raises ValueError, as the reference does
    try:
        signature = envelope.sig_bytes if envelope.sig_bytes is not None else decode_signature(envelope.sig)
        message = envelope.signed_bytes()
    except (EncodingError, NonCanonicalValue):
        return False
    return verify(public_key_raw, signature, message)
