"""The log's RFC 9162 Merkle tree as the store keeps it: every perfect subtree's hash, written with the entries.

Leaf `i` is `SHA-256(0x00 || entry i)`. When entries are appended, the writer's transaction also inserts the
hash of every perfect subtree they complete (on average two rows per entry: the leaf and one parent), so
the tree is never behind the log and never recomputed: a root or a proof at any size reads O(log n) stored
hashes (`ledger.tree.proofs` says which), whatever the size of the log.

The right edge of the tree (the "frontier": one perfect subtree per set bit of the size) is cached in memory
between transactions and reloaded from the table whenever another process appended in the meantime.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from ledger.tree.proofs import (
    consistency_ranges,
    frontier_nodes,
    inclusion_ranges,
    new_nodes,
    node_id,
    proof_node_ids,
    resolve,
)
from verification.merkle import EMPTY_ROOT, CompactRange, leaf_hash

if TYPE_CHECKING:
    from ledger.store.base import LogStore, StoredEvent

LEVEL_ONE = node_id(1, 0)
"""Ids below this are leaves (level 0): `MAX(id) WHERE id < LEVEL_ONE` + 1 is the tree's size."""

BACKFILL_PAGE = 5000


class NodeReader(Protocol):
    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]: ...


class NodeWriter(NodeReader, Protocol):
    def insert_nodes(self, rows: Sequence[tuple[int, bytes]]) -> None: ...


class TreeError(RuntimeError):
    """The stored tree is missing a node it should have (an incomplete back-fill, or a damaged store)."""


_NO_TREE_THAT_LARGE = 2**40
"""Sizes above this are not looked up directly (their node ids may not fit the database's integers); the caller
reads the tree's size instead, and finds it smaller."""


class LogTree:
    def __init__(self, store: LogStore):
        self.store = store
        self._frontier: CompactRange | None = None  # as of the last commit this process saw
        self._local = threading.local()  # .pending: the frontier of this thread's open transaction

    # -- appending (inside the store's write transaction) ----------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Wrap a write transaction: the cached frontier moves on only if the transaction commits."""
        self._local.pending = None
        try:
            yield
        except BaseException:
            self._local.pending = None
            raise
        pending, self._local.pending = self._local.pending, None
        if pending is not None:
            # a cache only: a frontier is used again only for a transaction that starts at its very size
            self._frontier = pending

    def append(self, session: NodeWriter, events: Sequence[StoredEvent]) -> None:
        """Insert the tree nodes for `events`, which continue the log exactly (called under the write lock)."""
        if not events:
            return
        first = events[0].seq
        cached = getattr(self._local, "pending", None) or self._frontier
        frontier = cached if cached is not None and cached.size == first else self.load_frontier(session, first)
        frontier, rows = new_nodes(frontier, [leaf_hash(event.data) for event in events])
        session.insert_nodes(rows)
        self._local.pending = frontier

    def load_frontier(self, reader: NodeReader, size: int) -> CompactRange:
        ids = [node_id(level, index) for level, index in frontier_nodes(size)]
        found = reader.read_nodes(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise TreeError(f"the stored Merkle tree lacks {len(missing)} node(s) of the tree of size {size}")
        return CompactRange(size, [found[i] for i in ids])

    def backfill(self) -> int:
        """Add the tree nodes of entries stored before the tree existed (a ledger created by an older version).

        Returns how many leaves were added. Safe to run concurrently with writers: each page is a write
        transaction that continues the tree exactly where it stands.
        """
        added = 0
        while True:
            with self.store.write_session() as session:
                tree_size, log_size = self.store.tree_size(), session.size()
                if tree_size >= log_size:
                    return added
                events = session.read_range(tree_size, min(log_size, tree_size + BACKFILL_PAGE))
                frontier = self.load_frontier(session, tree_size)
                _, rows = new_nodes(frontier, [leaf_hash(event.data) for event in events])
                session.insert_nodes(rows)
                added += len(events)

    # -- reading --------------------------------------------------------------------------------

    def size(self) -> int:
        return self.store.tree_size()

    def _proofs(self, plans: Sequence[Sequence[tuple[int, int]]]) -> list[list[bytes]]:
        """Resolve proof plans (lists of leaf ranges) from the stored nodes, with one query for all of them."""
        return self._proofs_from(plans, self.store.read_nodes(proof_node_ids(r for plan in plans for r in plan)))

    @staticmethod
    def _proofs_from(plans: Sequence[Sequence[tuple[int, int]]], found: dict[int, bytes]) -> list[list[bytes]]:
        try:
            return [resolve(plan, found) for plan in plans]
        except KeyError as missing:
            raise TreeError(f"the stored Merkle tree lacks a node: {missing}") from None

    def root(self, size: int) -> bytes:
        """The root hash of the tree of the first `size` entries."""
        if size == 0:
            return EMPTY_ROOT
        return self._proofs([[(0, size)]])[0][0]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        found = self.store.read_nodes(list(range(start, end)))
        return [found[i] for i in range(start, end) if i in found]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves."""
        return self._proofs([inclusion_ranges(index, size)])[0]

    def leaf_and_inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """Leaf `index`'s hash and its inclusion proof in the tree of `size` leaves, read in one query."""
        plan = inclusion_ranges(index, size)
        found = self.store.read_nodes([index, *proof_node_ids(plan)])
        if index not in found:
            raise TreeError(f"the stored Merkle tree lacks leaf {index}")
        return found[index], self._proofs_from([plan], found)[0]

    def leaf_and_inclusion_proof_within(self, index: int, size: int) -> tuple[bytes, list[bytes]] | None:
        """`leaf_and_inclusion_proof`, or None if the stored tree has fewer than `size` leaves: one query, that
        also reads leaf `size` - 1 (leaves are stored in order, so it exists if and only if the tree holds `size`
        leaves), instead of a query for the tree's size first (issue 13)."""
        if size > _NO_TREE_THAT_LARGE:  # node ids beyond the database's integers: surely not in the tree
            return None
        plan = inclusion_ranges(index, size)
        found = self.store.read_nodes([index, size - 1, *proof_node_ids(plan)])
        if size - 1 not in found:
            return None
        if index not in found:
            raise TreeError(f"the stored Merkle tree lacks leaf {index}")
        return found[index], self._proofs_from([plan], found)[0]

    def consistency_proof_within(self, old_size: int, new_size: int) -> list[bytes] | None:
        """`consistency_proof`, or None if the stored tree has fewer than `new_size` leaves: one query."""
        if new_size > _NO_TREE_THAT_LARGE:
            return None
        plan = consistency_ranges(old_size, new_size)
        ids = [*proof_node_ids(plan), *([new_size - 1] if new_size > 0 else [])]
        found = self.store.read_nodes(ids) if ids else {}
        if new_size > 0 and new_size - 1 not in found:
            return None
        return self._proofs_from([plan], found)[0]

    def inclusion_proofs(self, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """Inclusion proofs of several leaves in the tree of `size` leaves, read in one query."""
        return self._proofs([inclusion_ranges(index, size) for index in indexes])

    @staticmethod
    def inclusion_plans(indexes: Sequence[int], size: int) -> tuple[list[list[tuple[int, int]]], list[int]]:
        """The plans of the inclusion proofs of `indexes` in the tree of `size` leaves, and the ids of the stored
        nodes they need: for a caller that reads the nodes with another query (`LogStore.read_view`'s `nodes`),
        then calls `resolve_plans`."""
        plans = [inclusion_ranges(index, size) for index in indexes]
        return plans, proof_node_ids(r for plan in plans for r in plan)

    def resolve_plans(self, plans: Sequence[Sequence[tuple[int, int]]], found: dict[int, bytes]) -> list[list[bytes]]:
        """The proofs of `plans` from the nodes `found` (`inclusion_plans`)."""
        return self._proofs_from(plans, found)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 consistency proof between the trees of `old_size` and `new_size` leaves."""
        return self._proofs([consistency_ranges(old_size, new_size)])[0]
