"""The flags projection: fraud flags derived from the log (rules in `domain.flags`), and the refused attempts.

Like the custody projection (`ledger.projection`), it follows the log, writes its rows and its position in one
transaction, excludes its other processors across processes, and can be dropped and rebuilt to identical
rows. Its tables (disposable; on PostgreSQL created by migration 005):

- `tagledger_flags_tags`: per tag, `jcs(ChainState)`: the chain's starting mass, last positions (custody events
  and signed scans), the entry that ended the tag, own flags;
- `tagledger_flags_site_months`: per site and calendar month, the tagged mass and the attachment that took it
  over the site's capacity;
- `tagledger_flags_sites`: the capacity each site declared when it was registered;
- `tagledger_flags_key_uses`: which key signed each entry that joined a tag stream, so that a backdated
  revocation finds the entries it compromises without reading the whole log.

`tagledger_rejected_attempts` (append-only, migration 005) is not part of the projection: the writer keeps
there the signed envelopes refused because their tag's life was over (`domain.flags.attempt_tag`); the read
side turns them into `tag.reuse` flags (`domain.flags.attempts_flag`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from domain import flags as rules
from domain.flags import Attempt, ChainState, Evidence, Flag, KeyUse, MonthTotal
from ledger.entries import Entry, read_entry
from ledger.projection import TrackedProjection, insert_rows
from ledger.row_json import row_json
from ledger.store.base import LogStore, StoredEvent

NAME = "flags"
PROCESSOR_LOCK = 0x7461676C666C6167  # PostgreSQL advisory lock key of the flags projection's processors
TAGS = "tagledger_flags_tags"
MONTHS = "tagledger_flags_site_months"
SITES = "tagledger_flags_sites"
USES = "tagledger_flags_key_uses"
ATTEMPTS = "tagledger_rejected_attempts"
EVENTS = "tagledger_events_tt_main"
EVENTS_TAGS = "tagledger_events_tt_tag"
CHUNK = 500


class FlagsProjection(TrackedProjection):
    name = NAME
    lock_key = PROCESSOR_LOCK
    tables = (TAGS, MONTHS, SITES, USES)

    def __init__(self, store: LogStore):
        self._tolerance: int | None = None
        self.roles: dict[str, str | None] = {}  # org -> its registered role (never changes once in the log)
        super().__init__(store)

    def _create_statements(self) -> list[str]:
        blob = "BLOB" if self.backend == "sqlite" else "bytea"
        integer = "INTEGER" if self.backend == "sqlite" else "bigint"
        statements = [
            f"CREATE TABLE IF NOT EXISTS {TAGS} (tag TEXT PRIMARY KEY, codes TEXT NOT NULL, state {blob} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {MONTHS} (site TEXT NOT NULL, month TEXT NOT NULL, "
            f"total_g {integer} NOT NULL, crossed {blob}, PRIMARY KEY (site, month))",
            f"CREATE TABLE IF NOT EXISTS {SITES} (site TEXT PRIMARY KEY, capacity_kg_per_month {integer} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {USES} (seq {integer} PRIMARY KEY, kid TEXT NOT NULL, time TEXT NOT NULL)",
        ]
        if self.backend == "sqlite":  # on PostgreSQL migration 005 creates it (the service's role owns no table)
            statements.append(f"CREATE INDEX IF NOT EXISTS {USES}_kid_time ON {USES} (kid, time)")
        return statements

    # -- processing -----------------------------------------------------------------------------

    def tolerance(self) -> int:
        """The ledger's mass tolerance (ppm), from its genesis entry."""
        if self._tolerance is None:
            genesis = read_entry(self.store.read_range(0, 1)[0].data)
            self._tolerance = int(genesis.body["data"]["mass_tolerance_ppm"])
        return self._tolerance

    def _fold(self, curs: Any, todo: list[tuple[StoredEvent, Entry]]) -> _Working:
        working = _Working(self, curs)
        cached, cached_at, self._cached, self._cached_at = self._cached, self._cached_at, {}, -1  # folded in place
        if cached_at == todo[0][0].position - 1:  # `_after` hands on only entries that continue the position
            working.cache = cached
        working.position = todo[-1][0].position
        working.preload_chains({t for _, entry in todo if entry.body["type"] != "tags_issued"
                                for t in rules.tags_of(entry.body)})
        tolerance = self.tolerance()
        for _, entry in todo:
            rules.apply(working, entry.body, entry.hash, entry.seq, tolerance, entry.received)
        return working

    def _write_rows(self, curs: Any, working: _Working) -> None:
        working.write(curs)
        self._pending = (working.written, working.position)  # trusted once `_process` returns (committed)

    # -- reading --------------------------------------------------------------------------------

    def flags_of(self, tags: Iterable[str]) -> dict[str, list[Flag]]:
        """The flags raised on each of `tags` itself (tags with none are absent)."""
        wanted = list(tags)
        if not wanted:
            return {}
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            return flags_of_rows(_select_in(curs, self.backend, f"SELECT tag, state FROM {TAGS} WHERE codes <> '' AND",
                                            "tag", wanted))

    def ends_of(self, tags: Iterable[str]) -> dict[str, Evidence]:
        """The entry that ended each of `tags` (consumed, voided, merged, split); tags still alive are absent.
        The evidence a `tag.reuse` flag of refused attempts starts with (`domain.flags.attempts_flag`): the
        tag's head is not it once a `tag_scanned` followed the end."""
        found: dict[str, Evidence] = {}
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            for row in _select_in(curs, self.backend, f"SELECT tag, state FROM {TAGS} WHERE", "tag", list(tags)):
                end = ChainState.from_json(json.loads(bytes(row["state"]))).end
                if end is not None:
                    found[row["tag"]] = end
        return found

    def chain(self, tag: str) -> ChainState | None:
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            rows = _select_in(curs, self.backend, f"SELECT state FROM {TAGS} WHERE", "tag", [tag])
        return ChainState.from_json(json.loads(bytes(rows[0]["state"]))) if rows else None

    def flagged(self, *, code: str | None = None, limit: int = 100, after: str = "") -> list[dict[str, Any]]:
        """Tags with flags of their own (not inherited), in tag order: `tag`, `codes`."""
        ph = self._ph
        clause, params = f"tag > {ph} AND codes <> ''", [after]
        if code:
            clause += f" AND (',' || codes || ',') LIKE {ph}"
            params.append(f"%,{code},%")
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT tag, codes FROM {TAGS} WHERE {clause} ORDER BY tag LIMIT {int(limit)}", params)
            return [{"tag": r["tag"], "codes": r["codes"].split(",")} for r in curs.fetchall()]

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the projection's tables, in key order (to compare two builds)."""
        order = 'COLLATE "C"' if self.backend == "postgres" else ""
        queries = {
            TAGS: f"SELECT tag, codes, state FROM {TAGS} ORDER BY tag {order}",
            MONTHS: f"SELECT site, month, total_g, crossed FROM {MONTHS} ORDER BY site {order}, month {order}",
            SITES: f"SELECT site, capacity_kg_per_month FROM {SITES} ORDER BY site {order}",
            USES: f"SELECT seq, kid, time FROM {USES} ORDER BY seq",
        }
        found: dict[str, list[tuple[Any, ...]]] = {}
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            for table, query in queries.items():
                curs.execute(query)
                found[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in
                                      (r.values() if isinstance(r, dict) else tuple(r))) for r in curs.fetchall()]
        return found

    def digest(self) -> str:
        h = hashlib.sha256()
        for table, rows in self.rows().items():
            for row in rows:
                h.update(table.encode() + b"\n" + repr(row).encode() + b"\n")
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        with self.store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute(f"SELECT codes FROM {TAGS} WHERE codes <> ''")
            by_code: dict[str, int] = {}
            flagged = 0
            for row in curs.fetchall():
                flagged += 1
                for code in row["codes"].split(","):
                    by_code[code] = by_code.get(code, 0) + 1
        return {"position": self.position(), "flagged_tags": flagged, "by_code": dict(sorted(by_code.items()))}


# --- the refused attempts ---------------------------------------------------------------------------------


def flags_of_rows(rows: Iterable[dict[str, Any]]) -> dict[str, list[Flag]]:
    """`FlagsProjection.flags_of` from rows (tag, state) of its table, read elsewhere (`LogStore.read_view`)."""
    return {row["tag"]: ChainState.from_json(json.loads(bytes(row["state"]))).flags for row in rows}


def attempts_of_rows(rows: Iterable[dict[str, Any]]) -> list[Attempt]:
    """`rejected_attempts` from rows of its table read elsewhere (`LogStore.read_view`), in the order refused."""
    return [_attempt(r) for r in sorted(rows, key=lambda r: r["id"])]


def rejected_attempts(store: LogStore, tags: Sequence[str]) -> list[Attempt]:
    """The refused attempts kept for any of `tags`, in the order they were refused."""
    return attempts_of_rows(rejected_attempts_rows(store, tags))


def rejected_attempts_rows(store: LogStore, tags: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of the refused attempts kept for any of `tags` (`attempts_of_rows` makes them attempts)."""
    if not tags:
        return []
    with store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        return _select_in(curs, store.backend, f"SELECT id, tag, rule, received, log_size, hash, envelope FROM "
                                               f"{ATTEMPTS} WHERE", "tag", list(tags))


def rejected_attempts_page(store: LogStore, after: int, limit: int) -> list[tuple[int, Attempt]]:
    """Up to `limit` refused attempts kept after the one numbered `after`, with their numbers (the table's
    increasing ids: in the order refused, possibly with gaps)."""
    ph = "?" if store.backend == "sqlite" else "%s"
    with store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        curs.execute(f"SELECT id, tag, rule, received, log_size, hash, envelope FROM {ATTEMPTS} WHERE id > {ph} "
                     f"ORDER BY id LIMIT {int(limit)}", [after])
        rows = [dict(r) if not isinstance(r, dict) else r for r in curs.fetchall()]
    return [(int(r["id"]), _attempt(r)) for r in rows]


def _attempt(row: dict[str, Any]) -> Attempt:
    envelope = json.loads(bytes(row["envelope"]))
    return Attempt(row["tag"], row["rule"], row["received"], int(row["log_size"]), row["hash"], envelope["body"],
                   envelope["sig"])


# --- the working set of one page --------------------------------------------------------------------------


def _select_in(curs: Any, backend: str, prefix: str, column: str, values: list[Any]) -> list[dict[str, Any]]:
    """`prefix` + ` column IN (values)`, in chunks; `prefix` ends with WHERE or AND."""
    found: list[dict[str, Any]] = []
    for i in range(0, len(values), CHUNK):
        chunk = values[i : i + CHUNK]
        if backend == "sqlite":
            curs.execute(f"{prefix} {column} IN ({','.join('?' * len(chunk))})", chunk)
        else:
            curs.execute(f"{prefix} {column} = ANY(%s)", [chunk])
        found.extend(dict(r) if not isinstance(r, dict) else r for r in curs.fetchall())
    return found


class _Working(rules.FlagsStore):
    """The `domain.flags.FlagsStore` of one page: rows read with the page's cursor, changes kept in memory
    until `write`."""

    def __init__(self, projection: FlagsProjection, curs: Any):
        self.backend = projection.backend
        self.ph = projection._ph  # noqa: SLF001
        self.curs = curs
        self.chains: dict[str, ChainState] = {}
        self.stored: dict[str, bytes] = {}
        self.capacities: dict[str, int | None] = {}
        self.new_capacities: dict[str, int] = {}
        self.months: dict[tuple[str, str], MonthTotal] = {}
        self.stored_months: dict[tuple[str, str], tuple[int, bytes | None]] = {}
        self.uses: list[tuple[int, str, str]] = []
        self.roles = projection.roles
        self.position = -1
        self.cache: dict[str, tuple[ChainState, bytes | None]] = {}
        """Chains as the rows hold them (state, bytes or None for no row), to take instead of reading a row."""
        self.written: dict[str, tuple[ChainState, bytes | None]] = {}
        """After `write`: the chains of `cache` not taken and those in hand, with the bytes of their rows."""

    # chains
    def preload_chains(self, tags: Iterable[str]) -> None:
        wanted = [t for t in tags if t not in self.chains]
        if self.cache:
            unknown = []
            for tag in wanted:
                hit = self.cache.pop(tag, None)
                if hit is None:
                    unknown.append(tag)
                    continue
                self.chains[tag] = hit[0]
                if hit[1] is not None:
                    self.stored[tag] = hit[1]
            wanted = unknown
        for row in _select_in(self.curs, self.backend, f"SELECT tag, state FROM {TAGS} WHERE", "tag", wanted):
            raw = bytes(row["state"])
            self.stored[row["tag"]] = raw
            self.chains[row["tag"]] = ChainState.from_json(json.loads(raw))
        for tag in wanted:
            self.chains.setdefault(tag, ChainState(tag))

    def chain(self, tag: str) -> ChainState:
        if tag not in self.chains:
            self.preload_chains([tag])
        return self.chains[tag]

    # sites
    def capacity(self, site: str) -> int | None:
        if site not in self.capacities:
            rows = _select_in(self.curs, self.backend, f"SELECT capacity_kg_per_month AS c FROM {SITES} WHERE",
                              "site", [site])
            self.capacities[site] = int(rows[0]["c"]) if rows else None
        return self.capacities[site]

    def set_capacity(self, site: str, kg_per_month: int) -> None:
        self.capacities[site] = kg_per_month
        self.new_capacities[site] = kg_per_month

    def month(self, site: str, month: str) -> MonthTotal:
        key = (site, month)
        if key not in self.months:
            self.curs.execute(f"SELECT total_g, crossed FROM {MONTHS} WHERE site = {self.ph} AND month = {self.ph}",
                              [site, month])
            row = self.curs.fetchone()
            total = MonthTotal(site, month)
            if row is not None:
                crossed = None if row["crossed"] is None else bytes(row["crossed"])
                total.total_g = int(row["total_g"])
                if crossed is not None:
                    doc = json.loads(crossed)
                    total.crossed, total.crossed_tag = Evidence.from_json(doc["evidence"]), doc["tag"]
                self.stored_months[key] = (total.total_g, crossed)
            self.months[key] = total
        return self.months[key]

    # keys
    def record_use(self, seq: int, kid: str, time: str) -> None:
        self.uses.append((seq, kid, time))

    def uses_since(self, kid: str, time: str) -> list[KeyUse]:
        self.curs.execute(f"SELECT seq FROM {USES} WHERE kid = {self.ph} AND time >= {self.ph}", [kid, time])
        seqs = {int(r["seq"]) for r in self.curs.fetchall()}
        seqs.update(seq for seq, k, t in self.uses if k == kid and t >= time)
        found = []
        for row in _select_in(self.curs, self.backend, f"SELECT id, data FROM {EVENTS} WHERE", "id",
                              sorted(s + 1 for s in seqs)):
            entry = read_entry(bytes(row["data"]))
            found.append(KeyUse(entry.seq, entry.hash, entry.body))
        found.sort(key=lambda u: u.seq)
        self.preload_chains({t for use in found for t in rules.tags_of(use.body)})
        return found

    # organisations
    def role_of(self, org: str) -> str | None:
        """The role `org` was registered with: the data of the first event of its `org:` stream, or `operator`
        for the organisation the genesis names."""
        if org not in self.roles:
            self.curs.execute(f"SELECT m.data FROM {EVENTS_TAGS} t JOIN {EVENTS} m ON m.id = t.main_id "
                              f"WHERE t.tag = {self.ph} ORDER BY t.main_id LIMIT 1", [f"org:{org}"])
            row = self.curs.fetchone()
            if row is not None:
                self.roles[org] = read_entry(bytes(row["data"])).body["data"]["role"]
            else:
                self.curs.execute(f"SELECT data FROM {EVENTS} WHERE id = 1")
                genesis = self.curs.fetchone()
                operator = read_entry(bytes(genesis["data"])).body["data"]["operator"]["org"] if genesis else None
                self.roles[org] = "operator" if org == operator else None
        return self.roles[org]

    # writing
    def write(self, curs: Any) -> None:
        rows = []
        written = self.written = self.cache
        self.cache = {}
        for tag, chain in sorted(self.chains.items()):
            if chain.empty and tag not in self.stored:
                written[tag] = (chain, None)
                continue
            raw = row_json(chain.to_json())
            written[tag] = (chain, raw)
            if raw != self.stored.get(tag):
                rows.append((tag, ",".join(sorted({f.code for f in chain.flags})), raw))
        insert_rows(curs, self.backend, TAGS, ("tag", "codes", "state"), ("text", "text", "bytea"), rows,
                    conflict="tag")
        insert_rows(curs, self.backend, SITES, ("site", "capacity_kg_per_month"), ("text", "bigint"),
                    sorted(self.new_capacities.items()), conflict="site")
        months = []
        for key, total in sorted(self.months.items()):
            crossed = None if total.crossed is None else row_json({"evidence": total.crossed.to_json(),
                                                                   "tag": total.crossed_tag})
            if self.stored_months.get(key) != (total.total_g, crossed):
                months.append((total.site, total.month, total.total_g, crossed))
        insert_rows(curs, self.backend, MONTHS, ("site", "month", "total_g", "crossed"),
                    ("text", "text", "bigint", "bytea"), months, conflict="site, month")
        insert_rows(curs, self.backend, USES, ("seq", "kid", "time"), ("bigint", "text", "text"), self.uses)

