"""Proofs through the in-process node cache (ledger/tree/node_cache.py) on the real stores: the same as read without
it, for every leaf and many sizes, as the log grows, and they verify (verification/merkle.py) against the signed
checkpoints' roots."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.tree.log_tree import LogTree
from ledger.tree.node_cache import NodeCache
from tests.ledger.world import attach_and_deliver, make_world
from verification.merkle import verify_consistency, verify_inclusion


def test_cached_proofs_are_the_stored_proofs_as_the_log_grows(store_url: str) -> None:
    world = make_world(store_url, tags=10)
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    store = world.ledger.store
    try:
        trees = {budget: LogTree(store, NodeCache(budget)) for budget in (0, 5, 40, 100_000)}
        uncached = trees[0]
        for n in range(1, 5):
            attach_and_deliver(world, f"KAL-{n:06d}")
            checkpoint = world.ledger.publish_checkpoint()
            size, root = checkpoint.size, checkpoint.root
            for budget, tree in trees.items():
                for index in range(size):
                    found = tree.leaf_and_inclusion_proof_within(index, size)
                    assert found == uncached.leaf_and_inclusion_proof_within(index, size), (budget, index, size)
                    verify_inclusion(found[0], index, size, found[1], root)
                for old in range(size + 1):
                    proof = tree.consistency_proof_within(old, size)
                    assert proof == uncached.consistency_proof_within(old, size)
                    if old:
                        verify_consistency(old, size, store.tree.root(old), root, proof)
                assert tree.leaf_and_inclusion_proof_within(0, size + 1) is None
                assert tree.cache.slots() <= budget
        assert trees[100_000].cache.held() > 0 and trees[5].cache.floor > 0
    finally:
        world.ledger.close()


@pytest.fixture
def small_log(store_url: str):  # noqa: ANN201
    """A store with a few tags' histories and a signed checkpoint after each: (store, [(size, root), ...])."""
    world = make_world(store_url, tags=10)
    world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
    checkpoints = []
    for n in range(1, 7):
        attach_and_deliver(world, f"KAL-{n:06d}")
        checkpoint = world.ledger.publish_checkpoint()
        checkpoints.append((checkpoint.size, checkpoint.root))
    try:
        yield world.ledger.store, checkpoints
    finally:
        world.ledger.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 2**31)), min_size=1, max_size=30),
       st.integers(0, 200))
def test_random_proofs_of_a_stored_log_through_caches_of_any_size(small_log, asks, budget: int) -> None:  # noqa: ANN001
    store, checkpoints = small_log
    cached, uncached = LogTree(store, NodeCache(budget)), LogTree(store, NodeCache(0))
    for pick, which in asks:
        size, root = checkpoints[which % len(checkpoints)]
        index = pick % size
        found = cached.leaf_and_inclusion_proof_within(index, size)
        assert found == uncached.leaf_and_inclusion_proof_within(index, size)
        verify_inclusion(found[0], index, size, found[1], root)
        old = pick % (size + 1)
        assert cached.consistency_proof_within(old, size) == uncached.consistency_proof_within(old, size)
        assert cached.cache.slots() <= budget
