"""api/routes_log.py writes a proof's JSON directly: the same bytes, status and headers as `_json` (FastAPI's
JSONResponse's encoding, what the proof routes answered before), for any numbers and hashes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.routes_log import _consistency_json, _inclusion_json, _json

SIZES = st.integers(0, 2**63 - 1)
HASHES = st.lists(st.binary(min_size=32, max_size=32), max_size=64)


def _same(a, b) -> None:  # noqa: ANN001
    assert a.body == b.body
    assert a.status_code == b.status_code
    assert a.raw_headers == b.raw_headers


@given(SIZES, SIZES, st.binary(min_size=32, max_size=32), HASHES)
def test_an_inclusion_proof_is_the_json_it_was(index: int, size: int, leaf: bytes, hashes: list[bytes]) -> None:
    _same(_inclusion_json(index, size, leaf, hashes),
          _json({"index": index, "size": size, "leaf_hash": leaf.hex(), "hashes": [h.hex() for h in hashes]}))


@given(SIZES, SIZES, HASHES)
def test_a_consistency_proof_is_the_json_it_was(old: int, new: int, hashes: list[bytes]) -> None:
    _same(_consistency_json(old, new, hashes), _json({"old": old, "new": new, "hashes": [h.hex() for h in hashes]}))
