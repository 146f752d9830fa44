"""The service's own consistency check: is what the store holds still what the ledger wrote and signed?

`check_store` reads every entry and recomputes the Merkle tree from the entry bytes, then compares:

- each entry's leaf hash with the leaf hash stored when it was appended: an entry edited in the database
  afterwards is named (its `seq`);
- every other stored node with the recomputed one (a forged subtree);
- the recomputed root at every signed checkpoint's size with the checkpoint's root, and the checkpoint's
  signature with the log key the genesis entry names: an edit that rewrote the stored tree too is still
  caught, between the last checkpoint that matches and the first that does not.

`quick_check` is what `tagledger serve` runs at start, in bounded time whatever the size of the log: the stored
tree's root against the latest checkpoint, then the most recent entries and a random sample of the others
(`check_entries`): each entry's recomputed leaf hash, and its stored one, must lead through the stored nodes to
the signed root (or, after the checkpoint, equal the stored leaf hash). The tag view runs `check_entries` on the
tag's entries, so it never calls authentic an entry that the signed tree does not contain.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ledger.store.base import LogStore, StoredCheckpoint
from ledger.tree.log_tree import TreeError
from ledger.tree.proofs import new_nodes, node_of
from verification.checkpoint import CheckpointError, open_checkpoint
from verification.merkle import CompactRange, ProofError, leaf_hash, verify_inclusion
from verification.note import NoteVerifier, parse_vkey

PAGE = 2000
RECENT_ENTRIES = 1000
"""`quick_check` recomputes the leaf hashes of this many most recent entries ..."""
SAMPLED_BLOCKS, SAMPLE_BLOCK = 16, 32
"""... and of this many blocks of this many consecutive entries drawn at random among the others."""


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


def quick_check(store: LogStore, verifier: NoteVerifier, *, recent: int = RECENT_ENTRIES,
                blocks: int = SAMPLED_BLOCKS, block: int = SAMPLE_BLOCK) -> str | None:
    """What `tagledger serve` checks before it serves (None if fine, else the first problem): the latest
    checkpoint's signature, the stored tree's root at its size, then `check_entries` on the genesis, the `recent`
    most recent entries and `blocks` random blocks of `block` entries. O(recent + blocks * block) entries read and
    O((recent + blocks * block) * log n) stored nodes, whatever the size of the log."""
    latest = store.latest_checkpoint()
    if latest is not None:
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
    size = store.size()
    older = max(0, size - recent)  # entries [0, older) are sampled, [older, size) all read
    ranges = [(0, min(1, size)), (older, size)]
    if older > 1:
        draw = random.SystemRandom()
        ranges += [(start, min(start + block, older)) for start in
                   (draw.randrange(1, older) for _ in range(blocks))]
    entries = {e.seq: e.data for start, end in _merged(ranges) for e in store.read_range(start, end)}
    problems = check_entries(store, sorted(entries.items()), latest, verifier, stored_leaves=True)
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return problems[0] + more


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open ranges, overlapping ones merged, in order (so no entry is read twice)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def check_entries(
    store: LogStore,
    entries: Sequence[tuple[int, bytes]],
    checkpoint: StoredCheckpoint | None,
    verifier: NoteVerifier,
    *,
    proofs: Mapping[int, Sequence[bytes]] | None = None,
    stored_leaves: bool = False,
) -> list[str]:
    """Are these entries (seq, exact bytes) the ones the log committed to? Problems, empty if they are.

    An entry the signed `checkpoint` covers must be in its tree: its recomputed leaf hash, with its inclusion
    proof from the stored nodes (or `proofs`, by seq), must reproduce the signed root. A later entry must match
    the leaf hash stored when it was appended. With `stored_leaves`, a covered entry's stored leaf hash must also
    equal the recomputed one (a damaged stored leaf is named apart from an altered entry). Altered entries are
    listed first, then damaged stored leaves, then damaged paths (a damaged leaf also breaks its neighbours')."""
    altered: list[str] = []
    damaged: list[str] = []
    paths: list[str] = []
    size, root = 0, b""
    if checkpoint is not None:
        try:
            size, root = _signed_tree(checkpoint.note, verifier.vkey())
        except CheckpointError as error:
            return [f"the checkpoint of size {checkpoint.size} does not verify with the log key: {error}"]
        if (size, root) != (checkpoint.size, checkpoint.root):
            return [f"the checkpoint of size {checkpoint.size}: its stored size or root differ from the signed note"]
    covered = [(seq, raw) for seq, raw in entries if seq < size]
    later = [(seq, raw) for seq, raw in entries if seq >= size]
    wanted = [seq for seq, _ in covered if proofs is None or seq not in proofs]
    try:
        found = dict(zip(wanted, store.tree.inclusion_proofs(wanted, size))) if wanted else {}  # type: ignore[attr-defined]
    except TreeError as error:
        return [f"the stored Merkle tree cannot prove entries [{wanted[0]}, {wanted[-1]}]: {error}"]
    leaves = [seq for seq, _ in (entries if stored_leaves else later)]
    stored = store.read_nodes(leaves) if leaves else {}  # leaf i is node id i
    for seq, raw in covered:
        path = found[seq] if seq in found else proofs[seq]  # type: ignore[index]
        recomputed = leaf_hash(raw)
        if _leads_to(recomputed, seq, size, path, root):
            if stored_leaves and stored.get(seq) != recomputed:
                damaged.append(f"the stored leaf hash of entry #{seq} is damaged (the entry itself is in the signed "
                               f"tree of size {size})")
        elif not stored_leaves:  # the entry or a stored node on its path: either way it cannot be vouched for
            altered.append(f"entry #{seq} is not in the signed tree of size {size}: the entry, or the stored tree "
                           "on its path, was altered in the store after it was appended")
        elif stored.get(seq) == recomputed:
            paths.append(f"the stored tree does not lead from entry #{seq} to the root of the signed checkpoint of "
                         f"size {size}: a stored node on its path was altered")
        else:
            altered.append(f"entry #{seq} is not the entry the signed checkpoint of size {size} committed to: it "
                           "was altered in the store after it was appended")
    for seq, raw in later:
        if seq not in stored:
            damaged.append(f"entry #{seq} has no stored leaf hash")
        elif stored[seq] != leaf_hash(raw):
            altered.append(f"entry #{seq} does not match the leaf hash stored when it was appended: it was altered "
                           "in the store afterwards")
    return altered + damaged + paths


@functools.lru_cache(maxsize=64)
def _signed_tree(note: str, vkey: str) -> tuple[int, bytes]:
    """(size, root) of a checkpoint note signed by the key `vkey`, else `CheckpointError` (each note is verified
    once: every tag view checks its entries against the latest checkpoint)."""
    signed = open_checkpoint(note, parse_vkey(vkey))
    return signed.size, signed.root_hash


def _leads_to(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(leaf, index, size, list(proof), root)
    except ProofError:
        return False
    return True


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
