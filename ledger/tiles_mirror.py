"""`tagledger tiles sync DIR`: mirror the log into a directory of static tiles (docs/protocol.md section 19).

Any static web server, object store or CDN can then serve DIR as a C2SP tlog-tiles log. The mirror is:

- **incremental**: the checkpoint in DIR says what was mirrored; a sync writes only the full tiles completed
  since then (once: they never change), the partial tiles of the new size, and the new checkpoint;
- **exact**: it takes the store's latest signed checkpoint and writes the tiles of exactly that tree size; the
  stored tree's nodes and entries below that size never change, so a writer appending meanwhile does no harm;
- **atomic**: every file is written to a temporary name and renamed into place; everything is flushed to disk
  before the checkpoint is renamed into place last, so a reader never sees a checkpoint whose tiles are not
  all there, and a sync that stops half-way leaves the previous mirror whole (the next one starts over from it);
- **exclusive**: an advisory lock on ``DIR/.tagledger-sync.lock`` keeps two syncs (overlapping cron runs)
  from racing; the second waits.

Partial tiles of earlier checkpoints are kept until the full tile exists, then removed (tlog-tiles allows it;
clients fall back to the full tile).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.checkpoints import LogIdentity
from ledger.store.base import LogStore
from ledger.tiles import TileReader, TilesError
from verification.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from verification.tiles import Tile, tiles_of

CHECKPOINT = "checkpoint"
LOCK = ".tagledger-sync.lock"


class MirrorError(RuntimeError):
    """The mirror cannot be brought up to date (no checkpoint yet, DIR holds another log, a damaged store)."""


@dataclass(frozen=True)
class SyncSummary:
    previous_size: int
    size: int
    tiles: int
    bundles: int
    removed: int

    def describe(self, directory: Path) -> str:
        if self.size == self.previous_size:
            return f"{directory} is up to date: the log's checkpoint of size {self.size}."
        return (f"Mirrored the log into {directory}: checkpoint of size {self.size} (was {self.previous_size}), "
                f"{self.tiles} hash tile(s) and {self.bundles} entry bundle(s) written, "
                f"{self.removed} superseded partial tile(s) removed.")


def write_atomically(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # readable by the web server, like any published file
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / LOCK, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _mirrored(directory: Path, identity: LogIdentity) -> Checkpoint | None:
    """The checkpoint the last sync published in ``directory``, verified with the log key; None if none."""
    path = directory / CHECKPOINT
    if not path.exists():
        return None
    try:
        return open_checkpoint(path.read_bytes(), identity.verifier)
    except CheckpointError as error:
        raise MirrorError(f"{path} is not a checkpoint of this log ({identity.origin}): {error}; "
                          "mirror into an empty directory") from None


def sync_tiles(store: LogStore, identity: LogIdentity, directory: Path,
               progress: Callable[[int, int], None] | None = None) -> SyncSummary:
    """Bring the tiles in ``directory`` up to the store's latest signed checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        latest = store.latest_checkpoint()
        if latest is None:
            raise MirrorError("the log has no signed checkpoint yet: start the service (it signs one every second)")
        try:
            checkpoint = open_checkpoint(latest.note, identity.verifier)
        except CheckpointError as error:
            raise MirrorError(f"the store's latest checkpoint does not verify with the log key: {error}") from None
        previous = _mirrored(directory, identity)
        old_size = 0 if previous is None else previous.size
        if old_size > checkpoint.size:
            raise MirrorError(f"{directory} mirrors a log of {old_size} entries, more than this store's checkpoint "
                              f"({checkpoint.size}): another log, or a store restored from an older backup")
        if previous is not None and old_size == checkpoint.size:
            if previous.root_hash != checkpoint.root_hash:
                raise MirrorError(f"{directory} holds a different checkpoint of size {old_size}: another log")
            return SyncSummary(old_size, old_size, 0, 0, 0)
        try:
            if store.tree.root(checkpoint.size) != checkpoint.root_hash:  # type: ignore[attr-defined]
                raise MirrorError("the stored Merkle tree does not match the signed checkpoint (run `tagledger check`)")
            if previous is not None and store.tree.root(old_size) != previous.root_hash:  # type: ignore[attr-defined]
                raise MirrorError(f"the checkpoint of size {old_size} in {directory} is not a prefix of this log")
            written = _write_tiles(TileReader(store), directory, old_size, checkpoint.size, progress)
        except TilesError as error:
            raise MirrorError(str(error)) from None
        os.sync()  # every tile on disk before the checkpoint that covers them
        write_atomically(directory / CHECKPOINT, latest.note.encode("utf-8"), sync=True)
        removed = 0
        for tile in tiles_of(checkpoint.size, after=old_size):
            if not tile.full:
                continue
            dirs = [tile.partials_dir]
            if tile.level == 0:
                dirs += [tile.bundle_path + ".p", tile.tagledger_bundle_path + ".p"]
            for partials in (directory / d for d in dirs):
                if partials.is_dir():
                    removed += sum(1 for _ in partials.iterdir())
                    shutil.rmtree(partials)
        return SyncSummary(old_size, checkpoint.size, written[0], written[1], removed)


def _write_tiles(reader: TileReader, directory: Path, old_size: int, size: int,
                 progress: Callable[[int, int], None] | None) -> tuple[int, int]:
    tiles = bundles = 0
    for tile in tiles_of(size, after=old_size):
        data = reader.hash_tile(tile)
        write_atomically(directory / tile.path, data)
        tiles += 1
        if tile.level == 0:
            bundle = reader.bundle(tile, data)
            write_atomically(directory / bundle.path, bundle.data)
            bundles += 1
            if progress is not None:
                progress(tile.entries[1], size)
    return tiles, bundles
