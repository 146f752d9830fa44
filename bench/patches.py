"""EXPERIMENTS ONLY: monkeypatches that try out suggested fixes to ledger/ and domain/ without editing them.

The benchmarks never apply these unless asked (`--patch NAME`, or TAGLEDGER_BENCH_PATCHES=NAME,... for the
server). They exist to put a number on a suggested change before anyone makes it for real; results measured with
a patch are labelled with it.

  reads-without-tags
                  reads by tag (the API's `Ledger.tag`/`registry` through `LogStore.read_tagged`, and the writer's
                  `WriteSession.read_tagged`) use one SQL query that does not fetch the `tags` column: for a
                  `tags_issued` row that column holds one stream name per issued tag (10,000 strings, ~43 KB
                  TOASTed on PostgreSQL) which every read of any of those tags transfers and decodes, and on
                  SQLite the DCB recorder's per-item query also turns into a set for every candidate row
  (issued-subset, measured earlier, is now in the code: commit cde7693 `issued_among`)
  writer-linger   the writer keeps gathering a batch for up to 2 ms (TAGLEDGER_BENCH_LINGER_S) after the first
                  envelope instead of taking only what is already queued (bigger group commits)
  switch-interval `sys.setswitchinterval(0.0005)` (default 0.005): the writer thread gives up the GIL on every
                  database round trip; with the event loop (or submitting threads) busy, getting it back can take
                  up to the switch interval each time
"""

from __future__ import annotations

import os
from typing import Any

APPLIED: list[str] = []


_PG_NO_TAGS = (
    "SELECT id, type, data FROM tagledger_events_tt_main WHERE id IN "
    "(SELECT main_id FROM tagledger_events_tt_tag WHERE tag = ANY(%s) AND main_id > %s) ORDER BY id"
)


def patch_reads_without_tags() -> None:
    from ledger.store import postgres, sqlite
    from ledger.store.base import StoredEvent

    def _events(rows: Any) -> list[StoredEvent]:
        return [StoredEvent(r["id"], r["type"], bytes(r["data"]), ()) for r in rows]

    def pg_read_tagged(self, tags, after=0):  # noqa: ANN001, ANN202
        tags = list(dict.fromkeys(tags))
        if not tags:
            return []
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_PG_NO_TAGS, [tags, after])
            return _events(curs.fetchall())

    def pg_session_read_tagged(self, tags, after=0):  # noqa: ANN001, ANN202
        self._curs.execute(_PG_NO_TAGS, [list(dict.fromkeys(tags)), after])
        return _events(self._curs.fetchall())

    def sqlite_select(curs, tags, after):  # noqa: ANN001, ANN202
        found = {}
        tags = list(dict.fromkeys(tags))
        for i in range(0, len(tags), sqlite._MAX_VARS):
            chunk = tags[i: i + sqlite._MAX_VARS]
            curs.execute(
                f"SELECT id, type, data FROM {sqlite.MAIN} WHERE id IN (SELECT main_id FROM {sqlite.TAGS} "
                f"WHERE tag IN ({','.join('?' * len(chunk))}) AND main_id > ?) ORDER BY id",
                [*chunk, after],
            )
            for e in _events(curs.fetchall()):
                found[e.position] = e
        return [found[k] for k in sorted(found)]

    def sqlite_read_tagged(self, tags, after=0):  # noqa: ANN001, ANN202
        with self.datastore.transaction(commit=False) as curs:
            return sqlite_select(curs, tags, after)

    postgres.PostgresLogStore.read_tagged = pg_read_tagged
    postgres._Session.read_tagged = pg_session_read_tagged
    sqlite.SQLiteLogStore.read_tagged = sqlite_read_tagged
    sqlite._Session.read_tagged = lambda self, tags, after=0: sqlite_select(self._curs, tags, after)


def patch_switch_interval() -> None:
    import sys

    sys.setswitchinterval(0.0005)


def patch_writer_linger() -> None:
    import queue
    import time

    from ledger.writer import LedgerWriter

    linger = float(os.environ.get("TAGLEDGER_BENCH_LINGER_S", "0.002"))

    def _loop(self):  # noqa: ANN001, ANN202 - LedgerWriter._loop, plus: keep gathering while the queue grows
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + linger
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._run_batch(batch)

    LedgerWriter._loop = _loop


PATCHES = {"reads-without-tags": patch_reads_without_tags, "switch-interval": patch_switch_interval,
           "writer-linger": patch_writer_linger}


def apply(names: list[str] | str | None) -> list[str]:
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    for name in names or []:
        if name in APPLIED:
            continue
        PATCHES[name]()
        APPLIED.append(name)
    return APPLIED


def apply_from_env() -> list[str]:
    return apply(os.environ.get("TAGLEDGER_BENCH_PATCHES", ""))
