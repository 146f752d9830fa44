"""C2SP tlog-tiles paths, tile sets and entry bundles (verification/tiles.py, docs/protocol.md section 19), checked
against the specification's own examples and against the Merkle tree of verification/merkle.py."""

from __future__ import annotations

import hashlib

import pytest

from verification.merkle import leaf_hash, root_from_leaf_hashes
from verification.tiles import (
    BundleError,
    Tile,
    decode_bundle,
    encode_bundle,
    index_path,
    parse_index_path,
    tile_hash,
    tiles_of,
)


@pytest.mark.parametrize("index, path", [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"),
                                         (1234067, "x001/x234/067"), (10**9, "x001/x000/x000/000")])
def test_index_paths_are_the_specifications(index: int, path: str) -> None:
    assert index_path(index) == path
    assert parse_index_path(path) == index


@pytest.mark.parametrize("text", ["0", "0000", "x000", "001/002", "x000/001", "x01/000", "x001/x002", "-01", "abc"])
def test_other_spellings_of_an_index_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_index_path(text)


def test_tile_paths() -> None:
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(2, 5, 17).path == "tile/2/005.p/17"
    assert Tile(0, 5, 17).bundle_path == "tile/entries/005.p/17"
    assert Tile(0, 1000).tagledger_bundle_path == "tagledger/entries/x001/000"
    assert Tile(1, 3, 2).entries == (3 * 256 * 256, (3 * 256 + 2) * 256)
    for bad in ((0, 0, 0), (0, 0, 257), (8, 0, 1), (0, -1, 1)):
        with pytest.raises(ValueError):
            Tile(*bad)


def test_the_tiles_of_a_tree_of_70000_entries_are_the_specifications_example() -> None:
    tiles = list(tiles_of(70_000))
    assert len([t for t in tiles if t.level == 0 and t.full]) == 273
    assert [t for t in tiles if not t.full] == [Tile(0, 273, 112), Tile(1, 1, 17), Tile(2, 0, 1)]
    assert [t for t in tiles if t.level == 1 and t.full] == [Tile(1, 0)]
    assert len(tiles) == 273 + 1 + 1 + 1 + 1


def test_a_tree_of_256_entries_is_a_full_tile_and_a_partial_one_above() -> None:
    assert list(tiles_of(256)) == [Tile(0, 0), Tile(1, 0, 1)]
    assert list(tiles_of(0)) == []


def test_an_incremental_sync_lists_only_the_new_tiles() -> None:
    assert list(tiles_of(600, after=300)) == [Tile(0, 1), Tile(0, 2, 88), Tile(1, 0, 2)]
    assert list(tiles_of(300, after=300)) == []
    assert list(tiles_of(512, after=300)) == [Tile(0, 1), Tile(1, 0, 2)]  # no partial level-0 tile at 512
    with pytest.raises(ValueError):
        list(tiles_of(300, after=301))


def test_a_full_tiles_hash_is_the_root_of_its_subtree() -> None:
    leaves = [leaf_hash(str(i).encode()) for i in range(256 * 256)]
    level1 = [tile_hash(leaves[i : i + 256]) for i in range(0, len(leaves), 256)]
    assert level1[0] == root_from_leaf_hashes(leaves[:256])
    assert level1[5] == root_from_leaf_hashes(leaves[5 * 256 : 6 * 256])
    assert tile_hash(level1) == root_from_leaf_hashes(leaves)  # a level-2 hash: the tree of 65,536 entries
    with pytest.raises(ValueError):
        tile_hash(leaves[:255])


def test_bundles_round_trip_and_refuse_what_they_cannot_say() -> None:
    entries = [b"", b"a", b"x" * 65_535]
    spec = encode_bundle(entries)
    assert spec[:2] == b"\x00\x00" and spec[2:5] == b"\x00\x01a" and spec[5:7] == b"\xff\xff"
    assert decode_bundle(spec, 3) == entries
    big = [b"y" * 65_536, b"z"]
    with pytest.raises(ValueError, match="does not fit a 16-bit length prefix"):
        encode_bundle(big)
    ours = encode_bundle(big, prefix_bytes=4)
    assert ours[:4] == (65_536).to_bytes(4, "big")
    assert decode_bundle(ours, 2, prefix_bytes=4) == big
    assert hashlib.sha256(ours).digest() != hashlib.sha256(spec).digest()


@pytest.mark.parametrize("data, count, problem", [
    (encode_bundle([b"a", b"b"]), 1, "goes on after its 1 entries"),
    (encode_bundle([b"a"]), 2, "holds 1 entries, not 2"),
    (encode_bundle([b"abc"])[:-1], 1, "cut short"),
    (b"\x00", 1, "cut short"),
])
def test_a_malformed_bundle_is_refused(data: bytes, count: int, problem: str) -> None:
    with pytest.raises(BundleError, match=problem):
        decode_bundle(data, count)
