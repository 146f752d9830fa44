"""Signed checkpoints: the ledger's commitment to the whole log, published every second while entries arrive.

A checkpoint is a C2SP `tlog-checkpoint` (origin = the log key's name, tree size, root hash) signed as a C2SP
`signed-note` with the log's Ed25519 key (docs/protocol.md section 11). Every checkpoint the ledger signs is
stored (append-only) so that it can be served again and proven consistent with any later one.

Only the process that holds the log key publishes (`tagledger serve`'s supervising process, or an app
created with the key); publishing is idempotent, so two publishers on one store do no harm: a checkpoint
of a given size is always the same bytes (the tree is append-only and Ed25519 signatures are deterministic).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from ledger.keys import KeyPair
from ledger.store.base import LogStore, StoredCheckpoint
from verification.checkpoint import Checkpoint, sign_checkpoint
from verification.note import NoteVerifier, encode_vkey, parse_vkey

log = logging.getLogger("tagledger.checkpoints")

INTERVAL_SECONDS = 1.0
"""How often the publisher looks for new entries to commit to."""


@dataclass(frozen=True)
class LogIdentity:
    """The log's name (the checkpoints' origin and the note key's name) and its public key."""

    origin: str
    public_key_raw: bytes

    @property
    def vkey(self) -> str:
        return encode_vkey(self.origin, self.public_key_raw)

    @property
    def verifier(self) -> NoteVerifier:
        return parse_vkey(self.vkey)


class CheckpointSigner:
    def __init__(self, store: LogStore, origin: str, key: KeyPair):
        self.store = store
        self.origin = origin
        self.key = key

    def publish(self) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of the whole tree if it grew since the last one; return the latest."""
        size = self.store.tree_size()
        latest = self.store.latest_checkpoint()
        if latest is not None and latest.size >= size:
            return latest
        root = self.store.tree.root(size)  # type: ignore[attr-defined]
        note = sign_checkpoint(Checkpoint(self.origin, size, root), self.origin, self.key.private_key)
        signed_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.store.insert_checkpoint(StoredCheckpoint(size, root, note, signed_at))
        return self.store.checkpoint(size)


class CheckpointPublisher:
    """A background thread that publishes a checkpoint at most every `interval` seconds while entries arrive.

    It waits for the log to grow (`LogStore.watch`: LISTEN/NOTIFY on PostgreSQL), so an idle service runs no
    transaction for it; after a growth it lets `interval` seconds of entries gather, then signs one checkpoint
    of them all.
    """

    def __init__(self, signer: CheckpointSigner, interval: float = INTERVAL_SECONDS):
        self.signer = signer
        self.interval = interval
        self._stop = threading.Event()
        self._watcher = signer.store.watch()
        self._thread = threading.Thread(target=self._run, name="tagledger-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._watcher.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if not self._watcher.wait(60.0):
                        continue
                    self.signer.publish()
                except Exception:  # a store hiccup must not end publication: log it and try again
                    log.exception("publishing a checkpoint failed; retrying in %.1f s", self.interval)
                if self._stop.wait(self.interval):  # at most one checkpoint per interval
                    break
        finally:
            self._watcher.close()
        try:  # a clean shutdown leaves a checkpoint of everything acknowledged
            self.signer.publish()
        except Exception:
            log.exception("publishing the final checkpoint failed")
