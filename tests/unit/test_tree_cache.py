"""ledger/tree/node_cache.py and the proofs served through it (ledger/tree/log_tree.py): the same proofs as without
a cache, for any tree size, leaf, budget and order of growth; bounded memory; only stored (final) nodes kept.

The store here is a dict of the rows `new_nodes` writes (what the SQLite and PostgreSQL stores hold); the stores
themselves are exercised in tests/ledger/test_tag_view_queries.py and tests/integration/test_http_log.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.tree.log_tree import LogTree, TreeError
from ledger.tree.node_cache import DEFAULT_MAX_NODES, NodeCache, floor_level, max_nodes_from_env, nodes_at_or_above
from ledger.tree.proofs import (
    consistency_ranges,
    inclusion_plan,
    inclusion_ranges,
    new_nodes,
    node_id,
    plan_ids,
    plan_of_ranges,
    resolve,
    resolve_plan,
)
from verification.merkle import CompactRange, leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion


class DictStore:
    """The stored tree as rows, appended as a store appends them; counts the reads."""

    def __init__(self) -> None:
        self.rows: dict[int, bytes] = {}
        self.frontier = CompactRange()
        self.leaves: list[bytes] = []
        self.reads: list[list[int]] = []

    def append(self, count: int) -> None:
        leaves = [leaf_hash(f"entry {len(self.leaves) + i}".encode()) for i in range(count)]
        self.frontier, rows = new_nodes(self.frontier, leaves)
        self.rows.update(rows)
        self.leaves += leaves

    def read_nodes(self, ids: Sequence[int]) -> dict[int, bytes]:
        self.reads.append(list(ids))
        return {i: self.rows[i] for i in ids if i in self.rows}

    def tree_size(self) -> int:
        return len(self.leaves)


def _tree(store: DictStore, max_nodes: int) -> LogTree:
    return LogTree(store, NodeCache(max_nodes))  # type: ignore[arg-type]


# -- planning -------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 2**56), st.data())
def test_an_inclusion_plan_is_the_ranges_plan(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    assert inclusion_plan(index, size) == plan_of_ranges(inclusion_ranges(index, size))


def test_every_inclusion_plan_of_small_trees_is_the_ranges_plan() -> None:
    for size in range(1, 130):
        for index in range(size):
            assert inclusion_plan(index, size) == plan_of_ranges(inclusion_ranges(index, size)), (index, size)


@pytest.mark.parametrize("index, size", [(-1, 3), (3, 3), (0, 0), (0, 2**56 + 1)])
def test_an_inclusion_plan_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(ValueError):
        inclusion_plan(index, size)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.data())
def test_a_plan_resolves_to_the_same_proof_as_the_ranges(size: int, data: st.DataObject) -> None:
    store = DictStore()
    store.append(size)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    ranges = inclusion_ranges(index, size)
    assert resolve_plan(inclusion_plan(index, size), store.rows) == resolve(ranges, store.rows)
    plan = plan_of_ranges(consistency_ranges(old, size))
    assert resolve_plan(plan, store.rows) == resolve(consistency_ranges(old, size), store.rows)
    assert sorted(set(plan_ids([plan]))) == sorted({i for s, e in consistency_ranges(old, size)
                                                    for i in plan_ids([plan_of_ranges([(s, e)])])})


# -- the cache's layout ---------------------------------------------------------------------------


@given(st.integers(0, 2**40), st.integers(1, 2**20))
def test_the_floor_is_the_lowest_level_within_the_budget(size: int, max_nodes: int) -> None:
    floor = floor_level(size, max_nodes)
    assert nodes_at_or_above(floor, size) <= max_nodes
    assert floor == 0 or nodes_at_or_above(floor - 1, size) > max_nodes


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=8), st.integers(0, 3000))
def test_the_cache_never_holds_more_than_its_budget(sizes: list[int], max_nodes: int) -> None:
    cache = NodeCache(max_nodes)
    store = DictStore()
    for size in sorted(sizes):
        store.append(size - store.tree_size())
        cache.grow(size)
        cache.put(store.rows)  # everything the store holds, offered at once
        assert cache.slots() <= max_nodes
        assert cache.held() <= max_nodes
        if max_nodes:
            assert cache.slots() == nodes_at_or_above(cache.floor, size)
        found, missing = cache.split(list(store.rows))
        assert all(store.rows[key] == value for key, value in found.items())  # only what the store holds
        assert len(found) + len(missing) == len(store.rows)


def test_nodes_beyond_the_known_size_are_not_kept() -> None:
    cache = NodeCache(1000)
    store = DictStore()
    store.append(8)
    cache.grow(4)
    cache.put(store.rows)  # read for a tree of 8, but only a tree of 4 is known to be stored
    found, missing = cache.split(list(store.rows))
    assert set(found) == {node_id(0, i) for i in range(4)} | {node_id(1, 0), node_id(1, 1), node_id(2, 0)}
    assert node_id(0, 4) in missing and node_id(3, 0) in missing


def test_the_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAGLEDGER_TREE_CACHE_NODES", raising=False)
    assert max_nodes_from_env() == DEFAULT_MAX_NODES
    monkeypatch.setenv("TAGLEDGER_TREE_CACHE_NODES", "0")
    assert not NodeCache().enabled
    monkeypatch.setenv("TAGLEDGER_TREE_CACHE_NODES", "-1")
    with pytest.raises(ValueError):
        max_nodes_from_env()


# -- proofs served through the cache --------------------------------------------------------------

STEPS = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 2**32)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(STEPS, st.integers(0, 1500))
def test_cached_proofs_are_uncached_proofs_and_verify(steps: list[tuple[int, int]], max_nodes: int) -> None:
    """The log grows between proofs (the border ranges change, the floor rises); every proof through a cache of any
    budget is the uncached one, and verifies against the root computed from the leaves."""
    store = DictStore()
    cached, uncached = _tree(store, max_nodes), _tree(store, 0)
    for grow, pick in steps:
        store.append(grow)
        size = store.tree_size()
        if size == 0:
            assert cached.leaf_and_inclusion_proof_within(0, 1) is None
            continue
        root = root_from_leaf_hashes(store.leaves)
        for k in range(3):  # a few proofs per size, some asked twice (then from the cache)
            index = (pick >> (8 * k)) % size
            for tree_size in (size, 1 + pick % size):
                leaf, proof = cached.leaf_and_inclusion_proof_within(index % tree_size, tree_size)
                assert (leaf, proof) == uncached.leaf_and_inclusion_proof_within(index % tree_size, tree_size)
                assert leaf == store.leaves[index % tree_size]
                verify_inclusion(leaf, index % tree_size, tree_size, proof,
                                 root if tree_size == size else root_from_leaf_hashes(store.leaves[:tree_size]))
            old = pick % (size + 1)
            proof = cached.consistency_proof_within(old, size)
            assert proof == uncached.consistency_proof_within(old, size)
            if old:
                verify_consistency(old, size, root_from_leaf_hashes(store.leaves[:old]), root, proof)
        # a tree larger than the store's is never answered from the cache
        assert cached.leaf_and_inclusion_proof_within(0, size + 1) is None
        assert cached.consistency_proof_within(0, size + 1) is None
        assert cached.cache.slots() <= max_nodes


def test_a_warm_cache_reads_only_the_lowest_levels() -> None:
    store = DictStore()
    store.append(1000)  # 1,994 stored nodes
    tree = _tree(store, 600)  # levels 1 and up hold 994 nodes, levels 2 and up 495
    assert tree.cache.floor == 0 and tree.leaf_and_inclusion_proof_within(5, 1000) is not None
    assert tree.cache.floor == 2 and store.reads[-1][-1] == 999  # leaf 999: is the tree that large?
    for index in range(1000):
        tree.leaf_and_inclusion_proof_within(index, 1000)
    store.reads.clear()
    leaf, proof = tree.leaf_and_inclusion_proof_within(700, 1000)
    # the leaf and its siblings on levels 0 and 1; the size is known, the upper levels and border ranges cached
    assert store.reads == [[700, node_id(0, 701), node_id(1, 351)]]
    verify_inclusion(leaf, 700, 1000, proof, root_from_leaf_hashes(store.leaves))


def test_a_whole_tree_within_the_budget_is_served_without_reading() -> None:
    store = DictStore()
    store.append(300)
    tree = _tree(store, DEFAULT_MAX_NODES)
    answers = [tree.leaf_and_inclusion_proof_within(i, 300) for i in range(300)]
    store.reads.clear()
    assert [tree.leaf_and_inclusion_proof_within(i, 300) for i in range(300)] == answers
    consistency = tree.consistency_proof_within(120, 300)
    assert store.reads == []  # every stored node is some leaf's sibling or part of a border range: all were read once
    assert consistency == _tree(store, 0).consistency_proof_within(120, 300)


def test_a_missing_node_is_told() -> None:
    store = DictStore()
    store.append(16)
    del store.rows[node_id(2, 1)]
    with pytest.raises(TreeError, match="level 2, index 1"):
        _tree(store, 100).leaf_and_inclusion_proof_within(0, 16)


def test_proofs_from_many_threads_while_the_log_grows_and_the_floor_rises() -> None:
    """Readers in threads (as the server's read pool) while a writer appends: the floor rises many times under them
    (a budget of 200 nodes for up to 4,000 leaves), and every proof is the uncached one."""
    import random
    import threading

    store = DictStore()
    store.append(1)
    cached, uncached = _tree(store, 200), _tree(store, 0)
    floors: set[int] = set()
    failures: list[str] = []
    stop = threading.Event()
    reads = [0]
    progress = threading.Condition()  # the writer waits for a few reads after each append: on a loaded machine it
    # could otherwise finish before any reader ran, and the readers would see one floor only

    def write() -> None:
        rng = random.Random(1)
        while store.tree_size() < 4000:
            store.append(rng.randrange(1, 60))
            with progress:
                target = reads[0] + 4
                progress.wait_for(lambda: reads[0] >= target, timeout=10)
        stop.set()

    def read(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set() or rng.random() < 0.5:
            size = rng.randrange(1, store.tree_size() + 1)
            index = rng.randrange(size)
            proofs = [tree.leaf_and_inclusion_proof_within(index, size) for tree in (cached, uncached)]
            if proofs[0] != proofs[1]:
                failures.append(f"inclusion {index} {size}")
            old = rng.randrange(size + 1)
            if cached.consistency_proof_within(old, size) != uncached.consistency_proof_within(old, size):
                failures.append(f"consistency {old} {size}")
            floors.add(cached.cache.floor)
            with progress:
                reads[0] += 1
                progress.notify_all()

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(floors) >= 3  # the layout really changed under the readers
    assert cached.cache.slots() <= 200
