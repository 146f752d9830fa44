"""The service's own consistency check: is what the store holds still what the ledger wrote and signed?

`check_store` reads every entry and recomputes the Merkle tree from the entry bytes, then compares:

- each entry's leaf hash with the leaf hash stored when it was appended: an entry edited in the database
  afterwards is named (its `seq`);
- every other stored node with the recomputed one (a forged subtree);
- the recomputed root at every signed checkpoint's size with the checkpoint's root, and the checkpoint's
  signature with the log key the genesis entry names: an edit that rewrote the stored tree too is still
  caught, between the last checkpoint that matches and the first that does not.

`quick_check` is what `tagledger serve` runs at start: the stored tree's root against the latest checkpoint,
in O(log n) reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.store.base import LogStore
from ledger.tree.proofs import new_nodes, node_of
from verification.checkpoint import CheckpointError, open_checkpoint
from verification.merkle import CompactRange, leaf_hash
from verification.note import NoteVerifier

PAGE = 2000


@dataclass
class ConsistencyReport:
    entries: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    """The first entry found altered, when the stored leaf hashes can name it."""
    suspect_range: tuple[int, int] | None = None
    """Entries between two checkpoints, the first of which no longer matches, when no leaf hash names one."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def _bad_entry(self, seq: int, message: str) -> None:
        if self.first_bad_seq is None or seq < self.first_bad_seq:
            self.first_bad_seq = seq
        self.problems.append(message)


def quick_check(store: LogStore, verifier: NoteVerifier) -> str | None:
    """The stored tree's root at the latest checkpoint's size, against that signed checkpoint (None if fine)."""
    latest = store.latest_checkpoint()
    if latest is None:
        return None
    try:
        signed = open_checkpoint(latest.note, verifier)
    except CheckpointError as error:
        return f"the latest checkpoint (size {latest.size}) does not verify: {error}"
    if signed.size != latest.size or signed.root_hash != latest.root:
        return f"the latest checkpoint's stored size/root differ from its signed note (size {latest.size})"
    if store.tree_size() < latest.size:
        return f"the stored tree has {store.tree_size()} leaves, fewer than the checkpoint's {latest.size}"
    if store.tree.root(latest.size) != latest.root:  # type: ignore[attr-defined]
        return f"the stored tree's root at size {latest.size} is not the root of the signed checkpoint"
    return None


def check_store(
    store: LogStore, verifier: NoteVerifier, *, progress: Callable[[int, int], None] | None = None
) -> ConsistencyReport:
    report = ConsistencyReport()
    total = store.size()
    checkpoints = []
    after = -1
    while page := store.checkpoints(after_size=after):
        checkpoints.extend(page)
        after = page[-1].size
    pending = iter(checkpoints)
    next_checkpoint = next(pending, None)
    frontier = CompactRange()
    matched_size = 0  # the largest checkpoint size whose root matched so far

    def check_checkpoints_at(size: int) -> None:
        nonlocal next_checkpoint, matched_size
        while next_checkpoint is not None and next_checkpoint.size == size:
            report.checkpoints += 1
            cp = next_checkpoint
            try:
                signed = open_checkpoint(cp.note, verifier)
                if (signed.size, signed.root_hash) != (cp.size, cp.root):
                    raise CheckpointError("its stored size or root differ from the signed note")
            except CheckpointError as error:
                report.problems.append(f"checkpoint of size {cp.size}: {error}")
            else:
                if frontier.root() != cp.root:
                    report.suspect_range = report.suspect_range or (matched_size, cp.size)
                    report.problems.append(
                        f"the entries [{matched_size}, {cp.size}) do not reproduce the signed checkpoint of size "
                        f"{cp.size} (signed {cp.signed_at}): an entry in that range was altered"
                    )
                else:
                    matched_size = cp.size
            next_checkpoint = next(pending, None)

    leaf_mismatches: list[tuple[int, bool]] = []  # (seq, a leaf hash is stored)
    check_checkpoints_at(0)
    for start in range(0, total, PAGE):
        events = store.read_range(start, min(total, start + PAGE))
        for offset, event in enumerate(events):
            if event.seq != start + offset:
                report._bad_entry(start + offset, f"entry #{start + offset} is missing (found #{event.seq})")
                return report
        frontier_before = frontier.copy()
        frontier, rows = new_nodes(frontier_before, [leaf_hash(e.data) for e in events])
        stored = store.read_nodes([node for node, _ in rows])
        for node, expected in rows:
            level, index = node_of(node)
            if stored.get(node) == expected:
                continue
            if level == 0:
                leaf_mismatches.append((index, node in stored))
            elif all(stored.get(n) == h for n, h in rows if node_of(n)[0] == 0):
                first = index << level
                report.problems.append(
                    f"stored tree node (level {level}, index {index}) over entries [{first}, {first + (1 << level)}) "
                    "is not the hash of its children"
                )
        # checkpoints inside this page: replay the page leaf by leaf only when one falls inside it
        end = start + len(events)
        if next_checkpoint is not None and next_checkpoint.size <= end:
            frontier = frontier_before
            for event in events:
                frontier.append(leaf_hash(event.data))
                check_checkpoints_at(frontier.size)
        report.entries = end
        if progress is not None:
            progress(end, total)
    for seq, has_leaf in leaf_mismatches:
        if seq < matched_size:
            # a signed checkpoint covering it is reproduced by the entries: the entry is authentic, the stored tree
            # is what was damaged
            report.problems.append(f"the stored leaf hash of entry #{seq} is damaged (the entry itself reproduces "
                                   f"the signed checkpoint of size {matched_size})")
        elif has_leaf:
            report._bad_entry(seq, f"entry #{seq} does not match the leaf hash stored when it was appended: it was "
                                   "altered afterwards")
        else:
            report._bad_entry(seq, f"entry #{seq} has no stored leaf hash")
    if next_checkpoint is not None:
        report.problems.append(
            f"a checkpoint of size {next_checkpoint.size} was signed, but the log holds only {total} entries: "
            "entries were removed"
        )
    return report
