"""What the writer answers for an envelope when the store fails (docs/protocol.md 8.1).

Every envelope handed to the writer ends with exactly one of these outcomes, and each is true:

- a `Receipt`: it is in the log (committed by this request, or earlier: `duplicate`);
- a `RuleViolation`: it was judged and refused;
- `NotWritten` (`storage.unavailable`): the store failed before this request's transaction was committed, so
  this request wrote nothing (an earlier submission of the same bytes, if any, stays recorded);
- `OutcomeUnknown` (`storage.outcome_unknown`): the connection failed during or around COMMIT and the log could
  not be read afterwards to find out. Resubmitting the same bytes is safe: the ledger answers with the original
  receipt if it was recorded, and records it once otherwise.

After a failed COMMIT the writer first tries to find out (`resolve`): it reconnects, takes the log's write lock
(so a transaction that a lost connection was still committing has ended, one way or the other) and looks the
event ids up in the log. Only when that fails too is the answer "unknown".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from eventsourcing.persistence import PersistenceError

from ledger.entries import read_entry
from ledger.store.base import LogStore

log = logging.getLogger("tagledger.writer")

RETRY_AFTER_SECONDS = 1
"""What a client is told to wait before resubmitting (the `Retry-After` header of a 503)."""

RESOLVE_ATTEMPTS = 3
RESOLVE_PAUSE_SECONDS = 0.3


class StorageFailure(Exception):
    """The store failed before the writer could record an envelope; HTTP 503 with `rule`."""

    rule = "storage.unavailable"
    status = 503

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotWritten(StorageFailure):
    """Definite: this request wrote nothing for this envelope."""

    rule = "storage.unavailable"


class OutcomeUnknown(StorageFailure):
    """The transaction holding this envelope may or may not have been committed."""

    rule = "storage.outcome_unknown"


def not_written() -> NotWritten:
    return NotWritten("the store failed before this envelope's transaction was committed: this request wrote "
                      "nothing; resubmit the same bytes")


def not_committed() -> NotWritten:
    return NotWritten("the connection to the store failed while committing, and the log, read again afterwards, "
                      "does not hold this envelope: this request wrote nothing; resubmit the same bytes")


def unknown() -> OutcomeUnknown:
    return OutcomeUnknown("the connection to the store failed while committing and the log could not be read "
                          "again: this envelope may or may not be recorded; resubmit the same bytes (idempotent: "
                          "the answer is then its receipt, and it is never recorded twice)")


def resolve(store: LogStore, event_ids: Sequence[str]) -> dict[str, bytes] | None:
    """After a failed COMMIT: the log entries (raw bytes) of those of `event_ids` that are in the log, read under
    the write lock; None if the store could not be read (the outcome stays unknown)."""
    wanted = list(dict.fromkeys(event_ids))
    for attempt in range(RESOLVE_ATTEMPTS):
        try:
            with store.write_session() as session:  # the lock: the lost transaction has ended by now
                found = session.read_tagged([f"event:{i}" for i in wanted])
        except PersistenceError as exc:
            log.warning("could not read the log after a failed commit (attempt %d): %s", attempt + 1, short(exc))
            time.sleep(RESOLVE_PAUSE_SECONDS * (attempt + 1))
            continue
        except Exception:  # noqa: BLE001 - whatever went wrong, the honest answer is "unknown"
            log.exception("could not read the log after a failed commit")
            return None
        return {read_entry(s.data).body["id"]: s.data for s in found}
    return None


def short(exc: BaseException) -> str:
    """An exception in one line, for the log."""
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
