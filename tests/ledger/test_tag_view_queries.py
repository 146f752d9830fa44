"""A tag view on PostgreSQL reads in one transaction and a few queries, however long the log (issue 13).

Counts, not times: `tests.query_count` counts the statements and transactions this thread sends. The view is
made as the HTTP route makes it (`Ledger.tag`, then `tag_document`), on a small store and on the same store after
many more entries (other tags' histories and more checkpoints): the counts must be the same and within the bound.
"""

from __future__ import annotations

import pytest

from ledger.views import tag_document
from tests.ledger.world import attach_and_deliver, make_world
from tests.query_count import counting
from verification.canonical import jcs

MAX_QUERIES = {"bag": 3, "lot": 3}
"""A bag: its events with the registry's news, the latest checkpoint, the flags projection's position, its own
flags and refused attempts (one query); the proofs' nodes; its origin site's monitoring and incidents. A lot reads
the tags that went into it, with their flags and refused attempts, in the query of its proofs' nodes; a lot made
of lots one more query per further level (issue 13 asks for 3; docs/benchmarks.md section 11). Were 13 and 15
queries, each its own transaction."""


def _view(world, tag: str):  # noqa: ANN001, ANN202
    with counting() as counts:
        view = world.ledger.tag(tag)
        document = tag_document(view, view.registry)
    return document, counts


def _grow(world, tags: list[str]) -> None:  # noqa: ANN001
    for tag in tags:
        attach_and_deliver(world, tag)
        world.ledger.publish_checkpoint()


@pytest.mark.parametrize("lot", [False, True], ids=["bag", "lot"])
def test_tag_view_is_one_transaction_and_few_queries_whatever_the_log_size(fresh_pg_url: str, lot: bool) -> None:
    world = make_world(fresh_pg_url, tags=60)
    try:
        world.ledger.start_checkpoints(world.log_key, publish_in_background=False)
        world.ledger.start_projection(follow=False)  # as in a `serve` worker: the flags are read from it
        holder = "depot" if lot else "trader"
        attach_and_deliver(world, "KAL-000001", to=holder)
        attach_and_deliver(world, "KAL-000002", to=holder)
        tag = "KAL-000001"
        if lot:  # a lot: its origins and flags are read from the tags that went into it
            world.clients["depot"].merge("LOT-0001", ["KAL-000001", "KAL-000002"], mass_g=99_000, time=world.tick())
            tag = "LOT-0001"
        world.ledger.publish_checkpoint()
        world.ledger.tag(tag)  # warm: the registry copy is folded once per process, not per view
        small, small_counts = _view(world, tag)
        assert small["log"] is not None and all(e["inclusion_proof"] for e in small["events"])

        _grow(world, [f"KAL-{i:06d}" for i in range(3, 40)])
        world.ledger.tag(tag)
        large, large_counts = _view(world, tag)
        assert large["log"]["size"] > small["log"]["size"] + 100
        assert [e["hash"] for e in large["events"]] == [e["hash"] for e in small["events"]]

        for counts in (small_counts, large_counts):
            assert counts.transactions == 1, counts.statements
            assert counts.queries <= MAX_QUERIES["lot" if lot else "bag"], counts.statements
        assert large_counts.queries == small_counts.queries, (small_counts.statements, large_counts.statements)
        assert jcs(small["state"]) == jcs(large["state"])
        # the view's bytes do not depend on how it was read: the same as read outside any snapshot
        plain = tag_document(world.ledger._tag(tag, as_of=None, context=True), world.ledger.registry())
        for document in (plain, large):
            document.pop("risk")  # made for the time of the view, now: its times differ by construction
        assert jcs(plain) == jcs(large)
    finally:
        world.ledger.close()


def test_postgres_read_tagged_matches_the_library_recorder(fresh_pg_url: str) -> None:
    """The store's one-query `read_tagged` returns what the library's DCB recorder returns (rows, order)."""
    from eventsourcing.dcb.api import DCBQuery, DCBQueryItem

    world = make_world(fresh_pg_url, tags=12)
    try:
        attach_and_deliver(world, "KAL-000001")
        attach_and_deliver(world, "KAL-000003")
        store = world.ledger.store
        for tags, after in ((["tag:KAL-000001"], 0), (["tag:KAL-000001", "tag:KAL-000003", "registry"], 0),
                            (["registry"], 5), (["tag:KAL-000012"], 0), (["tag:NOPE"], 0)):
            library = [(e.position, e.event.type, bytes(e.event.data), tuple(e.event.tags)) for e in
                       store.recorder.read(DCBQuery(items=[DCBQueryItem(tags=[t]) for t in tags]), after=after)]
            ours = [(e.position, e.type, e.data, e.tags) for e in store.read_tagged(tags, after)]
            assert ours == library and (library or tags == ["tag:NOPE"])
            assert store.read_tagged_groups([(tags, after), (["registry"], 0)])[0] == store.read_tagged(tags, after)
    finally:
        world.ledger.close()


def test_a_proof_is_read_in_one_query_and_a_size_beyond_the_tree_is_told(fresh_pg_url: str) -> None:
    """GET /v1/log/proof/* read the proof and the check that the tree holds `size` leaves in one query."""
    from verification.merkle import leaf_hash, verify_consistency, verify_inclusion

    world = make_world(fresh_pg_url, tags=12)
    try:
        attach_and_deliver(world, "KAL-000001")
        tree, size = world.ledger.store.tree, world.ledger.store.size()
        root = tree.root(size)
        with counting() as counts:
            leaf, proof = tree.leaf_and_inclusion_proof_within(3, size)
            consistency = tree.consistency_proof_within(5, size)
        assert counts.queries == 2 and counts.transactions == 2
        entry = world.ledger.store.read_range(3, 4)[0].data
        assert leaf == leaf_hash(entry)
        verify_inclusion(leaf, 3, size, proof, root)
        verify_consistency(5, size, tree.root(5), root, consistency)
        assert tree.leaf_and_inclusion_proof_within(3, size + 1) is None
        assert tree.consistency_proof_within(5, size + 1) is None
        assert tree.consistency_proof_within(0, 0) == []
        # asked again: the tree's nodes are in the process's cache (a tree this small fits whole), its size known
        with counting() as counts:
            assert tree.leaf_and_inclusion_proof_within(3, size) == (leaf, proof)
            assert tree.consistency_proof_within(5, size) == consistency
        assert counts.queries == 0
        # a size beyond the tree is still asked of the store, and told
        with counting() as counts:
            assert tree.leaf_and_inclusion_proof_within(3, size + 1) is None
        assert counts.queries == 1
    finally:
        world.ledger.close()
