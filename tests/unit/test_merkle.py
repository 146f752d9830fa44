"""verification.merkle and ledger.tree.proofs: the RFC 9162 Merkle tree over the log.

The oracle is a straightforward recursive transcription of RFC 9162 section 2.1 (MTH, PATH,
PROOF/SUBPROOF) written below, plus the published RFC 6962 test vectors of
transparency-dev/merkle. The verifiers are checked on every proof of every tree up to 300
leaves, on random larger trees with corrupted proofs, and the range planning on huge trees.
"""

from __future__ import annotations

import functools
import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.tree.proofs import (
    combine,
    consistency_ranges,
    frontier_nodes,
    inclusion_ranges,
    is_subtree,
    new_nodes,
    node_id,
    node_of,
    node_range,
    part_ids,
    perfect_parts,
    proof_node_ids,
    resolve,
)
from verification.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    ProofError,
    consistency_proof_size,
    inclusion_proof_size,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

# --------------------------------------------------------------------------------------------
# Published test vectors
# --------------------------------------------------------------------------------------------

# transparency-dev/merkle testonly/constants.go: LeafInputs(), NodeHashes(), RootHashes(),
# CompactTrees() -- the RFC 6962 vectors first published with certificate-transparency.
LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
NODE_HASHES = [  # [level][index]: every perfect subtree of the 8-leaf tree
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]
ROOT_HASHES = [  # indexed by tree size, 0 to 8
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
_nh = NODE_HASHES
COMPACT_TREES = [  # the frontier of each tree size, 0 to 8
    [],
    [_nh[0][0]],
    [_nh[1][0]],
    [_nh[1][0], _nh[0][2]],
    [_nh[2][0]],
    [_nh[2][0], _nh[0][4]],
    [_nh[2][0], _nh[1][2]],
    [_nh[2][0], _nh[1][2], _nh[0][6]],
    [_nh[3][0]],
]

# transparency-dev/merkle proof/verify_test.go (inclusionProofs, consistencyProofs; also as JSON
# in testdata/inclusion/*/happy-path.json and testdata/consistency/*/happy-path.json). The
# inclusion vectors there count leaves from 1; here they are 0-based leaf indices.
INCLUSION_VECTORS = [  # (index, size, proof)
    (0, 1, []),
    (0, 8, [
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ]),
    (5, 8, [
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]),
    (2, 3, [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    ]),
    (1, 5, [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    ]),
]  # fmt: skip
CONSISTENCY_VECTORS = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, [
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ]),
    (6, 8, [
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]),
    (2, 5, [
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    ]),
    (6, 7, [
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]),
]  # fmt: skip
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")  # verify_test.go


# --------------------------------------------------------------------------------------------
# The oracle: RFC 9162 section 2.1, transcribed recursively
# --------------------------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH, PATH and PROOF of RFC 9162 sections 2.1.1, 2.1.3.1 and 2.1.4.1 over fixed leaves."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.leaf_hashes = [hashlib.sha256(b"\x00" + d).digest() for d in entries]

    @functools.lru_cache(maxsize=None)  # noqa: B019 - one Reference per test data set
    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end])."""
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self.leaf_hashes[start]
        k = _split(n)
        return hashlib.sha256(
            b"\x01" + self.mth(start, start + k) + self.mth(start + k, end)
        ).digest()

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        """PATH(m, D[start:end]), m relative to start."""
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return self.path(m, start, start + k) + [self.mth(start + k, end)]
        return self.path(m - k, start + k, end) + [self.mth(start, start + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) for 0 < m < n."""
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, start: int, end: int, b: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if b else [self.mth(start, end)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, start, start + k, b) + [self.mth(start + k, end)]
        return self._subproof(m - k, start + k, end, False) + [self.mth(start, start + k)]

    def nodes(self, n: int) -> set[tuple[int, int]]:
        """Every node [start, end) of the tree of size n."""
        found = set()

        def walk(start: int, end: int) -> None:
            found.add((start, end))
            if end - start > 1:
                k = _split(end - start)
                walk(start, start + k)
                walk(start + k, end)

        walk(0, n)
        return found


def _entries(count: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 40)) + i.to_bytes(4, "big") for i in range(count)]


BIG = Reference(_entries(3000))
"""The oracle for trees up to 3,000 leaves (each tree is a prefix of these entries)."""


@functools.lru_cache(maxsize=None)
def _stored(size: int) -> dict[int, bytes]:
    """The node rows of the tree of ``size`` leaves of BIG, as the server stores them."""
    _, rows = new_nodes(CompactRange(), BIG.leaf_hashes[:size])
    return dict(rows)


STORED = _stored(3000)  # the rows of a smaller tree are a subset


def _flip(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[position])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:position], bytes(changed), *proof[position + 1 :]]


# --------------------------------------------------------------------------------------------
# Hashes, roots and the published vectors
# --------------------------------------------------------------------------------------------


def test_hashes() -> None:
    assert HASH_SIZE == 32
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest() == NODE_HASHES[0][0]
    a, b = NODE_HASHES[0][0], NODE_HASHES[0][1]
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest() == NODE_HASHES[1][0]
    assert node_hash(bytearray(a), memoryview(b)) == NODE_HASHES[1][0]


def test_vectors_leaf_and_node_hashes() -> None:
    assert [leaf_hash(d) for d in LEAF_INPUTS] == NODE_HASHES[0]
    for level in range(1, 4):
        for index, value in enumerate(NODE_HASHES[level]):
            assert node_hash(NODE_HASHES[level - 1][2 * index], NODE_HASHES[level - 1][2 * index + 1]) == value


@pytest.mark.parametrize("size", range(9))
def test_vectors_roots_and_frontiers(size: int) -> None:
    leaves = [leaf_hash(d) for d in LEAF_INPUTS[:size]]
    assert root_from_leaf_hashes(leaves) == ROOT_HASHES[size]
    assert Reference(LEAF_INPUTS[:size]).mth(0, size) == ROOT_HASHES[size]
    compact = CompactRange()
    for value in leaves:
        compact.append(value)
    assert compact.size == size
    assert compact.hashes == tuple(COMPACT_TREES[size])
    assert compact.root() == ROOT_HASHES[size]
    assert CompactRange(size, COMPACT_TREES[size]).root() == ROOT_HASHES[size]
    # the stored nodes, and the frontier reloaded from them
    frontier, rows = new_nodes(CompactRange(), leaves)
    assert frontier == compact
    stored = dict(rows)
    assert len(stored) == len(rows)
    assert stored == {
        node_id(level, index): value
        for level, values in enumerate(NODE_HASHES)
        for index, value in enumerate(values)
        if (index + 1) << level <= size
    }
    assert [stored[node_id(*n)] for n in frontier_nodes(size)] == COMPACT_TREES[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_vectors_inclusion(index: int, size: int, proof: list[bytes]) -> None:
    leaf = leaf_hash(LEAF_INPUTS[index])
    root = ROOT_HASHES[size]
    verify_inclusion(leaf, index, size, proof, root)
    assert root_from_inclusion_proof(leaf, index, size, proof) == root
    stored = dict(new_nodes(CompactRange(), [leaf_hash(d) for d in LEAF_INPUTS])[1])
    assert resolve(inclusion_ranges(index, size), stored) == proof
    assert Reference(LEAF_INPUTS).path(index, 0, size) == proof
    # verifierCheck's corruptions (proof/verify_test.go)
    corrupt = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]),
        (index, size, root, leaf, [root, *proof]),
    ]
    corrupt += [(index, size, root, leaf, _flip(proof, i, 3)) for i in range(len(proof))]
    if proof:
        corrupt.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        corrupt.append((index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    for i, n, r, leaf_, p in corrupt:
        with pytest.raises(ProofError):
            verify_inclusion(leaf_, i, n, p, r)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_vectors_consistency(old: int, new: int, proof: list[bytes]) -> None:
    root1, root2 = ROOT_HASHES[old], ROOT_HASHES[new]
    verify_consistency(old, new, root1, root2, proof)
    stored = dict(new_nodes(CompactRange(), [leaf_hash(d) for d in LEAF_INPUTS])[1])
    assert resolve(consistency_ranges(old, new), stored) == proof
    if old < new:
        assert Reference(LEAF_INPUTS).proof(old, new) == proof
    if not proof:
        return
    # verifierConsistencyCheck's corruptions (proof/verify_test.go)
    corrupt = [
        (old - 1, new, root1, root2, proof),
        (old + 1, new, root1, root2, proof),
        (old ^ 2, new, root1, root2, proof),
        (old, new * 2, root1, root2, proof),
        (old, new // 2, root1, root2, proof),
        (old, new, b"WrongRoot", root2, proof),
        (old, new, root1, b"WrongRoot", proof),
        (old, new, SOME_HASH, root2, proof),
        (old, new, root1, SOME_HASH, proof),
        (old, new, root2, root1, proof),
        (old, new, root1, root2, []),
        (old, new, root1, root2, [*proof, b""]),
        (old, new, root1, root2, [*proof, root1]),
        (old, new, root1, root2, [*proof, root2]),
        (old, new, root1, root2, [b"", *proof]),
        (old, new, root1, root2, [root1, *proof]),
        (old, new, root1, root2, [root2, *proof]),
        (old, new, root1, root2, [proof[0], *proof]),
        (old, new, root1, root2, proof[:-1]),
    ]
    corrupt += [(old, new, root1, root2, _flip(proof, i, 4)) for i in range(len(proof))]
    for m, n, r1, r2, p in corrupt:
        with pytest.raises(ProofError):
            verify_consistency(m, n, r1, r2, p)


# RFC 9162 section 2.1.5, the tree of 7 leaves: a..f, j are leaves 0..6 (j = d6); g = [0, 2),
# h = [2, 4), i = [4, 6), k = [0, 4), l = [4, 7).
_RFC = {
    "a": (0, 1), "b": (1, 2), "c": (2, 3), "d": (3, 4), "e": (4, 5), "f": (5, 6), "j": (6, 7),
    "g": (0, 2), "h": (2, 4), "i": (4, 6), "k": (0, 4), "l": (4, 7),
}  # fmt: skip


@pytest.mark.parametrize(
    ("index", "path"), [(0, "bhl"), (3, "cgl"), (4, "fjk"), (6, "ik")]
)
def test_rfc_example_inclusion(index: int, path: str) -> None:
    assert inclusion_ranges(index, 7) == [_RFC[name] for name in path]


@pytest.mark.parametrize(("old", "path"), [(3, "cdgl"), (4, "l"), (6, "ijk")])
def test_rfc_example_consistency(old: int, path: str) -> None:
    assert consistency_ranges(old, 7) == [_RFC[name] for name in path]


# transparency-dev/merkle proof/proof_test.go (TestInclusion, TestConsistency): the stored
# nodes of some proofs, including ones that need the hash of a non-perfect range ("rehash").
@pytest.mark.parametrize(
    ("ranges", "nodes"),
    [
        (inclusion_ranges(0, 7), [(0, 1), (1, 1), (0, 6), (1, 2)]),
        (inclusion_ranges(6, 7), [(1, 2), (2, 0)]),
        (inclusion_ranges(3, 5), [(0, 2), (1, 0), (0, 4)]),
        (inclusion_ranges(10, 15), [(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)]),
        (inclusion_ranges(24, 31), [(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)]),
        (
            inclusion_ranges(81, 95),
            [(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)],
        ),
        (consistency_ranges(1, 6), [(0, 1), (1, 1), (1, 2)]),
        (consistency_ranges(3, 7), [(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)]),
        (consistency_ranges(4, 7), [(0, 6), (1, 2)]),
        (consistency_ranges(7, 8), [(0, 6), (0, 7), (1, 2), (2, 0)]),
        (consistency_ranges(10, 15), [(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)]),
        (consistency_ranges(24, 31), [(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)]),
        (
            consistency_ranges(81, 95),
            [(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)],
        ),
    ],
)
def test_stored_nodes_of_proofs(ranges: list[tuple[int, int]], nodes: list[tuple[int, int]]) -> None:
    assert proof_node_ids(ranges) == sorted(node_id(*n) for n in nodes)


@settings(max_examples=500)
@given(st.integers(0, 2**60), st.integers(0, 2**60))
def test_part_ids_are_the_ids_of_the_perfect_parts(start: int, end: int) -> None:
    """`part_ids` (its shortcut for a perfect range included) names exactly `perfect_parts`' nodes, in order,
    and refuses what `perfect_parts` refuses, as `ValueError`."""
    for a, b in ((start, end), (min(start, end), max(start, end)), (start - start % 1024, start - start % 1024 + 512)):
        try:
            expected = [node_id(*p) for p in perfect_parts(a, b)]
        except ValueError:
            with pytest.raises(ValueError):
                part_ids(a, b)
            continue
        assert part_ids(a, b) == expected


def test_part_ids_of_perfect_ranges_and_of_ranges_that_are_not_nodes() -> None:
    assert part_ids(8, 16) == [node_id(3, 1)]
    assert part_ids(0, 1) == [node_id(0, 0)]
    assert part_ids(8, 14) == [node_id(2, 2), node_id(1, 6)]
    for not_a_node in ((4, 12), (1, 3), (5, 5), (-8, 0), (1 << 57, (1 << 57) + 1)):
        with pytest.raises(ValueError):
            part_ids(*not_a_node)


# --------------------------------------------------------------------------------------------
# Every proof of every tree up to 300 leaves
# --------------------------------------------------------------------------------------------


def test_every_proof_up_to_300() -> None:
    for size in range(1, 301):
        root = BIG.mth(0, size)
        for index in range(size):
            ranges = inclusion_ranges(index, size)
            proof = [BIG.mth(a, b) for a, b in ranges]
            assert resolve(ranges, STORED) == proof
            verify_inclusion(BIG.leaf_hashes[index], index, size, proof, root)
        assert BIG.path(size // 3, 0, size) == [BIG.mth(a, b) for a, b in inclusion_ranges(size // 3, size)]
        for old in range(0, size + 1):
            ranges = consistency_ranges(old, size)
            proof = [BIG.mth(a, b) for a, b in ranges]
            assert resolve(ranges, STORED) == proof
            verify_consistency(old, size, BIG.mth(0, old), root, proof)
        if size > 1:
            old = size * 2 // 3 or 1
            assert BIG.proof(old, size) == [BIG.mth(a, b) for a, b in consistency_ranges(old, size)]


@pytest.mark.parametrize("size", range(1, 150))
def test_reference_paths_and_proofs(size: int) -> None:
    """The planned ranges give exactly the RFC's PATH and PROOF (every index, every old size)."""
    for index in range(size):
        assert [BIG.mth(a, b) for a, b in inclusion_ranges(index, size)] == BIG.path(index, 0, size)
    for old in range(1, size):
        assert [BIG.mth(a, b) for a, b in consistency_ranges(old, size)] == BIG.proof(old, size)


def test_proof_sizes() -> None:
    for size in range(1, 300):
        for index in range(size):
            assert inclusion_proof_size(index, size) == len(inclusion_ranges(index, size))
        for old in range(size + 1):
            assert consistency_proof_size(old, size) == len(consistency_ranges(old, size))


# --------------------------------------------------------------------------------------------
# Random larger trees: valid proofs verify, corrupted ones never do
# --------------------------------------------------------------------------------------------


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, 3000))
    return draw(st.integers(0, size - 1)), size


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(2, 3000))
    return draw(st.integers(1, new - 1)), new


@settings(max_examples=150, deadline=None)
@given(inclusion_cases(), st.data())
def test_inclusion_corrupted(case: tuple[int, int], data: st.DataObject) -> None:
    index, size = case
    leaf, root = BIG.leaf_hashes[index], BIG.mth(0, size)
    proof = resolve(inclusion_ranges(index, size), STORED)
    verify_inclusion(leaf, index, size, proof, root)
    assert proof == BIG.path(index, 0, size)

    def fails(leaf_: bytes, index_: int, size_: int, proof_: list[bytes], root_: bytes) -> None:
        with pytest.raises(ProofError):
            verify_inclusion(leaf_, index_, size_, proof_, root_)

    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        fails(leaf, index, size, _flip(proof, position, data.draw(st.integers(0, 255))), root)
        fails(leaf, index, size, proof[:position] + proof[position + 1 :], root)
    position = data.draw(st.integers(0, len(proof)), label="insert at")
    extra = data.draw(st.sampled_from([SOME_HASH, root, leaf, *proof]), label="extra")
    fails(leaf, index, size, [*proof[:position], extra, *proof[position:]], root)
    other = data.draw(st.integers(0, 2999).filter(lambda i: i != index), label="other index")
    fails(leaf, other, size, proof, root)
    fails(BIG.leaf_hashes[other], index, size, proof, root)
    other_size = data.draw(st.integers(1, 3000).filter(lambda n: n != size), label="other size")
    fails(leaf, index, other_size, proof, BIG.mth(0, other_size))
    fails(leaf, index, size, proof, BIG.mth(0, other_size))
    fails(leaf, index, size * 2, proof, root)
    fails(leaf, index, size // 2, proof, root)
    fails(leaf, index, size, proof, _flip([root], 0, data.draw(st.integers(0, 255)))[0])


@settings(max_examples=150, deadline=None)
@given(consistency_cases(), st.data())
def test_consistency_corrupted(case: tuple[int, int], data: st.DataObject) -> None:
    old, new = case
    root1, root2 = BIG.mth(0, old), BIG.mth(0, new)
    proof = resolve(consistency_ranges(old, new), STORED)
    verify_consistency(old, new, root1, root2, proof)
    assert proof == BIG.proof(old, new)

    def fails(old_: int, new_: int, root1_: bytes, root2_: bytes, proof_: list[bytes]) -> None:
        with pytest.raises(ProofError):
            verify_consistency(old_, new_, root1_, root2_, proof_)

    position = data.draw(st.integers(0, len(proof) - 1), label="position")
    fails(old, new, root1, root2, _flip(proof, position, data.draw(st.integers(0, 255))))
    fails(old, new, root1, root2, proof[:position] + proof[position + 1 :])
    position = data.draw(st.integers(0, len(proof)), label="insert at")
    extra = data.draw(st.sampled_from([SOME_HASH, root1, root2, *proof]), label="extra")
    fails(old, new, root1, root2, [*proof[:position], extra, *proof[position:]])
    fails(old, new, root1, root2, [])
    fails(old, new, root2, root1, proof)
    fails(new, old, root2, root1, proof)
    other = data.draw(st.integers(1, 3000).filter(lambda m: m not in (old, new)), label="other")
    fails(other, new, root1, root2, proof)
    fails(other, new, BIG.mth(0, other), root2, proof)
    # (not `fails(old, other, root1, root2, proof)`: like an inclusion proof, a consistency
    # proof binds the new size only through its root -- 4 -> 7 also verifies as 4 -> 8)
    fails(old, other, root1, BIG.mth(0, other), proof)
    fails(old, new, BIG.mth(0, other), root2, proof)
    fails(old, new, root1, BIG.mth(0, other), proof)
    fails(old, new, _flip([root1], 0, data.draw(st.integers(0, 255)))[0], root2, proof)
    fails(old, new, root1, _flip([root2], 0, data.draw(st.integers(0, 255)))[0], proof)


# --------------------------------------------------------------------------------------------
# Trivial cases and malformed input
# --------------------------------------------------------------------------------------------


def test_consistency_trivial_cases() -> None:
    # transparency-dev/merkle proof/verify_test.go TestVerifyConsistency, with 32-byte roots
    root1, root2 = b"1" * 32, b"2" * 32
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(1, 1, root2, root2, [])
    verify_consistency(0, 1, EMPTY_ROOT, root2, [])  # the empty tree is consistent with any
    verify_consistency(0, 5, EMPTY_ROOT, ROOT_HASHES[5], [])
    for old, new, r1, r2, proof in [
        (0, 0, root1, root2, []),
        (1, 1, root1, root2, []),
        (1, 0, root1, root2, []),  # time travel to the past
        (2, 1, root1, root2, []),
        (1, 2, root1, root2, []),  # empty proof
        (0, 0, EMPTY_ROOT, root2, []),
        (1, 1, EMPTY_ROOT, root2, []),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),  # roots match, the proof is not empty
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        # transparency-dev accepts any old root for size 0; it can only be MTH({})
        (0, 1, root1, root2, []),
        (0, 0, root1, root1, []),
    ]:
        with pytest.raises(ProofError):
            verify_consistency(old, new, r1, r2, proof)


def test_inclusion_single_entry_and_empty_tree() -> None:
    # TestVerifyInclusionSingleEntry and TestVerifyInclusion (proof/verify_test.go)
    value = leaf_hash(b"data")
    verify_inclusion(value, 0, 1, [], value)
    for leaf, root in [(value, b""), (b"", value), (b"", b"")]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, 0, 1, [], root)
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        for leaf, root in [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, size, [], root)


@pytest.mark.parametrize(
    "args",
    [
        (BIG.leaf_hashes[3], 3, 8, "not a list", BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, 8, b"\x00" * 96, BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, 8, None, BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, 8, [None, None, None], BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, 8, ["a" * 32] * 3, BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, 8, [b"\x00" * 33] * 3, BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], -1, 8, [], BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, -8, [], BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3.0, 8, [], BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, "8", [], BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 8, 8, [], BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 2**64, 2**64 + 1, [SOME_HASH] * 64, BIG.mth(0, 8)),
        (BIG.leaf_hashes[3].hex(), 3, 8, [], BIG.mth(0, 8)),
        (BIG.leaf_hashes[3], 3, 8, [], None),
        (BIG.leaf_hashes[3][:31], 3, 8, [], BIG.mth(0, 8)),
    ],
)
def test_inclusion_malformed(args: tuple) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(*args)


@pytest.mark.parametrize(
    "args",
    [
        (3, 8, BIG.mth(0, 3), BIG.mth(0, 8), None),
        (3, 8, BIG.mth(0, 3), BIG.mth(0, 8), b"\x00" * 128),
        (3, 8, BIG.mth(0, 3), BIG.mth(0, 8), [b"\x00" * 31] * 4),
        (3, 8, BIG.mth(0, 3), BIG.mth(0, 8), [1, 2, 3, 4]),
        (3, 8, BIG.mth(0, 3)[:16], BIG.mth(0, 8), [SOME_HASH] * 4),
        (3, 8, BIG.mth(0, 3), None, [SOME_HASH] * 4),
        (-3, 8, BIG.mth(0, 3), BIG.mth(0, 8), [SOME_HASH] * 4),
        (3, -8, BIG.mth(0, 3), BIG.mth(0, 8), [SOME_HASH] * 4),
        (3, 8.0, BIG.mth(0, 3), BIG.mth(0, 8), [SOME_HASH] * 4),
        (True, 8, BIG.mth(0, 1), BIG.mth(0, 8), [SOME_HASH] * 3),
        (9, 8, BIG.mth(0, 3), BIG.mth(0, 8), [SOME_HASH] * 4),
        (2**64 - 1, 2**64, SOME_HASH, SOME_HASH, [SOME_HASH] * 3),
    ],
)
def test_consistency_malformed(args: tuple) -> None:
    with pytest.raises(ProofError):
        verify_consistency(*args)


def test_proof_error_is_a_value_error() -> None:
    assert issubclass(ProofError, ValueError)
    with pytest.raises(ProofError, match="not in a tree of size 8"):
        verify_inclusion(SOME_HASH, 8, 8, [], SOME_HASH)
    with pytest.raises(ProofError, match="has 3 hashes, not 2"):
        verify_inclusion(SOME_HASH, 0, 8, [SOME_HASH] * 2, SOME_HASH)


def test_verifiers_accept_bytearrays() -> None:
    proof = [bytearray(x) for x in resolve(inclusion_ranges(5, 11), STORED)]
    verify_inclusion(bytearray(BIG.leaf_hashes[5]), 5, 11, proof, bytearray(BIG.mth(0, 11)))
    proof = [bytearray(x) for x in resolve(consistency_ranges(5, 11), STORED)]
    verify_consistency(5, 11, bytearray(BIG.mth(0, 5)), bytearray(BIG.mth(0, 11)), tuple(proof))


# --------------------------------------------------------------------------------------------
# Compact ranges
# --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=12), max_size=200), st.data())
def test_compact_range_root(entries: list[bytes], data: st.DataObject) -> None:
    reference = Reference(entries)
    leaves = reference.leaf_hashes
    assert root_from_leaf_hashes(leaves) == reference.mth(0, len(entries))
    compact = CompactRange()
    position = 0
    while position < len(leaves):
        count = data.draw(st.integers(1, 40), label="batch")
        compact.extend(iter(leaves[position : position + count]))
        position = min(len(leaves), position + count)
        assert compact.size == position
        assert compact.root() == reference.mth(0, position)
        assert len(compact.hashes) == position.bit_count()
        assert compact == CompactRange(compact.size, compact.hashes)


def test_compact_range_validation() -> None:
    with pytest.raises(ValueError, match="3 frontier hashes, not 2"):
        CompactRange(7, [SOME_HASH, SOME_HASH])
    for size in [-1, 1.0, "1", True]:
        with pytest.raises(ValueError):
            CompactRange(size, [SOME_HASH])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CompactRange(1, [SOME_HASH[:31]])
    with pytest.raises(ValueError):
        CompactRange(1, ["x" * 32])  # type: ignore[list-item]
    compact = CompactRange(3, [bytearray(BIG.mth(0, 2)), BIG.leaf_hashes[2]])
    assert compact.hashes == (BIG.mth(0, 2), BIG.leaf_hashes[2])
    assert all(type(x) is bytes for x in compact.hashes)
    # a bad leaf stops extend() after the leaves before it, and leaves the range consistent
    with pytest.raises(ValueError, match="leaf hash is 32 bytes, not 5"):
        compact.extend([BIG.leaf_hashes[3], BIG.leaf_hashes[4], b"short"])
    assert compact.size == 5
    assert compact.root() == BIG.mth(0, 5)
    with pytest.raises(ValueError):
        compact.append("x" * 32)  # type: ignore[arg-type]
    compact.append(bytearray(BIG.leaf_hashes[5]))
    assert compact.root() == BIG.mth(0, 6)
    assert all(type(x) is bytes for x in compact.hashes)
    twin = compact.copy()
    twin.append(BIG.leaf_hashes[6])
    assert (compact.size, twin.size) == (6, 7)
    assert compact != twin
    assert CompactRange().root() == EMPTY_ROOT
    assert CompactRange().hashes == ()
    assert "size=6" in repr(compact)


def test_compact_range_from_stored_nodes() -> None:
    for size in list(range(0, 300)) + [511, 512, 513, 1023, 2047, 2048, 2999, 3000]:
        hashes = [STORED[node_id(*n)] for n in frontier_nodes(size)]
        compact = CompactRange(size, hashes)
        assert compact.root() == BIG.mth(0, size)
        # and it grows like a range that saw every leaf
        compact.extend(BIG.leaf_hashes[size : size + 5])
        assert compact.root() == BIG.mth(0, min(size + 5, 3000))


# --------------------------------------------------------------------------------------------
# The stored nodes
# --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 70), max_size=40))
def test_new_nodes_in_batches(batches: list[int]) -> None:
    frontier = CompactRange()
    rows: list[tuple[int, bytes]] = []
    for count in batches:
        given_, snapshot = frontier, frontier.copy()
        frontier, new = new_nodes(given_, BIG.leaf_hashes[given_.size : given_.size + count])
        assert given_ == snapshot  # the argument is not changed
        rows += new
    size = frontier.size
    assert size == sum(batches)
    stored = dict(rows)
    assert len(stored) == len(rows), "a node written twice"
    expected = {
        node_id(level, index)
        for level in range(size.bit_length())
        for index in range(size >> level)
    }
    assert set(stored) == expected
    assert len(rows) == 2 * size - size.bit_count()
    for key, value in stored.items():
        assert value == BIG.mth(*node_range(*node_of(key)))
    assert frontier.root() == BIG.mth(0, size)
    assert CompactRange(size, [stored[node_id(*n)] for n in frontier_nodes(size)]) == frontier


def test_new_nodes_leaves_the_frontier_alone() -> None:
    frontier = CompactRange()
    frontier.extend(BIG.leaf_hashes[:5])
    before = frontier.copy()
    after, rows = new_nodes(frontier, BIG.leaf_hashes[5:8])
    assert frontier == before
    assert after.root() == BIG.mth(0, 8)
    assert [node_of(key) for key, _ in rows] == [(0, 5), (1, 2), (0, 6), (0, 7), (1, 3), (2, 1), (3, 0)]
    with pytest.raises(ValueError):
        new_nodes(frontier, [b"short"])
    with pytest.raises(ValueError):
        new_nodes(frontier, [bytearray(32)])


def test_node_ids() -> None:
    assert node_id(0, 0) == 0
    assert node_id(0, 5) == 5
    assert node_id(1, 0) == 1 << 56
    assert node_id(3, 7) == (3 << 56) | 7
    assert node_id(63, 2**56 - 1) < 2**63 - 1  # fits a signed 64-bit integer
    for level, index in [(0, 0), (5, 12345), (40, 2**16), (63, 2**56 - 1), (56, 0)]:
        assert node_of(node_id(level, index)) == (level, index)
    for level, index in [(-1, 0), (64, 0), (0, -1), (0, 2**56)]:
        with pytest.raises(ValueError):
            node_id(level, index)
    for key in [-1, 64 << 56]:
        with pytest.raises(ValueError):
            node_of(key)
    assert node_range(2, 3) == (12, 16)


# --------------------------------------------------------------------------------------------
# Range planning: subtrees, perfect parts, huge trees
# --------------------------------------------------------------------------------------------


def test_is_subtree_is_a_node_of_the_tree() -> None:
    for end in range(1, 130):
        nodes = BIG.nodes(end)
        for start in range(end):
            assert is_subtree(start, end) == ((start, end) in nodes), (start, end)
        assert all(is_subtree(s, e) for s, e in nodes)  # nodes of other sizes are perfect
    assert not is_subtree(3, 3)
    assert not is_subtree(-1, 0)
    with pytest.raises(ValueError, match=r"\[1, 3\) are not a subtree"):
        perfect_parts(1, 3)


def test_perfect_parts() -> None:
    assert perfect_parts(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_parts(4, 7) == [(1, 2), (0, 6)]
    assert perfect_parts(8, 16) == [(3, 1)]
    assert perfect_parts(6, 7) == [(0, 6)]
    for end in range(1, 300):
        for start in range(end):
            if is_subtree(start, end):
                parts = perfect_parts(start, end)
                assert combine([STORED[node_id(*p)] for p in parts]) == BIG.mth(start, end)
                assert len(parts) == (end - start).bit_count()
    assert frontier_nodes(0) == []
    assert frontier_nodes(13) == [(3, 0), (2, 2), (0, 12)]
    with pytest.raises(ValueError):
        combine([])
    with pytest.raises(ValueError):
        frontier_nodes(-1)


def _check_inclusion_ranges(index: int, size: int) -> None:
    ranges = inclusion_ranges(index, size)
    assert len(ranges) == inclusion_proof_size(index, size) <= 2 * 64
    assert all(is_subtree(a, b) for a, b in ranges)
    # the ranges and the leaf tile the tree
    tiles = sorted([*ranges, (index, index + 1)])
    assert tiles[0][0] == 0 and tiles[-1][1] == size
    assert all(x[1] == y[0] for x, y in zip(tiles, tiles[1:]))
    # siblings, from the leaf up: each range is next to the union of the previous ones
    low, high = index, index + 1
    for a, b in ranges:
        assert b == low or a == high
        low, high = min(low, a), max(high, b)
    # at most one range is not perfect, so O(log n) stored nodes
    assert sum(len(perfect_parts(a, b)) > 1 for a, b in ranges) <= 1
    assert len(proof_node_ids(ranges)) <= 2 * 64


def _check_consistency_ranges(old: int, new: int) -> None:
    ranges = consistency_ranges(old, new)
    assert len(ranges) == consistency_proof_size(old, new) <= 2 * 64
    assert all(is_subtree(a, b) for a, b in ranges)
    known = [(0, old)] if old & (old - 1) == 0 else []  # a power of two: old root is a range
    tiles = sorted(ranges + known)
    assert tiles[0][0] == 0 and tiles[-1][1] == new
    assert all(x[1] == y[0] for x, y in zip(tiles, tiles[1:]))
    # the ranges inside the old tree tile it: they give the old root
    old_tiles = sorted(r for r in ranges + known if r[1] <= old)
    assert old_tiles[0][0] == 0 and old_tiles[-1][1] == old
    assert all(x[1] == y[0] for x, y in zip(old_tiles, old_tiles[1:]))
    assert sum(len(perfect_parts(a, b)) > 1 for a, b in ranges) <= 1
    assert len(proof_node_ids(ranges)) <= 2 * 64


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**56 - 1), st.data())
def test_ranges_in_huge_trees(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1) | st.sampled_from([0, size - 1, size // 2]))
    _check_inclusion_ranges(index, size)
    old = data.draw(st.integers(1, size) | st.sampled_from([1, size, size - 1 or 1]))
    if old < size:
        _check_consistency_ranges(old, size)
    else:
        assert consistency_ranges(old, size) == []


def test_ranges_in_small_trees() -> None:
    for size in range(1, 200):
        for index in range(size):
            _check_inclusion_ranges(index, size)
        for old in range(1, size):
            _check_consistency_ranges(old, size)


def test_ranges_reject_impossible_arguments() -> None:
    for index, size in [(0, 0), (5, 5), (-1, 3)]:
        with pytest.raises(ValueError):
            inclusion_ranges(index, size)
    for old, new in [(5, 4), (-1, 3)]:
        with pytest.raises(ValueError):
            consistency_ranges(old, new)
    assert consistency_ranges(0, 9) == consistency_ranges(9, 9) == consistency_ranges(0, 0) == []
    assert inclusion_ranges(0, 1) == []
    with pytest.raises(KeyError, match="level 0, index 1"):
        resolve(inclusion_ranges(0, 6), {})
