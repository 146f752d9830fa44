"""Is the service healthy? The log's freshness and the projections' lag, read from the store (protocol section 20).

Everything here is read from the store, never from one process's memory: with several worker processes and
several servers on one PostgreSQL database, only the store knows whether somebody signed a checkpoint or moved a
projection forward. `HealthMonitor.snapshot` caches what it read for `CACHE_SECONDS`, so that a write path asking
on every request costs a few indexed reads twice a second, not per request.

The rules:

* **checkpoint_stale** (the write rule, 503 `log.checkpoint_stale`): an entry that the latest signed checkpoint
  does not cover has waited more than `checkpoint_bound` seconds, counted from its `received` time or from this
  process's start, whichever is later. A quiet ledger (every entry covered) is never stale, however old its
  last checkpoint: no new entry needs no new checkpoint.
* **projection lag** (for readiness): the first entry a projection has not folded has waited more than
  `projection_bound` seconds (from its `received` time).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ledger.entries import read_entry
from ledger.store.base import LogStore
from verification.encoding import parse_time

if TYPE_CHECKING:
    from ledger.service import Ledger

CHECKPOINT_BOUND_SECONDS = 10.0
"""How long an accepted entry may wait for a signed checkpoint before writes are refused. The supervisor signs
every second while entries arrive (ledger/checkpoints.py), so ten seconds is missed only when nobody signs."""

PROJECTION_BOUND_SECONDS = 30.0
"""How far behind the log (in time) a projection may be while the service calls itself ready."""

CACHE_SECONDS = 0.5
"""How long a snapshot read from the store is reused."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Snapshot:
    """What the store said at `taken_at`."""

    taken_at: datetime
    entries: int
    checkpoint_size: int
    checkpoint_signed_at: datetime | None
    first_unsigned_received: datetime | None
    """`received` of entry #checkpoint_size, the oldest entry no checkpoint covers (None: every entry is covered)."""
    projections: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    """Per projection: its position and the `received` of the first entry it has not folded (None: up to date)."""

    def unsigned_seconds(self, now: datetime, since: datetime | None = None) -> float:
        """How long the oldest entry no checkpoint covers has waited (0 when there is none), counted from its
        `received` time or from `since` if later."""
        if self.first_unsigned_received is None:
            return 0.0
        start = max(self.first_unsigned_received, since) if since is not None else self.first_unsigned_received
        return max(0.0, (now - start).total_seconds())

    def checkpoint_age(self, now: datetime) -> float | None:
        """Seconds since the latest checkpoint was signed (None: none was ever signed)."""
        if self.checkpoint_signed_at is None:
            return None
        return max(0.0, (now - self.checkpoint_signed_at).total_seconds())

    def projection_lag(self, name: str, now: datetime) -> tuple[int, float]:
        """(entries, seconds) projection `name` is behind the log."""
        position, first_pending = self.projections.get(name, (self.entries, None))
        seconds = 0.0 if first_pending is None else max(0.0, (now - first_pending).total_seconds())
        return max(0, self.entries - position), seconds


def _received(store: LogStore, seq: int) -> datetime | None:
    found = store.read_range(seq, seq + 1)
    return parse_time(read_entry(found[0].data).received) if found else None


def read_snapshot(ledger: Ledger) -> Snapshot:
    """Read the log's freshness and the projections' positions from the store (a handful of indexed reads)."""
    store = ledger.store
    now = _now()
    latest = store.latest_checkpoint()
    entries = store.size()
    signed_size = latest.size if latest is not None else 0
    first_unsigned = _received(store, signed_size) if entries > signed_size else None
    projections: dict[str, tuple[int, datetime | None]] = {}
    for name, projection in (("custody", ledger.projection), ("flags", ledger.flags)):
        if projection is None:
            continue
        position = projection.position()
        projections[name] = (position, _received(store, position) if entries > position else None)
    return Snapshot(now, entries, signed_size, parse_time(latest.signed_at) if latest is not None else None,
                    first_unsigned, projections)


@dataclass(frozen=True)
class Verdict:
    """Whether the service is ready, and each check's finding (for /readyz and people)."""

    ready: bool
    checks: dict[str, dict[str, object]]


class HealthMonitor:
    """The health rules of one server process, over snapshots of the store cached for `CACHE_SECONDS`."""

    def __init__(self, ledger: Ledger, *, checkpoint_bound: float = CHECKPOINT_BOUND_SECONDS,
                 projection_bound: float = PROJECTION_BOUND_SECONDS, refuse_stale_writes: bool = False):
        self.ledger = ledger
        self.checkpoint_bound = checkpoint_bound
        self.projection_bound = projection_bound
        self.refuse_stale_writes = refuse_stale_writes
        self.started_at = _now()
        self._lock = threading.Lock()
        self._cached: Snapshot | None = None
        self._cached_at = float("-inf")

    def cached(self) -> Snapshot | None:
        """The cached snapshot if it is recent enough, without touching the store."""
        if time.monotonic() - self._cached_at <= CACHE_SECONDS:
            return self._cached
        return None

    def snapshot(self) -> Snapshot:
        """A snapshot at most `CACHE_SECONDS` old (read from the store when the cached one is older)."""
        found = self.cached()
        if found is not None:
            return found
        with self._lock:
            found = self.cached()
            if found is None:
                found = read_snapshot(self.ledger)
                self._cached, self._cached_at = found, time.monotonic()
            return found

    # -- the rules -----------------------------------------------------------------------------

    def stale_checkpoint(self, snapshot: Snapshot, now: datetime | None = None) -> str | None:
        """Why writes must wait for a checkpoint (`log.checkpoint_stale`), or None when they need not."""
        now = now or _now()
        waited = snapshot.unsigned_seconds(now, since=self.started_at)
        if waited <= self.checkpoint_bound:
            return None
        return (f"entry #{snapshot.checkpoint_size} was accepted {waited:.0f} s ago and no signed checkpoint covers "
                f"it yet (the latest covers {snapshot.checkpoint_size} of {snapshot.entries} entries; the bound is "
                f"{self.checkpoint_bound:g} s): is the process holding the log key running?")

    def verdict(self, snapshot: Snapshot, now: datetime | None = None) -> Verdict:
        now = now or _now()
        stale = self.stale_checkpoint(snapshot, now)
        checks: dict[str, dict[str, object]] = {
            "store": {"ok": True, "entries": snapshot.entries},
            "checkpoint": {"ok": stale is None, "size": snapshot.checkpoint_size,
                           "unsigned_seconds": round(snapshot.unsigned_seconds(now), 3),
                           "bound_seconds": self.checkpoint_bound, **({"detail": stale} if stale else {})},
        }
        for name in snapshot.projections:
            entries, seconds = snapshot.projection_lag(name, now)
            ok = seconds <= self.projection_bound
            checks[f"projection.{name}"] = {"ok": ok, "lag_entries": entries, "lag_seconds": round(seconds, 3),
                                            "bound_seconds": self.projection_bound}
        return Verdict(all(bool(c["ok"]) for c in checks.values()), checks)
