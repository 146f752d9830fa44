"""Write verification/vectors/ed25519-edge-cases.json: Ed25519 signatures on the edge cases where verifiers
disagree, each with the verdict of the protocol's rule (docs/protocol.md section 4; verification/ed25519_reference.py).

Ed25519 libraries differ on adversarial signatures: a non-canonical S, small-order and mixed-order points,
non-canonical point encodings, a cofactored or a cofactorless equation. The protocol pins one answer, the
reference verifier's (OpenSSL through ``cryptography``). Whoever writes another verifier, or considers another
library, checks it against this file; tests/unit/test_ed25519_edge_cases.py checks every verifying path of
verification/ and api/ against it, and OpenSSL against the pure-Python statement of the rule.

Each vector is built here with big-integer curve arithmetic (verification.ed25519_reference), from the key
whose seed is 00 01 .. 1f (the key of the protocol's other test vectors), by a signer who knows the secret
scalar where the construction needs it: e.g. ``R' = [r]B + T`` for a small-order ``T``, ``h = H(R' || A || M)``,
``S = r + h a``. Nothing here asks OpenSSL: the verdicts are the rule's, checked by the rule's own code.

Left out on purpose: a non-canonical encoding (y >= p) of a point of large order, and any R whose point has
large order but whose bytes are not canonical: a valid signature for those needs a discrete logarithm nobody
knows, so every signature one can make with them is refused by every verifier anyway.

    .venv/bin/python scripts/make_ed25519_edge_cases.py          # rewrite the file
    .venv/bin/python scripts/make_ed25519_edge_cases.py --check  # exit 1 if the file is not what this writes
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from verification.ed25519_reference import (  # noqa: E402
    BASE,
    IDENTITY,
    L,
    P,
    Point,
    accepts,
    add,
    decode,
    encode,
    multiply,
    same_point,
)

OUT = ROOT / "verification" / "vectors" / "ed25519-edge-cases.json"  # package data: ledger.fast_signatures reads it at run time
SEED = bytes(range(32))
MESSAGE = b'{"purpose":"tagledger/ed25519-edge-cases/v1"}'  # canonical JSON, so it can also be an event body


@dataclass(frozen=True)
class Case:
    name: str
    public_key: bytes
    signature: bytes
    message: bytes
    accepted: bool  # the protocol's verdict
    reason: str

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "public_key": self.public_key.hex(),
            "signature": self.signature.hex(),
            "message": self.message.hex(),
            "verdict": "accept" if self.accepted else "reject",
            "reason": self.reason,
        }


def _scalar(data: bytes) -> int:
    return int.from_bytes(data, "little")


def _challenge(r: bytes, public_key: bytes, message: bytes) -> int:
    """``h = SHA-512(R || A || M)`` modulo L."""
    return _scalar(hashlib.sha512(r + public_key + message).digest()) % L


def _order(point: Point) -> int:
    """The order of a small-order point (1, 2, 4 or 8)."""
    for order in (1, 2, 4, 8):
        if same_point(multiply(order, point), IDENTITY):
            return order
    raise ValueError("not a small-order point")


def _torsion() -> list[Point]:
    """The 8 points of small order, as [k]T for a generator T of order 8 (k = 0..7).

    [L]Q has small order for every curve point Q (the group has 8L points); the first y = 2, 3, ... that
    gives one of order 8 is taken, so the list is the same on every run.
    """
    y = 2
    while True:
        q = decode(y.to_bytes(32, "little"))
        if q is not None:
            t = multiply(L, q)
            if _order(t) == 8:
                return [multiply(k, t) for k in range(8)]
        y += 1


def _from_y(y_bits: int, sign: int = 0) -> bytes:
    """32 bytes: the 255-bit number ``y_bits`` (not reduced: it may be p or more) and the sign bit."""
    return (y_bits | sign << 255).to_bytes(32, "little")


class _Signer:
    """A signer who knows the secret scalar ``a`` of the key made from ``seed`` (RFC 8032 section 5.1.5)."""

    def __init__(self, seed: bytes, message: bytes) -> None:
        digest = hashlib.sha512(seed).digest()
        scalar = bytearray(digest[:32])
        scalar[0] &= 248
        scalar[31] &= 127
        scalar[31] |= 64
        self.a = _scalar(bytes(scalar))
        self.prefix = digest[32:]
        self.public_key = encode(multiply(self.a, BASE))
        self.message = message

    def nonce(self, label: str, counter: int = 0) -> int:
        """A deterministic nonce per case, so that the file is the same on every run."""
        return _scalar(hashlib.sha512(self.prefix + f"{label}/{counter}".encode() + self.message).digest()) % L

    def sign(self, r: int, r_bytes: bytes, public_key: bytes | None = None, secret: int | None = None) -> bytes:
        """``R || S`` with ``S = r + h a`` modulo L, ``h`` over ``r_bytes`` and ``public_key`` as given."""
        public_key = self.public_key if public_key is None else public_key
        secret = self.a if secret is None else secret
        h = _challenge(r_bytes, public_key, self.message)
        return r_bytes + ((r + h * secret) % L).to_bytes(32, "little")

    def sign_message(self, message: bytes) -> bytes:
        """The key's RFC 8032 signature of ``message`` (section 5.1.6: the nonce is H(prefix || M))."""
        r = _scalar(hashlib.sha512(self.prefix + message).digest()) % L
        r_bytes = encode(multiply(r, BASE))
        h = _challenge(r_bytes, self.public_key, message)
        return r_bytes + ((r + h * self.a) % L).to_bytes(32, "little")

    def grind(self, label: str, public_key: bytes, want_zero: bool, modulus: int) -> tuple[int, bytes]:
        """A nonce ``r`` and ``R = [r]B`` whose ``h`` is (or is not) a multiple of ``modulus``."""
        counter = 0
        while True:
            r = self.nonce(label, counter)
            r_bytes = encode(multiply(r, BASE))
            if (_challenge(r_bytes, public_key, self.message) % modulus == 0) == want_zero:
                return r, r_bytes
            counter += 1


def edge_cases(message: bytes = MESSAGE, seed: bytes = SEED) -> list[Case]:
    """The edge cases over ``message``, each with the protocol's verdict (checked against the rule's code)."""
    signer = _Signer(seed, message)
    key = signer.public_key
    torsion = _torsion()
    t8 = torsion[1]
    cases: list[Case] = []

    def case(name: str, public_key: bytes, signature: bytes, accepted: bool, reason: str) -> None:
        if accepts(public_key, signature, message) != accepted:  # the construction is wrong, not the rule
            raise AssertionError(f"{name}: the rule's verdict is not the intended one")
        cases.append(Case(name, public_key, signature, message, accepted, reason))

    # --- baseline and S ---------------------------------------------------------------------------------
    valid = signer.sign_message(message)
    case("valid", key, valid, True, "an ordinary RFC 8032 signature by the key whose seed is 00 01 .. 1f")
    s = _scalar(valid[32:])
    case("S + L", key, valid[:32] + (s + L).to_bytes(32, "little"), False,
         "S + L satisfies the equation modulo L, but S >= L is refused (non-canonical S)")
    case("signature of another message", key, signer.sign_message(message + b" "), False,
         "the key's RFC 8032 signature of the message followed by one space, checked against the message")

    # --- R offset by a small-order point -----------------------------------------------------------------
    for k in range(1, 8):
        t = torsion[k]
        r = signer.nonce("R+T", k)
        r_bytes = encode(add(multiply(r, BASE), t))
        case(f"R + small-order point (order {_order(t)}, k={k})", key, signer.sign(r, r_bytes), False,
             f"R = [r]B + T with T of order {_order(t)} and S = r + ha: [S]B - [h]A is [r]B, not R "
             "(a cofactored check, or 'R - ([S]B - [h]A) has small order', accepts it)")

    # --- small-order R -----------------------------------------------------------------------------------
    identity = encode(IDENTITY)
    case("R = identity (small order)", key, signer.sign(0, identity), True,
         "R is the identity, S = ha: [S]B - [h]A is the identity, encoded as R; small-order R is not refused")
    case("R of order 8", key, signer.sign(0, encode(t8)), False,
         "R is a point of order 8, S = ha: [S]B - [h]A is the identity, not R (a cofactored check accepts it)")

    # --- small-order public keys -------------------------------------------------------------------------
    r = signer.nonce("A=identity")
    case("A = identity (small order)", identity, signer.sign(r, encode(multiply(r, BASE)), identity, 0), True,
         "the public key is the identity, so [h]A vanishes and S = r verifies with no secret; small-order A "
         "is not refused")
    case("A = identity, R = identity, S = 0", identity, identity + bytes(32), True,
         "with the identity as public key this one signature verifies for every message")
    a8 = encode(t8)
    r, r_bytes = signer.grind("A order 8, 8|h", a8, True, 8)
    case("A of order 8, h a multiple of 8", a8, signer.sign(r, r_bytes, a8, 0), True,
         "the public key has order 8 and h = 0 mod 8, so [h]A vanishes and S = r verifies")
    r, r_bytes = signer.grind("A order 8, 8 does not divide h", a8, False, 8)
    case("A of order 8, h not a multiple of 8", a8, signer.sign(r, r_bytes, a8, 0), False,
         "the public key has order 8 and h != 0 mod 8: [S]B - [h]A = R - [h]A is not R "
         "(a cofactored check accepts it)")

    # --- non-canonical encodings of A --------------------------------------------------------------------
    identity_high = _from_y(P + 1)  # y = p + 1: the identity's y, not reduced
    r = signer.nonce("A=identity, y=p+1")
    case("A = identity encoded with y = p + 1", identity_high,
         signer.sign(r, encode(multiply(r, BASE)), identity_high, 0), True,
         "y >= p is read modulo p (the identity) as OpenSSL does; RFC 8032 decoding would refuse this key")
    identity_signed = _from_y(1, sign=1)
    r = signer.nonce("A=identity, sign bit")
    case("A = identity with the sign bit set", identity_signed,
         signer.sign(r, encode(multiply(r, BASE)), identity_signed, 0), True,
         "x = 0 with the sign bit set is read as the identity, as OpenSSL does; RFC 8032 decoding would refuse it")
    order4_high = _from_y(P)  # y = p: y = 0 not reduced, a point of order 4
    r, r_bytes = signer.grind("A order 4, y=p", order4_high, True, 4)
    case("A of order 4 encoded with y = p", order4_high, signer.sign(r, r_bytes, order4_high, 0), True,
         "y = p is read as y = 0 (a point of order 4) and h = 0 mod 4, so S = r verifies; RFC 8032 decoding "
         "would refuse this key")
    y_off = next(y for y in range(2, P) if decode(_from_y(y)) is None)
    off_curve = _from_y(y_off)
    case("A not on the curve", off_curve, signer.sign(signer.nonce("A off"), valid[:32], off_curve), False,
         f"no curve point has y = {y_off}: the key does not decode, nothing verifies under it")

    # --- non-canonical encodings of R --------------------------------------------------------------------
    case("R = identity encoded with y = p + 1", key, signer.sign(0, identity_high), False,
         "the point is the identity, as in the accepted 'R = identity' case, but R's bytes must be the canonical "
         "encoding of [S]B - [h]A")
    case("R = identity with the sign bit set", key, signer.sign(0, identity_signed), False,
         "the identity with the sign bit of x = 0 set is not the canonical encoding of [S]B - [h]A")

    # --- mixed-order public key --------------------------------------------------------------------------
    mixed = encode(add(multiply(signer.a, BASE), t8))
    r, r_bytes = signer.grind("mixed A, 8|h", mixed, True, 8)
    case("mixed-order A = aB + T8, h a multiple of 8", mixed, signer.sign(r, r_bytes, mixed), True,
         "A has a component of order 8 but h = 0 mod 8 makes it vanish: S = r + ha verifies")
    r, r_bytes = signer.grind("mixed A, 8 does not divide h", mixed, False, 8)
    case("mixed-order A = aB + T8, h not a multiple of 8", mixed, signer.sign(r, r_bytes, mixed), False,
         "A has a component of order 8 and h != 0 mod 8: [S]B - [h]A = R - [h]T8, not R "
         "(a cofactored check accepts it)")
    return cases


def document(cases: list[Case]) -> str:
    """The JSON file's text (stable: same input, same bytes)."""
    return json.dumps({
        "about": "Ed25519 (RFC 8032, pure) signatures on the edge cases, with the verdict of tagledger's rule "
                 "(docs/protocol.md section 4): S < L; the public key read as OpenSSL reads it (y modulo p, a "
                 "sign bit on x = 0 ignored, small-order keys not refused); accept if and only if the canonical "
                 "encoding of [S]B - [h]A is R's 32 bytes, h = SHA-512(R || A || M) mod L. Hex strings; the "
                 "signature is R || S.",
        "made_by": "scripts/make_ed25519_edge_cases.py",
        "rule_in_code": "verification/ed25519_reference.py",
        "vectors": [case.to_json() for case in cases],
    }, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = document(edge_cases())
    if argv == ["--check"]:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is not what this script writes: run it", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
