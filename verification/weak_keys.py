"""Which public keys the registry refuses: rule ``key.weak`` (docs/protocol.md section 7, since 1.14).

The signature check the protocol pins (section 4: OpenSSL's cofactorless check) accepts keys that are not
safe to register. For the identity point, or any point of small order, ``R`` = the identity and ``S`` = 0 (or
a few other easy values) verify on *every* message: anyone can sign for such a key, so its owner can always
say "that was not me" and the log loses non-repudiation. A mixed-order key (a real key plus a small-order
point) lets its owner make signatures that some verifiers accept and others refuse. Non-canonical encodings
(``y`` >= p, a sign bit set on ``x`` = 0) name the same point as another key, and 32 bytes that are no curve
point can never sign anything. So a key is registered only if it is what ``cryptography`` generates: the
canonical encoding (RFC 8032 section 5.1.3) of a point of prime order ``L``.

The test is one scalar multiplication ``[L]A`` in pure Python (:mod:`verification.ed25519_reference`):
2 to 3.5 ms of CPU a key, the CPU of 12 to 17 Ed25519 verifications by ``cryptography`` measured in the same
run (``python -m verification.weak_keys`` measures both; 5 runs on 2026-12-05, load average 4.2 to 4.9). Keys are registered rarely (a
few per organisation), so it is paid on each registered key of ``org_registered``, ``key_added`` and the
genesis, by the ledger and by the auditor. Nothing is cached: the answer depends on the bytes alone, but a
cache would only hold memory for keys that are, by the registry's own rule, never registered twice.
"""

from __future__ import annotations

import functools

from verification.ed25519_reference import IDENTITY, L, decode, encode, multiply, same_point

__all__ = ["is_weak_public_key"]


def is_weak_public_key(public_key: bytes) -> bool:
    """True unless ``public_key`` is the canonical 32-byte encoding of a curve point of order exactly ``L``.

    Weak: any length but 32, bytes that decode to no point, a non-canonical encoding, the identity, a point
    of order 2, 4 or 8, and a mixed-order point (order 2L, 4L or 8L). Not weak: every key an Ed25519 library
    derives from a seed (``[s]B`` with ``s`` a clamped scalar, never a multiple of ``L``).
    """
    if len(public_key) != 32:
        return True
    return _weak(bytes(public_key))


@functools.lru_cache(maxsize=4096)
def _weak(public_key: bytes) -> bool:
    """The verdict on 32 bytes, remembered: a pure function of them, and a replay or a ledger that checks the same
    key again (a genesis replayed for each ``--as-of``, a test's many histories) pays its scalar multiplication once."""
    point = decode(public_key)
    if point is None or encode(point) != public_key:
        return True
    if same_point(point, IDENTITY):
        return True
    return not same_point(multiply(L, point), IDENTITY)


def _measure() -> None:  # pragma: no cover - a measurement for the docstring, run by hand
    import os
    import time

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    keys = [Ed25519PrivateKey.from_private_bytes(os.urandom(32)).public_key() for _ in range(200)]
    raw = [k.public_bytes(Encoding.Raw, PublicFormat.Raw) for k in keys]
    verifier = Ed25519PrivateKey.generate()
    signed = verifier.sign(b"m")
    public = verifier.public_key()
    start = time.process_time()
    for _ in range(2000):
        public.verify(signed, b"m")
    verification = (time.process_time() - start) / 2000
    start = time.process_time()
    assert not any(is_weak_public_key(k) for k in raw)
    check = (time.process_time() - start) / len(raw)
    print(f"is_weak_public_key: {check * 1e3:.2f} ms CPU a key; one Ed25519 verification (cryptography): "
          f"{verification * 1e6:.1f} µs; ratio {check / verification:.0f}")


if __name__ == "__main__":  # pragma: no cover
    _measure()
