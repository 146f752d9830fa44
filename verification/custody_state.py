"""The custody state of every tag, folded from the log, and its digest -- docs/protocol.md section 10.

A tag's **state record** is a JSON object with exactly these members (section 10 says how each event
type sets them):

``tag``, ``status``, ``issued_to``, ``holder``, ``pending_recipient``, ``dispatched_mass_g``, ``mass_g``,
``origin``, ``lot``, ``inputs``, ``parent``, ``outputs``, ``void_reason``, ``events``,
``head`` {``hash``, ``seq``} and ``last_time``.

Its bytes are ``jcs(record)``; the **custody digest** of the ledger is SHA-256 over
``tag + "\\n" + jcs(record) + "\\n"`` for every tag, in ascending order of the tag ids' bytes: the same
bytes as the ledger's custody projection, row by row (``ledger/projection.py``), so an auditor who
replays the log can compare one hash with the ledger's.

:class:`TagState` keeps a state compactly (``__slots__``; the origin, which never changes once set, as
its canonical bytes; the head's hash raw) and writes its record with :meth:`TagState.canonical`.
:func:`apply_event` folds one event that the replay has checked; it does not check rules
(``verification.custody_rules`` does) and expects every tag stream the event joins to exist.
:func:`state_rows`, :func:`custody_digest` and :func:`counts_by_status` take a plain dict of states, or the
replay's :class:`verification.tag_store.TagStates`, which keeps most tags' records on disk
(:meth:`TagState.from_record` reads one back).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from verification.canonical import sorted_compact
from verification.entry_checks import CheckedEntry
from verification.event_data import TAG_EVENT_TYPES

__all__ = [
    "FINISHED",
    "ISSUED",
    "IN_CUSTODY",
    "IN_TRANSIT",
    "MERGED",
    "SPLIT",
    "CONSUMED",
    "VOIDED",
    "STATUSES",
    "TagState",
    "apply_event",
    "counts_by_status",
    "custody_digest",
    "state_rows",
]

ISSUED = "issued"  # issued to an organisation, not yet on a bag
IN_CUSTODY = "in_custody"  # on a bag or a lot, held by `holder`
IN_TRANSIT = "in_transit"  # dispatched by `holder` to `pending_recipient`
MERGED = "merged"  # went into the lot `lot`
SPLIT = "split"  # split into `outputs`
CONSUMED = "consumed"  # consumed at the refiner `holder`
VOIDED = "voided"  # lost, stolen, damaged...
STATUSES = (ISSUED, IN_CUSTODY, IN_TRANSIT, MERGED, SPLIT, CONSUMED, VOIDED)
FINISHED = frozenset({MERGED, SPLIT, CONSUMED, VOIDED})


# jcs of an origin object (`sorted_compact`): its member names, and those of `gps` and `price_paid` (checked by
# verification.event_data to be exactly lat/lon and currency/minor_per_kg), are ASCII, so sorting by code point
# is the JCS order, and strings are escaped by the same function as verification.canonical.jcs: the standard
# library's C encoder gives the same bytes, several times faster (tests/unit/test_replay.py compares them).


class TagState:
    """The custody state of one tag (see the module docstring); ``origin`` is held as ``jcs(origin)``."""

    __slots__ = ("tag", "status", "issued_to", "holder", "pending_recipient", "dispatched_mass_g", "mass_g",
                 "origin", "lot", "inputs", "parent", "outputs", "void_reason", "events", "head_hash",
                 "head_seq", "last_time")

    def __init__(self, tag: str, issued_to: str, head_hash: bytes, head_seq: int, last_time: str) -> None:
        self.tag = tag
        self.status = ISSUED
        self.issued_to = issued_to
        self.holder: str | None = None
        self.pending_recipient: str | None = None
        self.dispatched_mass_g: int | None = None
        self.mass_g: int | None = None
        self.origin: bytes | None = None
        self.lot: str | None = None
        self.inputs: tuple[str, ...] = ()
        self.parent: str | None = None
        self.outputs: tuple[str, ...] = ()
        self.void_reason: str | None = None
        self.events = 1
        self.head_hash = head_hash
        self.head_seq = head_seq
        self.last_time = last_time  # normalised: YYYY-MM-DDTHH:MM:SS.ffffffZ

    def canonical(self) -> bytes:
        """``jcs`` of the state record: members in JCS order (by UTF-16 code units, here ASCII order).

        Every string of a record except inside ``origin`` is a tag id, an organisation id, a status, a void
        reason, a lowercase hex hash or a normalised time: ASCII needing no escape in JSON. So the record is
        one ASCII text on each side of the origin's bytes, written by one ``%`` format and one encode each
        rather than a call per member (it is written for every tag that leaves the replay's cache and for
        every tag of the digest; ``tests/unit/test_replay.py`` compares it with the former writer).
        """
        inputs, outputs, holder, issued_to, last_time, lot = (self.inputs, self.outputs, self.holder, self.issued_to,
                                                              self.last_time, self.lot)
        parent, pending, status, tag, void = (self.parent, self.pending_recipient, self.status, self.tag,
                                              self.void_reason)
        before = ('{"dispatched_mass_g":%s,"events":%s,"head":{"hash":"%s","seq":%s},"holder":%s,"inputs":%s,'
                  '"issued_to":%s,"last_time":%s,"lot":%s,"mass_g":%s,"origin":') % (
            "null" if self.dispatched_mass_g is None else self.dispatched_mass_g,
            "null" if self.events is None else self.events,
            self.head_hash.hex(),
            "null" if self.head_seq is None else self.head_seq,
            "null" if holder is None else '"' + holder + '"',
            '["' + '","'.join(inputs) + '"]' if inputs else "[]",
            "null" if issued_to is None else '"' + issued_to + '"',
            "null" if last_time is None else '"' + last_time + '"',
            "null" if lot is None else '"' + lot + '"',
            "null" if self.mass_g is None else self.mass_g,
        )
        after = ',"outputs":%s,"parent":%s,"pending_recipient":%s,"status":%s,"tag":%s,"void_reason":%s}' % (
            '["' + '","'.join(outputs) + '"]' if outputs else "[]",
            "null" if parent is None else '"' + parent + '"',
            "null" if pending is None else '"' + pending + '"',
            "null" if status is None else '"' + status + '"',
            "null" if tag is None else '"' + tag + '"',
            "null" if void is None else '"' + void + '"',
        )
        return b"".join((before.encode("ascii"), b"null" if self.origin is None else self.origin,
                         after.encode("ascii")))

    @classmethod
    def from_record(cls, record: bytes) -> TagState:
        """The state whose :meth:`canonical` bytes are ``record`` (a tag's archived final state); raises
        ``ValueError`` if ``record`` is not exactly such bytes."""
        doc = json.loads(record)
        head = doc["head"]
        origin = doc["origin"]
        state = cls.__new__(cls)
        put = object.__setattr__  # also for a read-only subclass
        for name in ("tag", "status", "issued_to", "holder", "pending_recipient", "dispatched_mass_g", "mass_g",
                     "lot", "parent", "void_reason", "events", "last_time"):
            put(state, name, doc[name])
        put(state, "origin", None if origin is None else sorted_compact(origin).encode("utf-8"))
        put(state, "inputs", tuple(doc["inputs"]))
        put(state, "outputs", tuple(doc["outputs"]))
        put(state, "head_hash", bytes.fromhex(head["hash"]))
        put(state, "head_seq", head["seq"])
        if state.canonical() != record:
            raise ValueError("not the canonical bytes of a tag's state record")
        return state

    def to_json(self) -> dict[str, Any]:
        """The state record as a JSON object (``jcs(state.to_json()) == state.canonical()``)."""
        return {
            "tag": self.tag,
            "status": self.status,
            "issued_to": self.issued_to,
            "holder": self.holder,
            "pending_recipient": self.pending_recipient,
            "dispatched_mass_g": self.dispatched_mass_g,
            "mass_g": self.mass_g,
            "origin": None if self.origin is None else json.loads(self.origin),
            "lot": self.lot,
            "inputs": list(self.inputs),
            "parent": self.parent,
            "outputs": list(self.outputs),
            "void_reason": self.void_reason,
            "events": self.events,
            "head": {"hash": self.head_hash.hex(), "seq": self.head_seq},
            "last_time": self.last_time,
        }

    def __repr__(self) -> str:
        return f"TagState({self.tag!r}, {self.status!r}, holder={self.holder!r}, events={self.events})"


def apply_event(tags: dict[str, TagState], entry: CheckedEntry, seq: int) -> None:
    """Fold the checked event ``entry`` (log entry ``seq``) into ``tags`` (tag id -> state), in place.

    Looks every state up before changing any, so a ``KeyError`` (a tag stream that does not exist, which
    the replay's stream checks exclude) leaves ``tags`` unchanged.
    """
    kind = entry.type
    if kind == "tags_issued":
        org = sys.intern(entry.stream[4:])
        for tag in entry.issued or ():
            tags[tag] = TagState(tag, org, entry.hash, seq, entry.time)
        return
    if kind not in TAG_EVENT_TYPES:
        return
    data = entry.data
    lot_id = entry.stream[4:]
    primary = tags[lot_id]
    linked = [tags[name[4:]] for name, _ in entry.links]
    actor = sys.intern(entry.actor)
    if kind == "lot_split":
        split_masses = {output["tag"]: output["mass_g"] for output in data["outputs"]}
        output_masses = [split_masses[state.tag] for state in linked]

    for state in (primary, *linked):
        state.head_hash = entry.hash
        state.head_seq = seq
        state.last_time = entry.time
        state.events += 1

    if kind == "tag_attached":
        primary.status = IN_CUSTODY
        primary.holder = actor
        primary.mass_g = data["mass_g"]
        primary.origin = sorted_compact({
            "site": data["site"],
            "mineral": data["mineral"],
            "ore": data.get("ore"),
            "pit": data["pit"],
            "gps": data.get("gps"),
            "attached_at": entry.time_text,
            "price_paid": data.get("price_paid"),
        }).encode("utf-8")
    elif kind == "custody_dispatched":
        primary.status = IN_TRANSIT
        primary.pending_recipient = sys.intern(data["to"])
        primary.dispatched_mass_g = data.get("mass_g")
    elif kind == "custody_received":
        primary.status = IN_CUSTODY
        primary.holder = actor
        primary.pending_recipient = None
        primary.dispatched_mass_g = None
        primary.mass_g = data["mass_g"]
    elif kind == "lot_formed":
        for state in linked:  # the inputs (the rules make the links exactly the inputs' streams)
            state.status = MERGED
            state.lot = lot_id
        primary.status = IN_CUSTODY
        primary.holder = actor
        primary.mass_g = data["mass_g"]
        primary.inputs = tuple(data["inputs"])
    elif kind == "lot_split":
        for state, mass in zip(linked, output_masses):  # the outputs
            state.status = IN_CUSTODY
            state.holder = actor
            state.mass_g = mass
            state.parent = lot_id
        primary.status = SPLIT
        primary.outputs = tuple(output["tag"] for output in data["outputs"])
    elif kind == "tag_consumed":
        primary.status = CONSUMED
        if data.get("mass_g") is not None:
            primary.mass_g = data["mass_g"]
    elif kind == "tag_voided":
        primary.status = VOIDED
        primary.void_reason = data["reason"]
        primary.pending_recipient = None  # but not dispatched_mass_g: the ledger keeps it (section 10)


def state_rows(tags: Mapping[str, TagState]) -> Iterable[tuple[str, bytes]]:
    """(tag, canonical state) for every tag, in ascending order of the tag ids' bytes.

    ``tags`` may be a :class:`verification.tag_store.TagStates` (most tags on disk): its own ``rows``
    gives the same rows without reading every state back.
    """
    rows = getattr(tags, "rows", None)
    if rows is not None:
        yield from rows()
        return
    # tag ids are ASCII, so the order of the strings is the order of their bytes
    for tag in sorted(tags):
        yield tag, tags[tag].canonical()


def custody_digest(tags: Mapping[str, TagState]) -> str:
    """SHA-256 (hex) over ``tag + "\\n" + jcs(state) + "\\n"`` for every tag in order (section 10)."""
    digest = hashlib.sha256()
    for tag, state in state_rows(tags):
        digest.update(tag.encode("ascii") + b"\n" + state + b"\n")
    return digest.hexdigest()


def counts_by_status(tags: Mapping[str, TagState]) -> dict[str, int]:
    """How many tags are in each status (only the statuses that occur), sorted by status."""
    counts = getattr(tags, "counts", None)
    if counts is not None:  # a TagStates: counted as states come and go
        return counts()
    return dict(sorted(Counter(state.status for state in tags.values()).items()))
