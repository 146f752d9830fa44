"""Plan the stored subtree hashes that proofs need -- pure functions, no I/O.

The server stores the hash of every *perfect* subtree of the log's RFC 9162 tree: node
``(level, index)`` is MTH(D[index * 2**level : (index + 1) * 2**level]), written when its last
leaf is appended and never changed (the table ``tagledger_merkle_nodes``, keyed by
:func:`node_id`). Level 0 holds the leaf hashes.

Every hash in an inclusion or a consistency proof (RFC 9162 sections 2.1.3.1 and 2.1.4.1) is
the MTH of a range of leaves that is a node of the tree: perfect, or on the tree's right border.
:func:`inclusion_ranges` and :func:`consistency_ranges` list those ranges, :func:`perfect_parts`
the stored nodes that make one, and :func:`combine` folds their hashes::

    proof = [combine([stored[node_id(*p)] for p in perfect_parts(a, b)])
             for a, b in inclusion_ranges(index, size)]

(:func:`proof_node_ids` and :func:`resolve` do that for a whole proof). A proof has at most one
range that is not perfect, so it needs O(log n) stored nodes, and appending a leaf writes
two nodes on average (:func:`new_nodes`).

A server plans each proof once, as a :data:`Plan` (:func:`inclusion_plan`, :func:`plan_of_ranges`):
the node ids it reads (:func:`plan_ids`) and resolves (:func:`resolve_plan`) are the same list.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

from verification.merkle import HASH_SIZE, CompactRange, node_hash

__all__ = [
    "INDEX_BITS",
    "MAX_LEVEL",
    "combine",
    "consistency_ranges",
    "frontier_nodes",
    "inclusion_plan",
    "inclusion_ranges",
    "is_subtree",
    "new_nodes",
    "node_id",
    "node_of",
    "node_range",
    "part_ids",
    "perfect_parts",
    "plan_ids",
    "plan_of_ranges",
    "proof_node_ids",
    "resolve",
    "resolve_plan",
]

INDEX_BITS = 56
"""Bits of a node id that hold the node's index within its level (so at most 2**56 leaves)."""
MAX_LEVEL = 63
"""The highest level a node id can hold; ids stay below 2**62, inside a signed 64-bit integer."""

Node = tuple[int, int]
"""A stored node ``(level, index)``: the perfect subtree of the leaves of :func:`node_range`."""
Range = tuple[int, int]
"""A range of leaves ``[start, end)``."""
Plan = list["int | tuple[int, ...]"]
"""A proof's stored nodes, hash by hash: the id of the node that is the hash (a perfect range), or the ids of the
perfect parts it is combined from (:func:`combine`; a range on the tree's right border, at most one per proof)."""


# --------------------------------------------------------------------------------------------
# Node ids
# --------------------------------------------------------------------------------------------


def node_id(level: int, index: int) -> int:
    """The integer key of node ``(level, index)``: ``(level << 56) | index``."""
    if not 0 <= level <= MAX_LEVEL or not 0 <= index < 1 << INDEX_BITS:
        raise ValueError(f"no node id for level {level}, index {index}")
    return (level << INDEX_BITS) | index


def node_of(key: int) -> Node:
    """The ``(level, index)`` of a node id; the inverse of :func:`node_id`."""
    if not 0 <= key < (MAX_LEVEL + 1) << INDEX_BITS:
        raise ValueError(f"not a node id: {key}")
    return key >> INDEX_BITS, key & ((1 << INDEX_BITS) - 1)


def node_range(level: int, index: int) -> Range:
    """The leaves ``[start, end)`` under node ``(level, index)``."""
    return index << level, (index + 1) << level


# --------------------------------------------------------------------------------------------
# Subtrees and the perfect nodes that make them
# --------------------------------------------------------------------------------------------


def is_subtree(start: int, end: int) -> bool:
    """Whether leaves ``[start, end)`` are a node of the RFC 9162 tree of size ``end``.

    The tree of ``n`` leaves splits them at ``k``, the largest power of two smaller than ``n``:
    the left part is perfect and the right part splits again. So its nodes are perfect subtrees
    and the ranges ``[n - n % 2**j, n)`` of its right border; both kinds are exactly the
    non-empty ranges whose ``start`` is a multiple of the smallest power of two >= their length.
    Every range of a proof is such a node, of the tree the proof leads to.
    """
    if not 0 <= start < end:
        return False
    span = 1 << (end - start - 1).bit_length()  # the smallest power of two >= end - start
    return start & (span - 1) == 0


def perfect_parts(start: int, end: int) -> list[Node]:
    """The stored nodes whose hashes make MTH(D[start:end]), largest (leftmost) first.

    ``[start, end)`` must be a node of the tree (:func:`is_subtree`), like every range of a
    proof. Its leaves then split like a tree of ``end - start`` leaves: into the perfect
    subtrees of the binary decomposition of ``end - start``, and MTH(D[start:end]) is
    :func:`combine` of their hashes: one node if the range is perfect, and one per one bit of
    ``end - start`` in general.
    """
    if not is_subtree(start, end):
        raise ValueError(f"leaves [{start}, {end}) are not a subtree of the tree")
    parts = []
    position = start
    for level in range((end - start).bit_length() - 1, -1, -1):
        if (end - start) >> level & 1:
            parts.append((level, position >> level))
            position += 1 << level
    return parts


def combine(hashes: Sequence[bytes]) -> bytes:
    """MTH of a subtree from the hashes of its :func:`perfect_parts`: folded from the right.

    ``combine([a, b, c]) = node_hash(a, node_hash(b, c))``, as the RFC 9162 tree splits off the
    largest perfect subtree on the left first.
    """
    if not hashes:
        raise ValueError("a subtree has at least one perfect part")
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def frontier_nodes(size: int) -> list[Node]:
    """The stored nodes whose hashes make the :class:`CompactRange` of a tree of ``size``.

    ``CompactRange(size, [stored[node_id(*p)] for p in frontier_nodes(size)])`` reloads the
    server's frontier after a restart.
    """
    if size < 0:
        raise ValueError(f"a tree size is non-negative, not {size}")
    return perfect_parts(0, size) if size else []


# --------------------------------------------------------------------------------------------
# The ranges of the proofs
# --------------------------------------------------------------------------------------------


def _split(size: int) -> int:
    """k, the largest power of two smaller than ``size`` (``size >= 2``), RFC 9162 section 2.1.1."""
    return 1 << ((size - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose MTHs are, in order, the inclusion proof of leaf ``index`` in tree ``size``.

    RFC 9162 section 2.1.3.1, PATH(m, D[n]), with ``k`` the largest power of two smaller than n::

        PATH(0, {d(0)}) = {}
        PATH(m, D[n])   = PATH(m, D[0:k]) : MTH(D[k:n])       for m < k
        PATH(m, D[n])   = PATH(m - k, D[k:n]) : MTH(D[0:k])   for m >= k

    The siblings are found from the root down and listed from the leaf up.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    ranges = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
    ranges.reverse()
    return ranges


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The ranges whose MTHs are, in order, the consistency proof from size ``old`` to ``new``.

    RFC 9162 section 2.1.4.1, PROOF(m, D[n]) = SUBPROOF(m, D[n], true) for 0 < m < n::

        SUBPROOF(m, D[m], true)  = {}
        SUBPROOF(m, D[m], false) = {MTH(D[m])}
        SUBPROOF(m, D[n], b)     = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])             for m <= k
        SUBPROOF(m, D[n], b)     = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])     for m > k

    The proof is empty when ``old`` is 0 or ``new`` (transparency-dev/merkle).
    """
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from tree size {old} to {new}")
    if old == 0:
        return []
    ranges = []
    start, end, known = 0, new, True  # `known`: b, the verifier has MTH(D[start:end])
    while old != end:  # here start < old < end
        middle = start + _split(end - start)
        if old <= middle:
            ranges.append((middle, end))
            end = middle
        else:
            ranges.append((start, middle))
            start = middle
            known = False
    if not known:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def part_ids(start: int, end: int) -> list[int]:
    """The ids of :func:`perfect_parts` of ``[start, end)``, in the same order.

    A proof's ranges are perfect but for at most one, and a perfect range is one node: its id is
    computed at once (a proof is served for every request, issue 13); any other range goes through
    :func:`perfect_parts`, which also refuses a range that is not a node of the tree.
    """
    length = end - start
    if length > 0 and length & (length - 1) == 0 and start & (length - 1) == 0 and start >= 0:
        level = length.bit_length() - 1
        if (start >> level) >> INDEX_BITS == 0:
            return [(level << INDEX_BITS) | (start >> level)]
    return [node_id(level, index) for level, index in perfect_parts(start, end)]


def proof_node_ids(ranges: Iterable[Range]) -> list[int]:
    """The ids of the stored nodes that the MTHs of ``ranges`` need, sorted, each once."""
    return sorted({key for start, end in ranges for key in part_ids(start, end)})


def resolve(ranges: Iterable[Range], stored: Mapping[int, bytes]) -> list[bytes]:
    """The proof: MTH of each range, from ``stored`` (node id -> hash, e.g. the rows fetched)."""
    proof = []
    for start, end in ranges:
        hashes = []
        for key in part_ids(start, end):
            try:
                hashes.append(stored[key])
            except KeyError:
                level, index = node_of(key)
                raise KeyError(f"node (level {level}, index {index}) is not stored") from None
        proof.append(hashes[0] if len(hashes) == 1 else combine(hashes))
    return proof


def inclusion_plan(index: int, size: int) -> Plan:
    """The :data:`Plan` of the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    The same hashes as :func:`inclusion_ranges` (a property test), found from the leaf up without
    listing ranges. Below ``top``, the highest level where the leaf's path and the last leaf's
    differ, the leaf's ancestors lie wholly inside the tree: each level's sibling is a perfect
    node. On level ``top`` the leaf's ancestor is a left child, and its sibling is the rest of the
    tree (perfect, or a range on the right border). Above, the path is the last leaf's, the same
    for every leaf (:func:`_border_path`, kept per tree size): a level where the last leaf's
    ancestor is a right child has its perfect left sibling; elsewhere the tree skips the level.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    if size > 1 << INDEX_BITS:
        raise ValueError(f"a tree has at most 2**{INDEX_BITS} leaves")
    last = size - 1
    top = (index ^ last).bit_length() - 1  # -1 for the last leaf itself
    plan: Plan = [(level << INDEX_BITS) | ((index >> level) ^ 1) for level in range(top)]
    if top >= 0:
        plan.append(_rest_of_tree(((index >> top) | 1) << top, size))
    plan.extend(_border_path(last, top + 1))
    return plan


@functools.lru_cache(maxsize=256)
def _rest_of_tree(start: int, size: int) -> int | tuple[int, ...]:
    """The plan item of leaves ``[start, size)``: one node id if perfect, else its perfect parts' ids."""
    ids = part_ids(start, size)
    return ids[0] if len(ids) == 1 else tuple(ids)


@functools.lru_cache(maxsize=256)
def _border_path(last: int, lowest: int) -> tuple[int, ...]:
    """The left siblings of the last leaf's ancestors on levels ``lowest`` and up, from the leaf up."""
    return tuple((level << INDEX_BITS) | ((last >> level) ^ 1)
                 for level in range(lowest, last.bit_length()) if last >> level & 1)


def plan_of_ranges(ranges: Iterable[Range]) -> Plan:
    """The :data:`Plan` of a proof given as its ranges (:func:`consistency_ranges`, :func:`inclusion_ranges`)."""
    plan: Plan = []
    for start, end in ranges:
        ids = part_ids(start, end)
        plan.append(ids[0] if len(ids) == 1 else tuple(ids))
    return plan


def plan_ids(plans: Iterable[Plan]) -> list[int]:
    """The ids of the stored nodes that ``plans`` need (in plan order, a node needed twice listed twice)."""
    ids: list[int] = []
    for plan in plans:
        for item in plan:
            if item.__class__ is int:
                ids.append(item)  # type: ignore[arg-type]
            else:
                ids.extend(item)  # type: ignore[arg-type]
    return ids


def resolve_plan(plan: Plan, stored: Mapping[int, bytes]) -> list[bytes]:
    """The proof of ``plan`` from ``stored`` (node id -> hash); ``KeyError`` naming a node that is not there."""
    try:
        return [stored[item] if item.__class__ is int  # type: ignore[index]
                else combine([stored[k] for k in item]) for item in plan]  # type: ignore[union-attr]
    except KeyError as missing:
        level, index = node_of(missing.args[0])
        raise KeyError(f"node (level {level}, index {index}) is not stored") from None


# --------------------------------------------------------------------------------------------
# Appending
# --------------------------------------------------------------------------------------------


def new_nodes(
    frontier: CompactRange, leaf_hashes: Iterable[bytes]
) -> tuple[CompactRange, list[tuple[int, bytes]]]:
    """Append leaves: the new frontier, and the ``(node_id, hash)`` rows of every completed node.

    Each leaf completes its own level-0 node and, like a carry in a binary counter, one node on
    every level where the tree's size had a one bit below its lowest zero bit: two rows per leaf
    on average. ``frontier`` is not changed, so a server can insert the rows in the transaction
    that appends the entries and adopt the new frontier only once that transaction commits.
    """
    hashes = list(frontier.hashes)
    size = frontier.size
    rows: list[tuple[int, bytes]] = []
    for value in leaf_hashes:
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {value!r}")
        if size >> INDEX_BITS:
            raise ValueError(f"a tree has at most 2**{INDEX_BITS} leaves")
        rows.append((size, value))  # node_id(0, size)
        carry, level = size, 0
        while carry & 1:
            value = node_hash(hashes.pop(), value)
            carry >>= 1
            level += 1
            rows.append(((level << INDEX_BITS) | carry, value))  # node (level, size >> level)
        hashes.append(value)
        size += 1
    return CompactRange(size, hashes), rows
