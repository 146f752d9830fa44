"""Public reads from PostgreSQL hot standbys (`tagledger serve --read-db URL`): which store answers a read, and
which log position the answer reflects (docs/protocol.md 8.2, docs/architecture.md "Read replicas").

A `ReadRouter` lives in each HTTP worker process. It holds the primary's `Ledger` (every write, every signed read,
checkpoints) and one read-only `Ledger` per replica, opened with `open_replica_ledger`: its store is
`PostgresLogStore(read_only=True)` (no migration, no back-fill, every transaction READ ONLY), its writer refuses
everything (`ReadOnlyWriter`) and its projections are only read (a standby has the primary's projection tables,
as fresh as its replay: their positions say how fresh).

What the router knows of each store is a **lower bound of the log size** it holds (`Backend.size`), refreshed by a
probe at most every `probe_seconds` (in a short-lived thread that requests trigger, never on a request's path), and
only ever used as "at least": a replica only moves forward, so an answer made from it after the probe reflects at
least that many entries. A replica is taken out of the rotation when:

- it fails (a probe or a request routed to it gets an error from the store): its pool is closed, and a later probe
  opens a fresh one when it answers again;
- it is not a hot standby of this ledger (`pg_is_in_recovery()` false, or its entry #0 is not the primary's);
- it lags: the primary has held entries that the replica still lacks for more than `max_lag` seconds
  (`lag_seconds`, measured with this process's monotonic clock from the probes of the primary, so no clock of
  another machine is trusted).

`choose(min_seq)` is memory only: a replica in the rotation (round robin) that holds entry `min_seq` if one was
asked for, else the primary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ledger.service import Ledger

log = logging.getLogger("tagledger.replicas")

DEFAULT_MAX_LAG_SECONDS = 5.0
"""A replica whose replay is further behind the primary than this is taken out (`serve --read-max-lag`)."""
PROBE_SECONDS = 0.25
"""How often (at most) each process looks at its stores' sizes, while requests arrive."""
REPLICA_POOL_SIZE = 2
"""Connections kept open to each replica per HTTP worker process (up to 4 more under load)."""
READ_DB_ENV = "TAGLEDGER_READ_DB"
"""The replicas' URLs, separated by white space: `serve --read-db` (repeatable) or this variable."""
MAX_LAG_ENV = "TAGLEDGER_READ_MAX_LAG"


def read_db_urls(text: str | None) -> list[str]:
    """The URLs of `TAGLEDGER_READ_DB` (white space between them)."""
    return (text or "").split()


def redacted(url: str) -> str:
    """`url` without its password (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@", 1)))


class ReadOnlyWriter:
    """A replica's `Ledger` writes nothing: this stands in for its `LedgerWriter`."""

    def submit(self, envelope: Any, **options: Any) -> Any:
        raise RuntimeError("a replica records nothing: writes go to the primary")

    submit_async = submit_many = submit

    def idle_seconds(self) -> float:
        return float("inf")

    def close(self) -> None:
        pass


def open_replica_ledger(url: str) -> Ledger:
    """A read-only `Ledger` over the hot standby at `url` (a `postgresql://` URL)."""
    from ledger.store.postgres import PostgresLogStore

    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ValueError(f"a read replica must be a PostgreSQL hot standby (postgresql://...), not {redacted(url)}")
    store = PostgresLogStore(url, read_only=True, pool_size=REPLICA_POOL_SIZE)
    try:
        ledger = Ledger(store, writer=ReadOnlyWriter())  # type: ignore[arg-type]
        ledger.start_projection(follow=False)  # read the primary's projections, as replayed; never follow here
    except BaseException:
        store.close()
        raise
    return ledger


@dataclass
class Backend:
    """One store public reads may be sent to."""

    name: str
    """`primary`, or `replica:<n>` (n from 1, in the order of `--read-db`): what `X-Read-From` says."""
    url: str | None = None
    ledger: Ledger | None = None
    size: int = 0
    """A lower bound of the entries it holds, as last seen (it only grows)."""
    in_rotation: bool = False
    reason: str | None = "not probed yet"
    """Why it is out of the rotation (None when in)."""
    lag_seconds: float = 0.0
    verified: bool = False
    """Its entry #0 was found equal to the primary's (it is a copy of this ledger)."""
    served: int = 0
    failures: int = 0

    @property
    def is_primary(self) -> bool:
        return self.url is None

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "in_rotation": self.in_rotation or self.is_primary, "reason": self.reason,
                "log_size": self.size, "lag_seconds": round(self.lag_seconds, 3), "served": self.served,
                "failures": self.failures}


@dataclass
class _Samples:
    """The primary's size as seen by the probes: (monotonic time, size), one per change of size."""

    horizon: float
    items: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, size: int) -> None:
        if not self.items or size > self.items[-1][1]:
            self.items.append((now, size))
        # keep the newest sample older than the horizon: it is a true observation, however old
        while len(self.items) > 1 and self.items[1][0] < now - self.horizon:
            self.items.popleft()

    def behind_since(self, size: int) -> float | None:
        """When the primary was first seen holding more than `size` entries (None: never)."""
        for when, seen in self.items:
            if seen > size:
                return when
        return None


class ReadRouter:
    """Chooses the store of each public read (see the module's docstring)."""

    def __init__(self, primary: Ledger, replica_urls: Sequence[str] = (), *,
                 max_lag: float = DEFAULT_MAX_LAG_SECONDS, probe_seconds: float = PROBE_SECONDS,
                 open_replica: Callable[[str], Ledger] = open_replica_ledger,
                 clock: Callable[[], float] = time.monotonic):
        self.primary = Backend("primary", ledger=primary, in_rotation=True, reason=None)
        self.replicas = [Backend(f"replica:{i}", url=url) for i, url in enumerate(replica_urls, 1)]
        self.max_lag = max_lag
        self.probe_seconds = probe_seconds
        self._open_replica = open_replica
        self._clock = clock
        self._lock = threading.Lock()  # guards the backends' fields and `_turn`
        self._probe_lock = threading.Lock()  # one probe at a time
        self._samples = _Samples(horizon=max(60.0, 4 * max_lag))
        self._probed_at: float | None = None
        self._turn = 0
        self._genesis: bytes | None = None
        self._closed = False

    # -- choosing (memory only: called on the event loop) ----------------------------------------

    def choose(self, min_seq: int | None = None) -> Backend:
        """A replica in the rotation that holds entry `min_seq` (if given), in turn; else the primary."""
        with self._lock:
            fit = [b for b in self.replicas
                   if b.in_rotation and b.ledger is not None and (min_seq is None or b.size > min_seq)]
            if not fit:
                return self.primary
            self._turn = (self._turn + 1) % len(fit)
            return fit[self._turn]

    def known_size(self, backend: Backend) -> int:
        with self._lock:
            return backend.size

    def served(self, backend: Backend) -> None:
        with self._lock:
            backend.served += 1

    # -- what the stores hold --------------------------------------------------------------------

    def primary_size(self) -> int:
        """The primary's log size, read now (blocking; raises the store's error, and then `primary_down` is true
        until the primary answers again)."""
        try:
            size = self.primary.ledger.store.size()  # type: ignore[union-attr]
        except Exception as error:
            with self._lock:
                self.primary.reason = f"failed: {_short(error)}"
            raise
        with self._lock:
            self.primary.size = max(self.primary.size, size)
            self.primary.reason = None
        return size

    def primary_down(self) -> bool:
        """The last attempt to read the primary failed (a request then need not wait for it to fail again)."""
        with self._lock:
            return self.primary.reason is not None

    def failed(self, backend: Backend, why: str) -> None:
        """A request routed to `backend` got an error from its store: out of the rotation until a probe finds it
        answering again (with a fresh pool)."""
        if backend.is_primary:
            return
        with self._lock:
            backend.failures += 1
            was_in = backend.in_rotation
            backend.in_rotation, backend.reason = False, f"failed: {why}"
            ledger, backend.ledger = backend.ledger, None
        if was_in:
            log.warning("read replica %s (%s) taken out: %s", backend.name, redacted(backend.url or ""), why)
        if ledger is not None:
            threading.Thread(target=_close_quietly, args=(ledger,), name="replica-close", daemon=True).start()

    def probe_due(self) -> bool:
        with self._lock:
            return not self._closed and (self._probed_at is None
                                         or self._clock() - self._probed_at >= self.probe_seconds)

    def probe_soon(self) -> None:
        """Start a probe in a background thread if one is due and none is running (never waits)."""
        if self.probe_due() and not self._probe_lock.locked():
            threading.Thread(target=self.probe, name="replica-probe", daemon=True).start()

    def probe(self) -> None:
        """Look at every store now: the primary's size, then each replica's (blocking; one probe at a time)."""
        if not self._probe_lock.acquire(blocking=False):
            return
        try:
            if self._closed:
                return
            with self._lock:
                self._probed_at = self._clock()
            try:
                try:
                    size = self.primary_size()
                except Exception:  # noqa: BLE001 - a pooled connection that died is discarded: once more, afresh
                    size = self.primary_size()
            except Exception as error:  # noqa: BLE001 - the primary may be down: replicas still serve
                log.warning("probe of the primary failed: %s", _short(error))
            else:
                with self._lock:
                    self._samples.add(self._clock(), size)
            for backend in self.replicas:
                self._probe_replica(backend)
        finally:
            self._probe_lock.release()

    def _probe_replica(self, backend: Backend) -> None:
        assert backend.url is not None
        try:
            ledger = backend.ledger
            if ledger is None:
                ledger = self._open_replica(backend.url)
                with self._lock:
                    if self._closed:
                        _close_quietly(ledger)
                        return
                    backend.ledger = ledger
            with ledger.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
                curs.execute("SELECT pg_is_in_recovery() AS standby, "
                             "(SELECT COALESCE(MAX(id), 0) FROM tagledger_events_tt_main) AS size")
                row = curs.fetchone()
            standby, size = bool(row["standby"]), int(row["size"])
            if not backend.verified and size > 0:
                backend.verified = self._same_ledger(ledger)
        except Exception as error:  # noqa: BLE001 - a replica that does not answer is taken out
            self.failed(backend, _short(error))
            return
        now = self._clock()
        with self._lock:
            backend.size = max(backend.size, size) if backend.verified else size
            since = self._samples.behind_since(size)
            backend.lag_seconds = 0.0 if since is None else now - since
            if not standby:
                reason = "not a hot standby (pg_is_in_recovery() is false)"
            elif size > 0 and not backend.verified:
                reason = "not a copy of this ledger (its entry #0 differs from the primary's)"
            elif size == 0:
                reason = "holds no entry yet"
            elif backend.lag_seconds > self.max_lag:
                reason = f"lags: {backend.lag_seconds:.1f} s behind the primary (bound {self.max_lag:g} s)"
            else:
                reason = None
            changed = (reason is None) != backend.in_rotation
            backend.in_rotation, backend.reason = reason is None, reason
        if changed:
            if reason is None:
                log.info("read replica %s (%s) in rotation (log size %d)", backend.name, redacted(backend.url), size)
            else:
                log.warning("read replica %s (%s) out of rotation: %s", backend.name, redacted(backend.url), reason)

    def _same_ledger(self, replica: Ledger) -> bool:
        if self._genesis is None:
            first = self.primary.ledger.store.read_range(0, 1)  # type: ignore[union-attr]
            if not first:
                return False
            self._genesis = first[0].data
        mine = replica.store.read_range(0, 1)
        return bool(mine) and mine[0].data == self._genesis

    def status(self) -> list[dict[str, Any]]:
        """Each store's state (for operators: logs, health endpoints, metrics)."""
        with self._lock:
            return [b.status() for b in (self.primary, *self.replicas)]

    def close(self) -> None:
        """Close the replicas' pools (the primary's `Ledger` belongs to its owner)."""
        with self._lock:
            self._closed = True
            ledgers = [b.ledger for b in self.replicas if b.ledger is not None]
            for b in self.replicas:
                b.ledger, b.in_rotation, b.reason = None, False, "closed"
        for ledger in ledgers:
            _close_quietly(ledger)


def _close_quietly(ledger: Ledger) -> None:
    try:
        ledger.close()
    except Exception:  # noqa: BLE001 - a dead replica's pool may fail to close cleanly
        log.debug("closing a replica's pool failed", exc_info=True)


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:200]}"
