"""The log's tiles (C2SP tlog-tiles, docs/protocol.md section 19), read from the stored tree and entries.

A hash tile is a range read: hash ``i`` of tile ``L``/``N`` is the stored perfect subtree ``(8 L, 256 N + i)``
(`ledger.tree`), written once with its last entry and never changed. An entry bundle is 256 (or, partial,
fewer) consecutive entries, in the specification's encoding unless one of them is longer than 65,535 bytes.
Nothing here depends on the log's current size: a tile of a tree of size ``s`` reads the same bytes whenever
it is read, so `tagledger tiles sync` and the server can both serve it while entries are appended.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.store.base import LogStore
from ledger.tree.proofs import node_id
from verification.merkle import leaf_hash
from verification.tiles import MAX_SPEC_ENTRY, TILE_HEIGHT, Tile, encode_bundle


class TilesError(RuntimeError):
    """The store cannot give a tile it should have (a missing tree node, entries that do not match the tree)."""


@dataclass(frozen=True)
class Bundle:
    """An entry bundle's bytes and where it is published (the specification's path, or tagledger's)."""

    path: str
    data: bytes


class TileReader:
    def __init__(self, store: LogStore):
        self.store = store

    def hash_tile(self, tile: Tile) -> bytes:
        """The tile's bytes: its ``width`` hashes, 32 bytes each."""
        level = TILE_HEIGHT * tile.level
        ids = [node_id(level, tile.first_node + i) for i in range(tile.width)]
        found = self.store.read_nodes(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise TilesError(f"the stored Merkle tree lacks {len(missing)} hash(es) of {tile.path}")
        return b"".join(found[i] for i in ids)

    def bundle(self, tile: Tile, level0: bytes | None = None) -> Bundle:
        """The entry bundle under level-0 ``tile``. With ``level0`` (that tile's bytes), every entry's leaf hash
        is checked against it first, so a store whose entries no longer match its tree publishes nothing."""
        if tile.level != 0:
            raise ValueError("entry bundles lie under level-0 tiles")
        start, end = tile.entries
        entries = [event.data for event in self.store.read_range(start, end)]
        if len(entries) != tile.width:
            raise TilesError(f"the store holds {len(entries)} of the {tile.width} entries of {tile.bundle_path}")
        if level0 is not None:
            for i, entry in enumerate(entries):
                if leaf_hash(entry) != level0[32 * i : 32 * (i + 1)]:
                    raise TilesError(f"entry #{start + i} does not match the stored Merkle tree "
                                     "(run `tagledger check`)")
        if max(map(len, entries)) <= MAX_SPEC_ENTRY:
            return Bundle(tile.bundle_path, encode_bundle(entries, prefix_bytes=2))
        return Bundle(tile.tagledger_bundle_path, encode_bundle(entries, prefix_bytes=4))
