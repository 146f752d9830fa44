"""The upper levels of the stored Merkle tree, kept in memory so that a proof reads only its lowest nodes (issue 13).

Every row of the stored tree is the hash of a *perfect* subtree, written when its last leaf is appended and never
changed (ledger/tree/proofs.py): once read, it is final, whatever is appended later, in this process or another
(another HTTP worker, the bulk builder), and the same in every replica of the store. So what is cached are values
read from the store, which the store can never change (the log is append-only: docs/protocol.md; the stores refuse
UPDATE and DELETE on these tables), and hashes computed from them alone. Each store (the primary, each replica)
has its own cache, filled only with what was read from that store.

What is kept: for a tree of `size` leaves, every stored node on the levels `floor` and above, where the floor is
the lowest level such that those levels hold at most `max_nodes` nodes in all. A random proof needs one node per
level, and a node of level `l` is needed by `2**l` leaves' proofs, so the highest levels are worth the most. With
the default budget the floor is level 2 for a log of 150,000 entries (a proof reads its leaf and its siblings on
levels 0 and 1), 4 for 1,000,000 entries and 8 for 10,000,000. The cache starts empty and is filled with what the
proofs read: nothing is read for it alone. `size` is also the largest tree the store is known to hold (stores only
grow): a proof of a tree that large need not check the tree's size again.

Beside the nodes, the hashes of the proofs' ranges on the right border of a tree (`combined`: MTH(D[start:end])
keyed by the ids of the stored nodes it is combined from, at most `MAX_COMBINED`). Such a range is not a stored
node, and a larger tree has other border ranges, but its hash is final all the same: it is the hash of the leaves
`start` to `end`, which never change once stored. Most proofs of a tree need one of its few border ranges,
combined from up to 18 nodes for a log of 150,000 entries.

Memory: one list per cached level with a slot per stored node of that level (8 bytes), holding the node's hash once
read (a 32-byte `bytes`, 72 bytes with its header): at most 80 bytes per node, `80 * max_nodes` bytes per store and
process (`TAGLEDGER_TREE_CACHE_NODES`, default 131,072 nodes: at most 10 MiB), less while the log is smaller. When
the log grows past the budget the lowest cached level is dropped. (A `bytearray` of 32 bytes per node holds 2.5
times as many in the same memory, but reading a hash out of it cost 20 times the CPU of a list's item, and a proof
reads about 20.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping

from ledger.tree.proofs import INDEX_BITS

DEFAULT_MAX_NODES = 1 << 17
"""131,072 nodes: at most 10 MiB per process."""
ENV_MAX_NODES = "TAGLEDGER_TREE_CACHE_NODES"

_INDEX_MASK = (1 << INDEX_BITS) - 1
MAX_COMBINED = 256
"""Border ranges' hashes kept (a tree has one border range per one bit of its size: 64 at most)."""


def max_nodes_from_env() -> int:
    """The budget from `TAGLEDGER_TREE_CACHE_NODES` (0 turns the cache off), else the default."""
    text = os.environ.get(ENV_MAX_NODES, "").strip()
    if not text:
        return DEFAULT_MAX_NODES
    value = int(text)
    if value < 0:
        raise ValueError(f"{ENV_MAX_NODES} must be 0 or more, not {value}")
    return value


def nodes_at_or_above(level: int, size: int) -> int:
    """How many nodes are stored on the levels `level` and above for a tree of `size` leaves."""
    count = 0
    size >>= level
    while size:
        count += size
        size >>= 1
    return count


def floor_level(size: int, max_nodes: int) -> int:
    """The lowest level whose nodes, with every level above, are at most `max_nodes` for a tree of `size` leaves."""
    level = 0
    while nodes_at_or_above(level, size) > max_nodes:
        level += 1
    return level


class NodeCache:
    """Hashes of stored (perfect, final) nodes of the upper levels of one store's tree; safe across threads."""

    def __init__(self, max_nodes: int | None = None):
        self.max_nodes = max_nodes_from_env() if max_nodes is None else max_nodes
        self.size = 0
        """The tree size the lists are laid out for: the largest size known to be stored (it only grows)."""
        self._layout: tuple[int, list[list[bytes | None]]] = (0, [])
        """(floor, levels): levels[l - floor] has a slot per stored node of level l. One attribute, replaced whole:
        a reader takes both at once, never a floor with another floor's lists."""
        self.combined: dict[tuple[int, ...], bytes] = {}
        """MTH of a range that is not a stored node, keyed by the ids of the stored nodes it is combined from."""
        self._lock = threading.Lock()  # for the layout only; reads and fills go without it

    @property
    def enabled(self) -> bool:
        return self.max_nodes > 0

    @property
    def floor(self) -> int:
        """The lowest level cached."""
        return self._layout[0]

    def slots(self) -> int:
        return sum(len(level) for level in self._layout[1])

    def held(self) -> int:
        """How many hashes are cached."""
        return sum(len(level) - level.count(None) for level in self._layout[1])

    def grow(self, size: int) -> None:
        """The store is known to hold a tree of `size` leaves: make room for its nodes (never shrinks)."""
        if size <= self.size or not self.enabled:
            return
        with self._lock:
            if size <= self.size:
                return
            floor = floor_level(size, self.max_nodes)
            old_floor, old = self._layout
            levels = []
            for level in range(floor, max(size.bit_length(), floor)):
                kept = old[level - old_floor] if 0 <= level - old_floor < len(old) else []
                # extended in place: an item read or written meanwhile stays where it is
                kept.extend([None] * ((size >> level) - len(kept)))
                levels.append(kept)
            self._layout = (floor, levels)
            self.size = size  # after the layout: a size known means room for its nodes

    def split(self, keys: Iterable[int]) -> tuple[dict[int, bytes], list[int]]:
        """(the cached hashes of `keys`, the keys that are not cached)."""
        found: dict[int, bytes] = {}
        missing: list[int] = []
        floor, levels = self._layout
        count = len(levels)
        for key in keys:
            slot = (key >> INDEX_BITS) - floor
            if 0 <= slot < count:
                level = levels[slot]
                index = key & _INDEX_MASK
                if index < len(level):
                    value = level[index]
                    if value is not None:
                        found[key] = value
                        continue
            missing.append(key)
        return found, missing

    def put(self, read: Mapping[int, bytes]) -> None:
        """Keep the nodes of `read` (node id -> hash, rows read from the store) that are on the cached levels."""
        floor, levels = self._layout
        count = len(levels)
        for key, value in read.items():
            slot = (key >> INDEX_BITS) - floor
            if 0 <= slot < count:
                level = levels[slot]
                index = key & _INDEX_MASK
                if index < len(level):
                    level[index] = value

    def keep_combined(self, parts: tuple[int, ...], value: bytes) -> None:
        """Keep the hash combined from the stored nodes `parts` (emptied when `MAX_COMBINED` are kept)."""
        if not self.enabled:
            return
        if len(self.combined) >= MAX_COMBINED:
            self.combined = {}
        self.combined[parts] = value
