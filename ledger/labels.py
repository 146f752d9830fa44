"""Signed QR labels on the ledger's side (docs/protocol.md section 13): checking an upload, the append-only
table `tagledger_labels`, reading labels back.

The ledger never signs a label: the operator signs each tag id with its own key, client-side
(`ledger.client.labels`), and uploads the signatures. The ledger checks every one — the tag was issued, the key is
a key of the operator organisation and valid now, the signature verifies — and stores all of them or none.
A label, once stored, never changes: the table refuses UPDATE and DELETE (migrations `004_labels.sql`), and an
upload of another signature for an already-labelled tag is a conflict.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from verification.encoding import EncodingError, decode_signature, format_time, is_key_id, is_tag_id
from verification.label import LabelError, LabelPayload, verify_label

if TYPE_CHECKING:
    from ledger.service import Ledger
    from ledger.store.base import LogStore

TABLE = "tagledger_labels"
TAG_INDEX = "tagledger_events_tt_tag"  # the DCB tag index: a tag was issued iff its stream `tag:<id>` is in it
MAX_LABELS_PER_UPLOAD = 10_000
_PG_LABELS_LOCK = 0x7461676C6162  # advisory lock held by the one transaction that stores labels
_SQLITE_CHUNK = 900  # under SQLite's bound-parameter limit

__all__ = [
    "MAX_LABELS_PER_UPLOAD",
    "TABLE",
    "LabelProblem",
    "LabelUpload",
    "LabelsRejected",
    "StoredLabel",
    "issued",
    "read_labels",
    "store_labels",
]


@dataclass(frozen=True)
class StoredLabel:
    tag: str
    kid: str
    sig: str
    stored_at: str

    @property
    def label(self) -> str:
        """The URL's `s` parameter: `kid.sig`."""
        return f"{self.kid}.{self.sig}"

    def payload(self, base_url: str) -> LabelPayload:
        return LabelPayload(base_url.rstrip("/"), self.tag, self.kid, self.sig)


@dataclass(frozen=True)
class LabelProblem:
    """Why entry `index` of an upload was refused: `rule`, and `field` a JSON Pointer into the request body."""

    index: int
    field: str
    rule: str
    detail: str

    @property
    def conflict(self) -> bool:
        return self.rule == "label.conflict"

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "rule": self.rule, "detail": self.detail}


class LabelsRejected(Exception):
    """An upload with at least one refused entry: nothing of it was stored.

    `problems` lists every refused entry, by index; `status` is 409 when every problem is a conflict with a
    stored label, else 422.
    """

    def __init__(self, problems: list[LabelProblem], total: int):
        super().__init__(problems[0].detail)
        self.problems = problems
        self.total = total

    @property
    def status(self) -> int:
        return 409 if all(p.conflict for p in self.problems) else 422

    @property
    def first(self) -> LabelProblem:
        return self.problems[0]


@dataclass(frozen=True)
class LabelUpload:
    labels: int
    stored: int
    """Labels stored by this upload."""
    unchanged: int
    """Labels that were stored already, identical (re-uploading is idempotent)."""

    def to_json(self) -> dict[str, int]:
        return {"labels": self.labels, "stored": self.stored, "unchanged": self.unchanged}


# --- checking an upload ----------------------------------------------------------------------------


def _entry(index: int, item: Any) -> tuple[LabelPayload | None, LabelProblem | None]:
    at = f"/labels/{index}"
    if not isinstance(item, dict) or set(item) != {"tag", "kid", "sig"}:
        return None, LabelProblem(index, at, "label.malformed", f"label {index} is not an object with exactly "
                                                                  "the members tag, kid and sig")
    tag, kid, sig = item["tag"], item["kid"], item["sig"]
    if not is_tag_id(tag):
        return None, LabelProblem(index, at + "/tag", "label.malformed", f"label {index}: {tag!r} is not a tag id")
    if not is_key_id(kid):
        return None, LabelProblem(index, at + "/kid", "label.malformed",
                                  f"label {index}: kid is not 16 lowercase hex characters")
    try:
        decode_signature(sig)
    except EncodingError as error:
        return None, LabelProblem(index, at + "/sig", "label.malformed",
                                  f"label {index}: sig is not an Ed25519 signature in base64url ({error})")
    return LabelPayload("", tag, kid, sig), None


def check_labels(ledger: Ledger, items: Sequence[Any], *, now: datetime | None = None
                 ) -> tuple[list[LabelPayload], list[LabelProblem]]:
    """Every entry checked, in order, without the store's labels: (the payloads, the problems)."""
    registry = ledger.registry()
    params = registry.ledger
    if params is None:
        raise LookupError("this ledger has no genesis entry yet")
    origin = params.log_key_name
    operator = registry.orgs[params.operator]
    when = now or datetime.now(timezone.utc)
    keys = {kid: registry.keys[kid].public_key_raw for kid in operator.kids}
    payloads: list[LabelPayload] = []
    problems: list[LabelProblem] = []
    for index, item in enumerate(items):
        payload, problem = _entry(index, item)
        if payload is not None:
            payloads.append(payload)
            problem = _check_key_and_signature(index, payload, registry, keys, origin, when)
        if problem is not None:
            problems.append(problem)
    known = issued(ledger.store, [p.tag_id for p in payloads])
    first_label: dict[str, tuple[int, str]] = {}
    flagged = {p.index for p in problems}
    for index, item in enumerate(items):
        if index in flagged:
            continue
        tag, label = item["tag"], f"{item['kid']}.{item['sig']}"
        if tag not in known:
            problems.append(LabelProblem(index, f"/labels/{index}/tag", "label.tag_not_issued",
                                         f"label {index}: tag {tag} was never issued by this ledger"))
        elif tag in first_label and first_label[tag][1] != label:
            problems.append(LabelProblem(index, f"/labels/{index}/sig", "label.duplicate",
                                         f"label {index}: tag {tag} has another label in this upload "
                                         f"(label {first_label[tag][0]})"))
        else:
            first_label.setdefault(tag, (index, label))
    problems.sort(key=lambda p: p.index)
    return payloads, problems


def _check_key_and_signature(index: int, payload: LabelPayload, registry: Any, keys: dict[str, bytes],
                             origin: str, when: datetime) -> LabelProblem | None:
    at = f"/labels/{index}"
    if payload.kid not in keys:
        owner = registry.keys.get(payload.kid)
        whose = f"a key of {owner.org}, not of the operator" if owner else "not a registered key"
        return LabelProblem(index, at + "/kid", "label.key_unknown",
                            f"label {index}: key {payload.kid} is {whose}: only the operator "
                            f"{registry.ledger.operator} signs labels")
    why = registry.keys[payload.kid].problem_at(when)
    if why is not None:
        return LabelProblem(index, at + "/kid", "label.key_revoked" if why[0] == "key.revoked" else
                            "label.key_not_yet_valid", f"label {index}: {why[1]}")
    try:
        verify_label(payload, origin, keys)
    except LabelError as error:
        return LabelProblem(index, at + "/sig", "label.signature_invalid", f"label {index}: {error.detail}")
    return None


def store_labels(ledger: Ledger, items: Sequence[Any], *, now: datetime | None = None) -> LabelUpload:
    """Check every entry (`{"tag", "kid", "sig"}`) and store them all, or raise `LabelsRejected` and store none.

    Raises `ValueError` for an empty upload or one of more than `MAX_LABELS_PER_UPLOAD` entries.
    """
    if not 1 <= len(items) <= MAX_LABELS_PER_UPLOAD:
        raise ValueError(f"an upload holds 1 to {MAX_LABELS_PER_UPLOAD} labels")
    when = now or datetime.now(timezone.utc)
    payloads, problems = check_labels(ledger, items, now=when)
    if problems:
        raise LabelsRejected(problems, len(items))
    wanted: dict[str, LabelPayload] = {}
    for p in payloads:
        wanted.setdefault(p.tag_id, p)
    index_of = {}
    for index, p in enumerate(payloads):
        index_of.setdefault(p.tag_id, index)
    store = ledger.store
    with _write(store) as (curs, mark):
        existing = _select(curs, mark, list(wanted))
        conflicts = [
            LabelProblem(index_of[tag], f"/labels/{index_of[tag]}/sig", "label.conflict",
                         f"label {index_of[tag]}: tag {tag} already has another label ({stored.label}, stored "
                         f"{stored.stored_at}); a label never changes")
            for tag, stored in existing.items() if stored.label != wanted[tag].label
        ]
        if conflicts:
            conflicts.sort(key=lambda p: p.index)
            raise LabelsRejected(conflicts, len(items))
        new = [p for tag, p in wanted.items() if tag not in existing]
        stamp = format_time(when)
        curs.executemany(
            f"INSERT INTO {TABLE} (tag, kid, sig, stored_at) VALUES ({mark}, {mark}, {mark}, {mark})",
            [(p.tag_id, p.kid, p.sig, stamp) for p in new],
        )
    return LabelUpload(labels=len(items), stored=len(new), unchanged=len(wanted) - len(new))


# --- the table -------------------------------------------------------------------------------------


@contextmanager
def _write(store: LogStore) -> Iterator[tuple[Any, str]]:
    """A transaction that alone may store labels: SQLite's write lock (BEGIN IMMEDIATE), or an advisory lock on
    PostgreSQL (the service's role may only SELECT and INSERT). Commits on exit, rolls back on an exception."""
    if store.backend == "sqlite":
        with store._locked_transaction() as curs:  # type: ignore[attr-defined]
            yield curs, "?"
    else:
        with store.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
            curs.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_LABELS_LOCK])
            yield curs, "%s"


@contextmanager
def _read(store: LogStore) -> Iterator[tuple[Any, str]]:
    with store.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
        yield curs, "?" if store.backend == "sqlite" else "%s"


def _stamp(value: Any) -> str:
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def _select(curs: Any, mark: str, tags: list[str]) -> dict[str, StoredLabel]:
    found: dict[str, StoredLabel] = {}
    if mark == "%s":
        curs.execute(f"SELECT tag, kid, sig, stored_at FROM {TABLE} WHERE tag = ANY(%s)", [tags])
        rows = curs.fetchall()
    else:
        rows = []
        for i in range(0, len(tags), _SQLITE_CHUNK):
            chunk = tags[i:i + _SQLITE_CHUNK]
            curs.execute(f"SELECT tag, kid, sig, stored_at FROM {TABLE} WHERE tag IN ({','.join('?' * len(chunk))})",
                         chunk)
            rows.extend(curs.fetchall())
    for row in rows:
        found[row["tag"]] = StoredLabel(row["tag"], row["kid"], row["sig"], _stamp(row["stored_at"]))
    return found


def read_labels(store: LogStore, tags: Sequence[str]) -> dict[str, StoredLabel]:
    """The stored labels of `tags` (tags without a label are absent)."""
    wanted = list(dict.fromkeys(tags))
    if not wanted:
        return {}
    with _read(store) as (curs, mark):
        return _select(curs, mark, wanted)


def read_label(store: LogStore, tag: str) -> StoredLabel | None:
    return read_labels(store, [tag]).get(tag)


def issued(store: LogStore, tags: Sequence[str]) -> set[str]:
    """Which of `tags` were issued: those whose stream `tag:<id>` exists (only `tags_issued` creates one)."""
    streams = [f"tag:{t}" for t in dict.fromkeys(tags)]
    if not streams:
        return set()
    found: set[str] = set()
    with _read(store) as (curs, mark):
        if mark == "%s":
            curs.execute(f"SELECT DISTINCT tag FROM {TAG_INDEX} WHERE tag = ANY(%s)", [streams])
            found.update(row["tag"] for row in curs.fetchall())
        else:
            for i in range(0, len(streams), _SQLITE_CHUNK):
                chunk = streams[i:i + _SQLITE_CHUNK]
                curs.execute(f"SELECT DISTINCT tag FROM {TAG_INDEX} WHERE tag IN ({','.join('?' * len(chunk))})",
                             chunk)
                found.update(row["tag"] for row in curs.fetchall())
    return {s.removeprefix("tag:") for s in found}
