"""The protocol's Ed25519 acceptance rule (docs/protocol.md section 4), written out in plain Python.

The reference verifier checks signatures with OpenSSL through ``cryptography``; this module says in
readable code exactly what that check accepts, so that the rule can be tested against OpenSSL
(tests/unit/test_ed25519_edge_cases.py) and read by whoever writes another verifier. It is far too slow
to verify a log with (about 10 ms a signature): no verifying path uses it. Its arithmetic does serve the
registry's rule ``key.weak`` (:mod:`verification.weak_keys`), once for each key an event registers.

The rule, for a 32-byte public key ``A``, a 64-byte signature ``R || S`` and a message ``M``:

1. ``S`` (little-endian) is below the group order ``L``; otherwise reject.
2. ``A`` is read as OpenSSL reads it: ``y`` is the low 255 bits *taken modulo p* and the sign bit picks
   ``x`` -- a ``y`` of ``p`` or more, or a sign bit set on ``x = 0``, is not refused (RFC 8032 section
   5.1.3 would refuse both). A ``y`` with no point on the curve is refused. Small-order and
   mixed-order keys are not refused (since protocol 1.14 no such key can be registered: ``key.weak``).
3. ``h = SHA-512(R || A || M)`` modulo ``L``, over the bytes exactly as given.
4. Accept if and only if the canonical encoding of ``[S]B - [h]A`` is byte for byte ``R``: the
   cofactorless equation of RFC 8032 section 5.1.7, where ``R`` must be a canonical encoding (``y < p``,
   no sign bit on ``x = 0``) since no other bytes can compare equal.

Points are in extended coordinates ``(X, Y, Z, T)`` with ``x = X/Z``, ``y = Y/Z``, ``xy = T/Z`` (RFC 8032
section 5.1.4), added with the complete formula for ``-x^2 + y^2 = 1 + d x^2 y^2`` (it also doubles).
"""

from __future__ import annotations

import hashlib

__all__ = [
    "BASE",
    "IDENTITY",
    "L",
    "P",
    "Point",
    "accepts",
    "add",
    "decode",
    "encode",
    "is_canonical_point_encoding",
    "multiply",
    "negate",
    "same_point",
]

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
D = -121665 * pow(121666, -1, P) % P
SQRT_MINUS_ONE = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]
IDENTITY: Point = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    """``p + q`` (complete: correct for every pair of curve points, ``p == q`` included)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def negate(p: Point) -> Point:
    """``-p``: the point with the opposite ``x``."""
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def multiply(scalar: int, p: Point) -> Point:
    """``[scalar]p`` for a scalar >= 0, by double and add (not constant time: only public values here)."""
    result = IDENTITY
    while scalar:
        if scalar & 1:
            result = add(result, p)
        p = add(p, p)
        scalar >>= 1
    return result


def same_point(p: Point, q: Point) -> bool:
    """True if ``p`` and ``q`` are the same point (projective coordinates compared crosswise)."""
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def _x_from_y(y: int, sign: int) -> int | None:
    """The ``x`` of the curve point with this ``y`` (< p) whose low bit is ``sign``, None if there is none.

    For ``x = 0`` the sign bit cannot be honoured and is ignored (as OpenSSL does).
    """
    xx = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if x * x % P != xx:
        x = x * SQRT_MINUS_ONE % P
    if x * x % P != xx:
        return None
    if x & 1 != sign:
        x = -x % P
    return x


def decode(encoding: bytes) -> Point | None:
    """The point 32 bytes name, read as OpenSSL reads a public key (``y`` modulo p); None if off the curve."""
    number = int.from_bytes(encoding, "little")
    y = (number & (2**255 - 1)) % P
    x = _x_from_y(y, number >> 255)
    return None if x is None else (x, y, 1, x * y % P)


def encode(p: Point) -> bytes:
    """The canonical 32-byte encoding: ``y < p`` little-endian, the low bit of ``x`` in the top bit."""
    x, y, z, _ = p
    z_inverse = pow(z, -1, P)
    x, y = x * z_inverse % P, y * z_inverse % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def is_canonical_point_encoding(encoding: bytes) -> bool:
    """True if the 32 bytes are a curve point's one canonical encoding (what RFC 8032 section 5.1.3 decodes)."""
    point = decode(encoding)
    return point is not None and encode(point) == encoding


BASE: Point = decode((4 * pow(5, -1, P) % P).to_bytes(32, "little"))  # type: ignore[assignment]  # y = 4/5, x even


def accepts(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True if the protocol's rule (this module's docstring) accepts ``signature`` by ``public_key`` on ``message``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    a = decode(public_key)
    if a is None:
        return False
    h = int.from_bytes(hashlib.sha512(r + public_key + message).digest(), "little") % L
    return encode(add(multiply(s, BASE), negate(multiply(h, a)))) == r
