"""The log's RFC 9162 Merkle tree as the store keeps it: every perfect subtree's hash, written with the entries.

Leaf `i` is `SHA-256(0x00 || entry i)`. When entries are appended, the writer's transaction also inserts the
hash of every perfect subtree they complete (on average two rows per entry: the leaf and one parent), so
the tree is never behind the log and never recomputed: a root or a proof at any size reads O(log n) stored
hashes (`ledger.tree.proofs` says which), whatever the size of the log.

The right edge of the tree (the "frontier": one perfect subtree per set bit of the size) is cached in memory
between transactions and reloaded from the table whenever another process appended in the meantime.

The proofs served to the public (the `..._within` reads, their fallbacks, a tag view's proofs) read the upper
levels of the tree from `NodeCache` (ledger/tree/node_cache.py: stored nodes are final, so what was read once is
kept), and the store only for the rest; the checks of the store (`root`, `inclusion_proofs`: `tagledger check`,
the checkpoint signer, the tiles mirror) always read the store itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ledger.tree.node_cache import NodeCache
from ledger.tree.proofs import (
    Plan,
    combine,
    consistency_ranges,
    frontier_nodes,
    inclusion_plan,
    inclusion_ranges,
    new_nodes,
    node_id,
    node_of,
    plan_of_ranges,
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


@dataclass(frozen=True)
class PlannedProofs:
    """Proofs planned for a read made elsewhere (`LogTree.inclusion_plans`), with the hashes the cache held then."""

    plans: list[Plan]
    cached: dict[int, bytes]
    borders: dict[tuple[int, ...], bytes]


class TreeError(RuntimeError):
    """The stored tree is missing a node it should have (an incomplete back-fill, or a damaged store)."""


_NO_TREE_THAT_LARGE = 2**40
"""Sizes above this are not looked up directly (their node ids may not fit the database's integers); the caller
reads the tree's size instead, and finds it smaller."""


class LogTree:
    def __init__(self, store: LogStore, cache: NodeCache | None = None):
        self.store = store
        self.cache = cache if cache is not None else NodeCache()
        """Upper levels of this store's tree, and the largest tree size it is known to hold (issue 13)."""
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

    def _needed(self, plans: Sequence[Plan]) -> tuple[list[int], dict[tuple[int, ...], bytes]]:
        """The node ids `plans` need, and the hashes of their border ranges the cache holds (whose parts are then not
        needed). The hashes are taken now: the cache may drop them before the proof is resolved."""
        combined = self.cache.combined
        ids: list[int] = []
        borders: dict[tuple[int, ...], bytes] = {}
        for plan in plans:
            for item in plan:
                if item.__class__ is int:
                    ids.append(item)  # type: ignore[arg-type]
                    continue
                value = combined.get(item)  # type: ignore[arg-type]
                if value is None:
                    ids.extend(item)  # type: ignore[arg-type]
                else:
                    borders[item] = value  # type: ignore[index]
        return ids, borders

    def _cached_read(self, ids: list[int], size: int) -> dict[int, bytes] | None:
        """The stored nodes `ids` of the tree of `size` leaves, those on the cached levels from the cache, the others
        from the store in one query; None if the store holds fewer than `size` leaves. That is known without asking
        when a tree of `size` leaves or more was seen before (stores only grow); otherwise the query also reads leaf
        `size` - 1, which exists if and only if the tree holds `size` leaves (leaves are stored in order)."""
        cache = self.cache
        found, missing = cache.split(ids)
        unsure = size > cache.size
        if unsure:
            missing.append(size - 1)
        if missing:
            read = self.store.read_nodes(missing)
            if unsure:
                if size - 1 not in read:
                    return None
                cache.grow(size)
            cache.put(read)
            found.update(read)
        return found

    def _resolve(self, plans: Sequence[Plan], found: dict[int, bytes],
                 borders: dict[tuple[int, ...], bytes]) -> list[list[bytes]]:
        """The proofs of `plans` from the nodes `found` and the border ranges' hashes `borders` (`_needed`)."""
        cache = self.cache
        proofs = []
        try:
            for plan in plans:
                proof = []
                for item in plan:
                    if item.__class__ is int:
                        proof.append(found[item])  # type: ignore[index]
                        continue
                    value = borders.get(item)  # type: ignore[arg-type]
                    if value is None:
                        value = combine([found[key] for key in item])  # type: ignore[union-attr]
                        cache.keep_combined(item, value)  # type: ignore[arg-type]
                    proof.append(value)
                proofs.append(proof)
        except KeyError as missing:
            level, index = node_of(missing.args[0])
            raise TreeError(f"the stored Merkle tree lacks a node: node (level {level}, index {index})") from None
        return proofs

    def _leaf_and_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]] | None:
        plan = inclusion_plan(index, size)
        ids, borders = self._needed([plan])
        found = self._cached_read([index, *ids], size)
        if found is None:
            return None
        if index not in found:
            raise TreeError(f"the stored Merkle tree lacks leaf {index}")
        return found[index], self._resolve([plan], found, borders)[0]

    def leaf_and_inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """Leaf `index`'s hash and its inclusion proof in the tree of `size` leaves, read in one query (or none)."""
        found = self._leaf_and_proof(index, size)
        if found is None:
            raise TreeError(f"the stored Merkle tree lacks leaf {size - 1}")
        return found

    def leaf_and_inclusion_proof_within(self, index: int, size: int) -> tuple[bytes, list[bytes]] | None:
        """`leaf_and_inclusion_proof`, or None if the stored tree has fewer than `size` leaves: at most one query,
        that also reads leaf `size` - 1 unless a tree that large was seen (`_cached_read`), instead of a query for
        the tree's size first (issue 13)."""
        if size > _NO_TREE_THAT_LARGE:  # node ids beyond the database's integers: surely not in the tree
            return None
        return self._leaf_and_proof(index, size)

    def consistency_proof_within(self, old_size: int, new_size: int) -> list[bytes] | None:
        """`consistency_proof`, or None if the stored tree has fewer than `new_size` leaves: at most one query."""
        if new_size > _NO_TREE_THAT_LARGE:
            return None
        plan = plan_of_ranges(consistency_ranges(old_size, new_size))
        ids, borders = self._needed([plan])
        found = self._cached_read(ids, new_size) if new_size > 0 else {}
        if found is None:
            return None
        return self._resolve([plan], found, borders)[0]

    def inclusion_proofs(self, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """Inclusion proofs of several leaves in the tree of `size` leaves, read in one query."""
        return self._proofs([inclusion_ranges(index, size) for index in indexes])

    def inclusion_plans(self, indexes: Sequence[int], size: int) -> tuple[PlannedProofs, list[int]]:
        """The plans of the inclusion proofs of `indexes` in the tree of `size` leaves, and the ids of the stored
        nodes they need that are not cached: for a caller that reads those with another query
        (`LogStore.read_view`'s `nodes`), then calls `resolve_plans`."""
        plans = [inclusion_plan(index, size) for index in indexes]
        ids, borders = self._needed(plans)
        cached, missing = self.cache.split(ids)
        return PlannedProofs(plans, cached, borders), sorted(set(missing))

    def resolve_plans(self, planned: PlannedProofs | Sequence[Plan], found: dict[int, bytes]) -> list[list[bytes]]:
        """The proofs `planned` (`inclusion_plans`) from the nodes `found` and what the cache held when they were
        planned (the cache keeps what it can of `found`)."""
        if not isinstance(planned, PlannedProofs):
            planned = PlannedProofs(list(planned), {}, {})
        self.cache.put(found)
        return self._resolve(planned.plans, {**planned.cached, **found}, planned.borders)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 consistency proof between the trees of `old_size` and `new_size` leaves."""
        found = self.consistency_proof_within(old_size, new_size)
        if found is None:
            raise TreeError(f"the stored Merkle tree lacks leaf {new_size - 1}")
        return found
