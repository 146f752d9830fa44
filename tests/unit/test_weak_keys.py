"""verification.weak_keys.is_weak_public_key: the registry's `key.weak` rule (docs/protocol.md section 7).

Weak: every public key of the Ed25519 edge-case vectors that is not an ordinary key (tests/data/
ed25519-edge-cases.json), all eight small-order points, every mixed-order point ``A + T``, the non-canonical
encodings (``y >= p``, a sign bit on ``x = 0``), bytes that are no point, lengths other than 32. Not weak: the
vectors' ordinary key and any key ``cryptography`` makes (hypothesis).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from verification.ed25519_reference import BASE, IDENTITY, L, P, add, decode, encode, multiply, same_point
from verification.weak_keys import is_weak_public_key

VECTOR_FILE = Path(__file__).resolve().parents[2] / "verification" / "vectors" / "ed25519-edge-cases.json"
VECTORS = json.loads(VECTOR_FILE.read_text("utf-8"))["vectors"]
ORDINARY = bytes.fromhex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")  # seed 00 01 .. 1f
T8 = decode(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))
assert T8 is not None
TORSION = [multiply(k, T8) for k in range(8)]  # the eight points of small order, identity first


def _raw(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _order(point: tuple[int, int, int, int]) -> int:
    return next(k for k in (1, 2, 4, 8) if same_point(multiply(k, point), IDENTITY))


def test_the_torsion_points_have_the_orders_they_are_said_to() -> None:
    assert sorted(_order(t) for t in TORSION) == [1, 2, 4, 4, 8, 8, 8, 8]
    assert len({encode(t) for t in TORSION}) == 8


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_every_edge_case_key_but_the_ordinary_one_is_weak(vector: dict[str, str]) -> None:
    key = bytes.fromhex(vector["public_key"])
    assert is_weak_public_key(key) == (key != ORDINARY), vector["name"]


def test_the_edge_cases_cover_each_kind_of_weak_key() -> None:
    names = {v["name"] for v in VECTORS if bytes.fromhex(v["public_key"]) != ORDINARY}
    for kind in ("A = identity", "A of order 8", "mixed-order A", "y = p + 1", "sign bit set", "y = p",
                 "not on the curve"):
        assert any(kind in name for name in names), kind


@pytest.mark.parametrize("k", range(8))
def test_small_order_points_are_weak(k: int) -> None:
    encoding = encode(TORSION[k])
    assert decode(encoding) is not None
    assert is_weak_public_key(encoding)


@pytest.mark.parametrize("k", range(1, 8))
def test_mixed_order_points_are_weak(k: int) -> None:
    good = decode(_raw(Ed25519PrivateKey.generate()))
    assert good is not None
    mixed = encode(add(good, TORSION[k]))
    assert decode(mixed) is not None  # a point of the curve, and canonically encoded
    assert is_weak_public_key(mixed)


def test_non_canonical_encodings_are_weak() -> None:
    # y >= p: the points whose y is below 19 have a second encoding y + p (below 2^255)
    for y in range(19):
        number = y + P
        encoding = number.to_bytes(32, "little")
        if decode(encoding) is not None:
            assert is_weak_public_key(encoding), y
            assert is_weak_public_key((number | 1 << 255).to_bytes(32, "little")), y
    # the sign bit set on x = 0: the identity (y = 1) and the point of order 2 (y = p - 1)
    for y in (1, P - 1):
        assert is_weak_public_key((y | 1 << 255).to_bytes(32, "little")), y
    # (the sign bit of a real key, flipped, names -A: another key of order L, canonical, hence not weak)
    key = bytearray(_raw(Ed25519PrivateKey.generate()))
    key[31] ^= 0x80
    assert not is_weak_public_key(bytes(key))


def test_bytes_that_are_no_point_or_no_key_are_weak() -> None:
    assert is_weak_public_key((2).to_bytes(32, "little"))
    assert is_weak_public_key(b"")
    assert is_weak_public_key(ORDINARY[:31])
    assert is_weak_public_key(ORDINARY + b"\0")
    off = [y for y in range(2, 40) if decode(y.to_bytes(32, "little")) is None]
    assert off and all(is_weak_public_key(y.to_bytes(32, "little")) for y in off)


def test_the_ordinary_key_and_the_base_point_are_not_weak() -> None:
    assert not is_weak_public_key(ORDINARY)
    assert not is_weak_public_key(encode(BASE))


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32))
def test_keys_cryptography_makes_are_not_weak(seed: bytes) -> None:
    assert not is_weak_public_key(_raw(Ed25519PrivateKey.from_private_bytes(seed)))


@settings(max_examples=30, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), k=st.integers(min_value=1, max_value=7))
def test_a_real_key_plus_any_small_order_point_is_weak(seed: bytes, k: int) -> None:
    point = decode(_raw(Ed25519PrivateKey.from_private_bytes(seed)))
    assert point is not None
    assert is_weak_public_key(encode(add(point, TORSION[k])))


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(min_size=32, max_size=32))
def test_random_bytes_are_weak_exactly_when_they_are_no_canonical_point_or_of_small_order(raw: bytes) -> None:
    point = decode(raw)
    if point is None or encode(point) != raw:
        assert is_weak_public_key(raw)
        return
    # checked another way than [L]A: every point is Q + T (Q of order L or the identity, T of small order), and
    # [8^-1 mod L](8A) = Q, which is A exactly when T is the identity
    eight_a = multiply(8, point)
    prime_order = not same_point(point, IDENTITY) and same_point(multiply(pow(8, -1, L), eight_a), point)
    assert is_weak_public_key(raw) == (not prime_order)
