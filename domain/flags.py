"""Fraud flags: warnings derived from accepted events, as pure rules (no I/O, no clock).

The admission rules (`domain.rules`) refuse what is certainly wrong. Some fraud patterns are made of events that
are each acceptable: a bag that gains a little at every hand-over, a site that tags more ore than it can mine, a
tag seen in two places too far apart or scanned after its end, an event signed with a key later found to have
been compromised. These are *flags*: the events stay in the log and custody is unchanged, but a tag's verdict
becomes `flagged`, with the reasons and the evidence (which log entries, or which refused attempts).
docs/protocol.md section 9.1 is the spec.

`apply` folds one accepted entry into the flags' state, which the caller keeps (`ledger.flags` stores it in
tables and follows the log); everything it needs beyond the entry comes through a `FlagsStore`. The other
functions are the rules themselves, used by `apply`, by the read side (`tag_flags`) and by the writer
(`attempt_tag`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol

from domain.custody import FINISHED, Status, TagState, format_state_time, tag_of
from verification.encoding import parse_time
from verification.envelope import issued_tags

MAX_SPEED_KMH = 150
"""Two positions of one tag (or of one lot chain), from custody events or signed scans, further apart than this
speed allows: `tag.reuse`."""
GPS_ERROR_KM = 1.0
"""Distance allowed for the error of two phones' GPS fixes before the speed rule applies."""
EARTH_RADIUS_KM = 6371.0088
MAX_FIXES = 256
"""At most this many last positions carried by a lot (one per distinct position, the latest kept)."""
MAX_EVIDENCE = 20
"""At most this many evidence items per flag (the first ones)."""
MAX_INHERITED_SOURCES = 10
PPM = 1_000_000
MAX_RECORD_DELAY = timedelta(days=90)
"""An event on a tag received by the ledger more than this long after the time it claims: `time.late_record`.
Records are made late for good reasons (phones offline for days, paper logbooks entered at month end), so the
ledger accepts them; beyond a quarter, a buyer should know that the record was made long after the fact."""
OFFICE_ROLES = frozenset({"authority", "monitor"})
"""Roles whose signed scans count as evidence on any tag: public bodies (customs, mining authorities) and the
programme's accredited field monitors inspect tags by office."""
CUSTODY_EVENT_TYPES = frozenset({"tag_attached", "custody_dispatched", "custody_received", "lot_formed",
                                 "lot_split", "tag_consumed", "tag_voided"})

TAG_REUSE = "tag.reuse"
MASS_GAIN = "mass.gain"
LOT_HEAVIER = "lot.heavier_than_inputs"
SITE_OVER_CAPACITY = "site.over_capacity"
REVOKED_KEY = "custody.revoked_key"
LATE_RECORD = "time.late_record"
CODES = (TAG_REUSE, MASS_GAIN, LOT_HEAVIER, SITE_OVER_CAPACITY, REVOKED_KEY, LATE_RECORD)

REASONS = {
    TAG_REUSE: "tag reuse",
    MASS_GAIN: "mass gained along the chain",
    LOT_HEAVIER: "a lot heavier than what it was made from",
    SITE_OVER_CAPACITY: "site over its declared capacity",
    REVOKED_KEY: "signed with a key revoked before the event",
    LATE_RECORD: "recorded long after the event",
}


# --- the shapes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence: a log entry (`seq`, envelope `hash`), or a refused attempt (`seq` None)."""

    seq: int | None
    hash: str
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "note": self.note}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Evidence:
        return cls(doc["seq"], doc["hash"], doc["note"])


@dataclass
class Flag:
    """`code`, an English `summary`, its `evidence`, and `raised_at`: the log entry whose arrival raised it
    (None for a flag from refused attempts, which are not in the log)."""

    code: str
    summary: str
    evidence: list[Evidence]
    raised_at: int | None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "summary": self.summary, "evidence": [e.to_json() for e in self.evidence],
                "raised_at": self.raised_at}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Flag:
        return cls(doc["code"], doc["summary"], [Evidence.from_json(e) for e in doc["evidence"]], doc["raised_at"])


def add_flag(flags: list[Flag], new: Flag | None) -> bool:
    """Add `new` to a tag's flags: one flag per code, later occurrences add their evidence (first summary kept).
    Returns whether anything changed."""
    if new is None:
        return False
    for flag in flags:
        if flag.code == new.code:
            known = {(e.seq, e.hash) for e in flag.evidence}
            more = [e for e in new.evidence if (e.seq, e.hash) not in known]
            room = MAX_EVIDENCE - len(flag.evidence)
            if not more or room <= 0:
                return False
            flag.evidence.extend(more[:room])
            return True
    flags.append(Flag(new.code, new.summary, list(new.evidence[:MAX_EVIDENCE]), new.raised_at))
    return True


POSITION_TYPES = frozenset({"tag_attached", "custody_dispatched", "custody_received", "tag_scanned"})
"""The events whose `gps` is a position of the tag for the travel rule: the custody events that carry one, and
the signed `tag_scanned` (an organisation saw the physical tag there; anonymous page scans never count)."""


@dataclass(frozen=True)
class Fix:
    """A position of a tag: the `gps` of an attachment, dispatch, receipt or signed scan (`POSITION_TYPES`)."""

    tag: str
    seq: int
    hash: str
    time: str  # normalised: YYYY-MM-DDTHH:MM:SS.ffffffZ (sorts as it reads)
    lat: str
    lon: str
    type: str

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "seq": self.seq, "hash": self.hash, "time": self.time, "lat": self.lat,
                "lon": self.lon, "type": self.type}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fix:
        return cls(doc["tag"], doc["seq"], doc["hash"], doc["time"], doc["lat"], doc["lon"], doc["type"])


@dataclass
class ChainState:
    """What the flags need to remember about one tag.

    `mass`: its current mass; `start`: the starting mass of its chain (the attached mass; for a lot, the sum of
    its inputs' starting masses; for a split output, its share of the lot's, in proportion to its mass), an
    exact fraction; `start_seq`/`start_hash`: the entry that set it; `fixes`: its last position, or, for a lot or
    split output with no position of its own yet, the last positions of the tags it came from; `end`: the entry
    that ended the tag's life (consumed, voided, merged into a lot, split), once there is one; `flags`: the
    flags raised on this tag itself (those of the tags it came from are inherited when it is read); `parties`:
    the organisations with custody standing on the tag (`custody_parties`), sorted."""

    tag: str
    mass: int | None = None
    start: Fraction | None = None
    start_seq: int | None = None
    start_hash: str | None = None
    fixes: list[Fix] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    end: Evidence | None = None
    parties: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return (self.mass is None and self.start is None and not self.fixes and not self.flags
                and self.end is None and not self.parties)

    def to_json(self) -> dict[str, Any]:
        doc = {
            "tag": self.tag,
            "mass": self.mass,
            "start": None if self.start is None else str(self.start),
            "start_seq": self.start_seq,
            "start_hash": self.start_hash,
            "fixes": [f.to_json() for f in self.fixes],
            "flags": [f.to_json() for f in self.flags],
        }
        if self.end is not None:  # absent until the tag ends: the rows of live tags are as they always were
            doc["end"] = self.end.to_json()
        if self.parties:
            doc["parties"] = list(self.parties)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ChainState:
        return cls(
            tag=doc["tag"],
            mass=doc["mass"],
            start=None if doc["start"] is None else Fraction(doc["start"]),
            start_seq=doc["start_seq"],
            start_hash=doc["start_hash"],
            fixes=[Fix.from_json(f) for f in doc["fixes"]],
            flags=[Flag.from_json(f) for f in doc["flags"]],
            end=None if doc.get("end") is None else Evidence.from_json(doc["end"]),
            parties=list(doc.get("parties") or []),
        )


@dataclass
class MonthTotal:
    """The mass a site tagged in one calendar month (UTC, by the attachments' `time`), and the attachment whose
    mass took the total over the site's capacity (None while it is within)."""

    site: str
    month: str  # YYYY-MM
    total_g: int = 0
    crossed: Evidence | None = None
    crossed_tag: str | None = None


@dataclass(frozen=True)
class KeyUse:
    """An accepted entry that joined or created tag streams, signed with some key."""

    seq: int
    hash: str
    body: dict[str, Any]


class FlagsStore(Protocol):
    """What `apply` reads and changes besides the entry (kept in tables by `ledger.flags`)."""

    def chain(self, tag: str) -> ChainState:
        """The tag's state (an empty one if it has none yet); changes to it are kept."""

    def capacity(self, site: str) -> int | None:
        """The site's declared capacity in kg per month, if any."""

    def set_capacity(self, site: str, kg_per_month: int) -> None: ...

    def month(self, site: str, month: str) -> MonthTotal:
        """The site's total for the month; changes to it are kept."""

    def record_use(self, seq: int, kid: str, time: str) -> None:
        """Remember that entry `seq` (joining tag streams) was signed with `kid` at normalised `time`."""

    def uses_since(self, kid: str, time: str) -> list[KeyUse]:
        """The recorded entries signed with `kid` at a normalised time at or after `time`, in log order."""

    def role_of(self, org: str) -> str | None:
        """The role the organisation was registered with (`operator` for the ledger's operator)."""


# --- the rules ----------------------------------------------------------------------------------------------


def normalised_time(text: str) -> str:
    return format_state_time(parse_time(text))


def haversine_km(lat1: str, lon1: str, lat2: str, lon2: str) -> float:
    """Great-circle distance between two GPS positions given as decimal strings (protocol section 2)."""
    p1, p2 = math.radians(float(Decimal(lat1))), math.radians(float(Decimal(lat2)))
    dp = p2 - p1
    dl = math.radians(float(Decimal(lon2)) - float(Decimal(lon1)))
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def too_fast(distance_km: float, seconds: float) -> bool:
    """More than `MAX_SPEED_KMH` between two fixes, once `GPS_ERROR_KM` is allowed for the GPS error."""
    return distance_km - GPS_ERROR_KM > MAX_SPEED_KMH * max(seconds, 0.0) / 3600


def travel_flag(earlier: Fix, later: Fix) -> Flag | None:
    """`tag.reuse` (a): two positions of one tag, or of one lot chain, too far apart for the time between (a
    position: the `gps` of a custody event or of a signed scan, `POSITION_TYPES`)."""
    distance = haversine_km(earlier.lat, earlier.lon, later.lat, later.lon)
    seconds = (parse_time(later.time) - parse_time(earlier.time)).total_seconds()
    if not too_fast(distance, seconds):
        return None
    where = "this tag" if earlier.tag == later.tag else f"{earlier.tag} and then {later.tag} (the same chain)"
    speed = "at the same moment" if seconds <= 0 else (
        f"{_duration(seconds)} apart, {distance * 3600 / seconds:,.0f} km/h")
    summary = (f"Possible cloned tag: {where} recorded {distance:,.0f} km apart, {speed}; nothing carries ore "
               f"faster than {MAX_SPEED_KMH} km/h (entries #{earlier.seq} and #{later.seq}).")
    return Flag(TAG_REUSE, summary, [_fix_evidence(earlier), _fix_evidence(later)], later.seq)


def _fix_evidence(fix: Fix) -> Evidence:
    return Evidence(fix.seq, fix.hash, f"{fix.type} of {fix.tag} at {fix.lat},{fix.lon} on {fix.time}")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:,.1f} h"


def end_evidence(tag: str, body: dict[str, Any], hash_: str, seq: int) -> Evidence:
    """The entry that ended `tag`'s life (`tag_consumed`, `tag_voided`, the `lot_formed` it went into, the
    `lot_split` of the lot), as evidence: what happened, who did it, when."""
    kind, data, actor = body["type"], body["data"], body["actor"]
    when = normalised_time(body["time"])
    if kind == "tag_consumed":
        what = f"consumed at {actor}"
    elif kind == "tag_voided":
        what = f"voided ({data['reason']}) by {actor}"
    elif kind == "lot_formed":
        what = f"merged into lot {tag_of(body['stream'])} by {actor}"
    else:
        what = f"split into {len(data['outputs'])} tags by {actor}"
    return Evidence(seq, hash_, f"{tag} {what} on {when}")


def scanned_after_end_flag(tag: str, end: Evidence, body: dict[str, Any], hash_: str, seq: int) -> Flag:
    """`tag.reuse` (c): a signed `tag_scanned` of a tag whose life is over (consumed, voided, merged, split):
    someone holds a tag that should be in a refiner's bin, in a lot's place or reported lost; the material it
    is on now may not be what the ledger says."""
    data = body["data"]
    seen = f"scanned by {body['actor']}"
    if data.get("location"):
        seen += f" at {data['location']}"
    if data.get("purpose"):
        seen += f" ({data['purpose']})"
    when = normalised_time(body["time"])
    gps = data["gps"]
    summary = (f"Tag {tag} was {seen} on {when} (entry #{seq}), after its life was over: {end.note} "
               f"(entry #{end.seq}). A tag seen after its end may have been reused on other material.")
    return Flag(TAG_REUSE, summary, [end, Evidence(seq, hash_, f"{seen} at {gps['lat']},{gps['lon']} on {when}, "
                                                               f"after the tag's end (entry #{end.seq})")], seq)


def merge_fixes(lists: Iterable[Sequence[Fix]]) -> list[Fix]:
    """The last positions a lot inherits from the tags it is made of: one per distinct position (the latest,
    which is the strictest for the speed rule), at most `MAX_FIXES` (the latest), in time order."""
    latest: dict[tuple[str, str], Fix] = {}
    for fixes in lists:
        for fix in fixes:
            key = (fix.lat, fix.lon)
            known = latest.get(key)
            if known is None or (fix.time, fix.seq) > (known.time, known.seq):
                latest[key] = fix
    kept = sorted(latest.values(), key=lambda f: (f.time, f.seq))
    return kept[-MAX_FIXES:]


def exceeds(mass: int | Fraction, reference: int | Fraction, tolerance_ppm: int) -> bool:
    """`mass` above `reference` by more than the tolerance (the comparison of protocol section 7, exact)."""
    if type(mass) is int and type(reference) is int:  # the usual case: the same exact comparison, in integers
        return mass * PPM > reference * (PPM + tolerance_ppm)
    return Fraction(mass) * PPM > Fraction(reference) * (PPM + tolerance_ppm)


def mass_gain_flag(chain: ChainState, mass: int, seq: int, hash_: str, what: str,
                   tolerance_ppm: int) -> Flag | None:
    """`mass.gain`: a mass recorded along the chain above the chain's starting mass by more than the tolerance,
    cumulatively (each step was within it, or the ledger would have refused it)."""
    if chain.start is None or chain.start_seq is None or not exceeds(mass, chain.start, tolerance_ppm):
        return None
    gain_ppm = round((Fraction(mass) - chain.start) * PPM / chain.start)
    summary = (f"Mass gained along the chain: {kilograms(mass)} kg at entry #{seq} against a starting mass of "
               f"{kilograms(chain.start)} kg (entry #{chain.start_seq}), {_percent(gain_ppm)} more, beyond the "
               f"{_percent(tolerance_ppm)} tolerance.")
    start_note = f"starting mass of the chain: {kilograms(chain.start)} kg"
    return Flag(MASS_GAIN, summary, [Evidence(chain.start_seq, chain.start_hash or "", start_note),
                                     Evidence(seq, hash_, f"{what}: {kilograms(mass)} kg")], seq)


def lot_heavier_flag(lot: str, mass: int, parts: int, seq: int, hash_: str, *, split: bool = False) -> Flag | None:
    """`lot.heavier_than_inputs`: a lot weighing more than the sum of its inputs (or the outputs of a split more
    than the lot), by any amount, even within the tolerance: the laundering pattern."""
    if mass <= parts:
        return None
    if split:
        summary = (f"The tags split out of lot {lot} weigh {kilograms(mass)} kg, more than the lot's "
                   f"{kilograms(parts)} kg (entry #{seq}).")
        note = f"split: outputs {kilograms(mass)} kg, lot {kilograms(parts)} kg"
    else:
        summary = (f"Lot {lot} was formed at {kilograms(mass)} kg, more than the {kilograms(parts)} kg of the "
                   f"tags it was made from (entry #{seq}): ore may have been added.")
        note = f"lot formed: {kilograms(mass)} kg from inputs of {kilograms(parts)} kg"
    return Flag(LOT_HEAVIER, summary, [Evidence(seq, hash_, note)], seq)


def month_of(time: str) -> str:
    """The calendar month (UTC) of an event time: `YYYY-MM`."""
    return normalised_time(time)[:7]


def add_to_month(total: MonthTotal, mass_g: int, capacity_kg: int, tag: str, seq: int, hash_: str) -> Flag | None:
    """`site.over_capacity`: add an attachment to its site's month; flag it if the total is now above the site's
    declared capacity (the attachment that crossed it, and every later one of that month)."""
    total.total_g += mass_g
    if total.total_g <= capacity_kg * 1000:
        return None
    own = Evidence(seq, hash_, f"{tag} attached at {kilograms(mass_g)} kg; the month's total is then "
                               f"{kilograms(total.total_g)} kg")
    if total.crossed is None:
        total.crossed, total.crossed_tag = own, tag
        evidence = [own]
        which = "this attachment took it over"
    else:
        evidence = [Evidence(total.crossed.seq, total.crossed.hash, f"the attachment that crossed the capacity "
                                                                     f"({total.crossed_tag})"), own]
        which = f"this bag was attached after the total crossed it (entry #{total.crossed.seq})"
    summary = (f"Site {total.site} tagged {kilograms(total.total_g)} kg in {total.month}, more than its declared "
               f"capacity of {capacity_kg:,} kg per month; {which}.")
    return Flag(SITE_OVER_CAPACITY, summary, evidence, seq)


def revoked_key_flag(use: KeyUse, revocation_seq: int, revocation_hash: str, revocation: dict[str, Any]) -> Flag:
    """`custody.revoked_key`: an accepted entry signed with a key that a later `key_revoked` says was revoked
    with effect at or before the entry's time (a backdated revocation: the key was compromised then)."""
    body, data = use.body, revocation["data"]
    effective = data.get("effective") or revocation["time"]
    org = revocation["stream"].removeprefix("org:")
    summary = (f"Entry #{use.seq} ({body['type']} by {body['actor']}, dated {body['time']}) was signed with key "
               f"{data['key']}, which was later revoked with effect from {effective} (entry #{revocation_seq}: "
               f"{data['reason']}): whoever held the compromised key may have signed it.")
    return Flag(REVOKED_KEY, summary, [
        Evidence(use.seq, use.hash, f"{body['type']} by {body['actor']} signed with key {data['key']} at "
                                    f"{body['time']}"),
        Evidence(revocation_seq, revocation_hash, f"key {data['key']} of {org} revoked with effect from "
                                                  f"{effective}: {data['reason']}"),
    ], revocation_seq)


# --- standing: whose word counts as evidence of reuse -------------------------------------------------------


def custody_parties(body: dict[str, Any]) -> list[str]:
    """The organisations an accepted event gives custody standing on every tag whose stream it joins: the actor
    of a custody event (it held the tag, or took or gave it), and the recipient a dispatch names. Scans, risk
    and registry events give none."""
    if body["type"] not in CUSTODY_EVENT_TYPES:
        return []
    parties = [body["actor"]]
    if body["type"] == "custody_dispatched":
        parties.append(body["data"]["to"])
    return parties


def add_parties(parties: list[str], new: Iterable[str]) -> None:
    """Add organisations to a tag's sorted list of parties."""
    parties[:] = sorted(set(parties).union(new))


def standing(actor: str, role: str | None, parties: Sequence[str]) -> str | None:
    """Why `actor` has standing on a tag whose custody parties are `parties`: `"custody"` (it held the tag, or
    a dispatch named it as recipient), `"office"` (an authority or a monitor), or None: an organisation that
    never handled the tag cannot make evidence of its reuse (section 9.1, "Standing")."""
    if actor in parties:
        return "custody"
    if role in OFFICE_ROLES:
        return "office"
    return None


def late_record_flag(tag: str, body: dict[str, Any], hash_: str, seq: int, received: str) -> Flag | None:
    """`time.late_record`: an event on a tag that reached the ledger more than `MAX_RECORD_DELAY` after the time
    it claims. Accepted (late records are legitimate), but a record made months after the fact may have been
    backdated (into another month's site capacity, before an incident, before a key's loss)."""
    claimed, got = parse_time(body["time"]), parse_time(received)
    delay = got - claimed
    if delay <= MAX_RECORD_DELAY:
        return None
    days = delay.days
    summary = (f"Entry #{seq} ({body['type']} by {body['actor']}) on tag {tag} is dated {normalised_time(body['time'])} "
               f"but reached the ledger on {normalised_time(received)}, {days} days later (more than "
               f"{MAX_RECORD_DELAY.days}): it may have been backdated.")
    return Flag(LATE_RECORD, summary, [Evidence(seq, hash_, f"{body['type']} by {body['actor']} dated "
                                                            f"{normalised_time(body['time'])}, received "
                                                            f"{normalised_time(received)} ({days} days later)")], seq)


def tags_of(body: dict[str, Any]) -> list[str]:
    """The tags whose history contains an entry: the tag streams it joins, or those `tags_issued` creates."""
    if body["type"] == "tags_issued":
        return issued_tags(body["data"])
    streams = [body["stream"], *(body.get("links") or {})]
    return [tag_of(s) for s in streams if s.startswith("tag:")]


# --- the fold ---------------------------------------------------------------------------------------------


def apply(store: FlagsStore, body: dict[str, Any], hash_: str, seq: int, tolerance_ppm: int,
          received: str | None = None) -> None:
    """Fold one accepted entry (in log order), which the ledger received at `received`, into the flags' state.
    (`received` None: the late-record rule is not applied.)"""
    kind, data = body["type"], body["data"]
    if kind == "org_registered":
        if data.get("capacity_kg_per_month") is not None:
            store.set_capacity(body["stream"].removeprefix("org:"), data["capacity_kg_per_month"])
        return
    if kind == "key_revoked":
        effective = normalised_time(data.get("effective") or body["time"])
        for use in store.uses_since(data["key"], effective):
            flag = revoked_key_flag(use, seq, hash_, body)
            for tag in tags_of(use.body):
                add_flag(store.chain(tag).flags, flag)
        return
    if kind == "tags_issued":
        store.record_use(seq, body["key"], normalised_time(body["time"]))
        return
    if not body["stream"].startswith("tag:"):
        return
    store.record_use(seq, body["key"], normalised_time(body["time"]))
    tag = tag_of(body["stream"])
    chain = store.chain(tag)
    parties = custody_parties(body)
    if parties:
        for joined in tags_of(body):
            add_parties(store.chain(joined).parties, parties)
    elif kind == "tag_scanned" and standing(body["actor"], store.role_of(body["actor"]), chain.parties) is None:
        return  # a scan by an organisation without standing is in the log, but is nobody's evidence (9.1)
    if received is not None:
        add_flag(chain.flags, late_record_flag(tag, body, hash_, seq, received))
    if kind == "tag_attached":
        chain.mass = data["mass_g"]
        chain.start, chain.start_seq, chain.start_hash = Fraction(data["mass_g"]), seq, hash_
        capacity = store.capacity(data["site"])
        if capacity is not None:
            total = store.month(data["site"], month_of(body["time"]))
            add_flag(chain.flags, add_to_month(total, data["mass_g"], capacity, tag, seq, hash_))
    elif kind == "custody_dispatched":
        if data.get("mass_g") is not None:
            add_flag(chain.flags, mass_gain_flag(chain, data["mass_g"], seq, hash_, "dispatched", tolerance_ppm))
    elif kind == "custody_received":
        chain.mass = data["mass_g"]
        add_flag(chain.flags, mass_gain_flag(chain, data["mass_g"], seq, hash_, "received", tolerance_ppm))
    elif kind == "tag_consumed":
        if data.get("mass_g") is not None:
            chain.mass = data["mass_g"]
            add_flag(chain.flags, mass_gain_flag(chain, data["mass_g"], seq, hash_, "consumed", tolerance_ppm))
        _end(chain, body, hash_, seq)
    elif kind == "tag_voided":
        _end(chain, body, hash_, seq)
    elif kind == "tag_scanned":
        if chain.end is not None:  # seen after its end: before the travel rule, whose evidence then joins it
            add_flag(chain.flags, scanned_after_end_flag(tag, chain.end, body, hash_, seq))
    elif kind == "lot_formed":
        inputs = [store.chain(t) for t in data["inputs"]]
        for i in inputs:
            _end(i, body, hash_, seq)
        parts = sum(i.mass or 0 for i in inputs)
        chain.mass = data["mass_g"]
        chain.start = sum((i.start if i.start is not None else Fraction(i.mass or 0) for i in inputs), Fraction(0))
        chain.start_seq, chain.start_hash = seq, hash_
        chain.fixes = merge_fixes(i.fixes for i in inputs)
        add_flag(chain.flags, lot_heavier_flag(tag, data["mass_g"], parts, seq, hash_))
        if chain.start > 0:
            add_flag(chain.flags, mass_gain_flag(chain, data["mass_g"], seq, hash_, "lot formed", tolerance_ppm))
    elif kind == "lot_split":
        outputs = data["outputs"]
        total = sum(o["mass_g"] for o in outputs)
        start = chain.start if chain.start is not None else Fraction(chain.mass or total)
        for output in outputs:
            child = store.chain(output["tag"])
            child.mass = output["mass_g"]
            child.start = start * output["mass_g"] / total
            child.start_seq, child.start_hash = seq, hash_
            child.fixes = list(chain.fixes)
        if chain.mass is not None:
            add_flag(chain.flags, lot_heavier_flag(tag, total, chain.mass, seq, hash_, split=True))
        if start > 0:
            add_flag(chain.flags, mass_gain_flag(chain, total, seq, hash_, "split into outputs totalling",
                                                 tolerance_ppm))
        _end(chain, body, hash_, seq)
    gps = data.get("gps") if kind in POSITION_TYPES else None
    if gps is not None:
        fix = Fix(tag, seq, hash_, normalised_time(body["time"]), gps["lat"], gps["lon"], kind)
        for earlier in chain.fixes:
            add_flag(chain.flags, travel_flag(earlier, fix))
        chain.fixes = [fix]


def _end(chain: ChainState, body: dict[str, Any], hash_: str, seq: int) -> None:
    """Remember the entry that ended the chain's tag (a tag ends once: the admission rules refuse the rest)."""
    if chain.end is None:
        chain.end = end_evidence(chain.tag, body, hash_, seq)


# --- refused attempts (kept by the writer) ----------------------------------------------------------------

ATTEMPT_RULES = frozenset({"tag.finished", "tag.already_attached"})


@dataclass(frozen=True)
class Attempt:
    """A signed envelope the ledger refused because its tag's life was over (kept as evidence)."""

    tag: str
    rule: str
    received: str
    log_size: int
    hash: str
    body: dict[str, Any]
    sig: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "rule": self.rule, "received": self.received, "log_size": self.log_size,
                "hash": self.hash, "envelope": {"body": self.body, "sig": self.sig}}


@dataclass(frozen=True)
class JudgedAttempt:
    """A refused attempt and the standing of its actor on the tag (`standing`): None means it does not count."""

    attempt: Attempt
    standing: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.attempt.to_json(), "standing": self.standing, "counted": self.standing is not None}


def judge_attempts(attempts: Sequence[Attempt], parties: Sequence[str],
                   role_of: Callable[[str], str | None]) -> list[JudgedAttempt]:
    """Each attempt with the standing of its actor on the tag (`standing`): a competitor that never handled a
    finished tag cannot make it look reused by sending a refused envelope (protocol 9.1)."""
    return [JudgedAttempt(a, standing(a.body["actor"], role_of(a.body["actor"]), parties)) for a in attempts]


def attempt_tag(body: dict[str, Any], rule: str, pointer: str, tags: dict[str, TagState | None]) -> str | None:
    """The tag whose use after its end an envelope refused with `rule` at `pointer` attempted, if it is one to
    keep as evidence: `tag.finished` (the tag was consumed, voided, merged or split), or `tag.already_attached`
    on a voided tag. The caller keeps it only if its signature verified with a registered key of its actor
    (every rule that `domain.rules.check` raises after the signature was checked implies it)."""
    if rule not in ATTEMPT_RULES:
        return None
    tag: str | None = None
    if pointer in {"/body/stream", "/body/actor"}:
        tag = tag_of(body["stream"]) if body["stream"].startswith("tag:") else None
    else:
        parts = pointer.split("/")
        data = body.get("data") or {}
        try:
            if parts[:4] == ["", "body", "data", "inputs"]:
                tag = data["inputs"][int(parts[4])]
            elif parts[:4] == ["", "body", "data", "outputs"]:
                tag = data["outputs"][int(parts[4])]["tag"]
        except (IndexError, KeyError, TypeError, ValueError):
            return None
    state = tags.get(tag) if tag else None
    if state is None or state.status not in FINISHED:
        return None
    if rule == "tag.already_attached" and state.status != Status.VOIDED:
        return None
    return tag


def attempts_flag(attempts: Sequence[Attempt], state: TagState | None, finishing_hash: str | None,
                  end_entry: Evidence | None = None) -> Flag | None:
    """`tag.reuse` (b): events were attempted on a tag after its end; refused, kept as evidence.

    `end_entry`: the entry that ended the tag (`ChainState.end`, from the flags projection). Without it the
    tag's head (`state.head`, `finishing_hash`) stands for it, which is only right while nothing followed the
    end: a `tag_scanned` after the end moves the head."""
    if not attempts:
        return None
    first = attempts[0]
    evidence: list[Evidence] = []
    end = "ended"
    if state is not None and state.finished:
        end = str(state.status) + (f" ({state.void_reason})" if state.void_reason else "")
        if end_entry is not None:
            evidence.append(end_entry)
        elif finishing_hash is not None:
            evidence.append(Evidence(state.head.seq, finishing_hash, f"{first.tag} {end}"))
    for a in attempts:
        evidence.append(Evidence(None, a.hash, f"{a.body['type']} by {a.body['actor']} dated {a.body['time']}, "
                                               f"refused ({a.rule}) at {a.received}"))
    summary = (f"{len(attempts)} event(s) were attempted on tag {first.tag} after it was {end}, signed by "
               f"{', '.join(sorted({a.body['actor'] for a in attempts}))}: refused by the ledger and kept as "
               f"evidence; the tag may have been reused on other material.")
    return Flag(TAG_REUSE, summary, evidence[:MAX_EVIDENCE], None)


# --- reading: a tag's own and inherited flags -------------------------------------------------------------


def visible(flag: Flag, as_of: int | None) -> Flag | None:
    """The flag as it was known when the log held `as_of` entries (None if it was raised later)."""
    if as_of is None:
        return flag
    if flag.raised_at is None or flag.raised_at >= as_of:
        return None
    evidence = [e for e in flag.evidence if e.seq is not None and e.seq < as_of]
    return Flag(flag.code, flag.summary, evidence, flag.raised_at)


def tag_flags(tag: str, own: Sequence[Flag],
              upstream: Sequence[tuple[str, str, Sequence[Flag]]]) -> list[dict[str, Any]]:
    """The flags a tag's view shows: its own, then those inherited from the tags it came from (`upstream`: each
    (tag, relation, its own flags), nearest first), grouped by code, each group naming the tags it comes from."""
    shown = [{**_public(f), "tag": tag, "inherited": False} for f in own]
    groups: dict[str, list[tuple[str, str, Flag]]] = {}
    for source, relation, flags in upstream:
        for flag in flags:
            groups.setdefault(flag.code, []).append((source, relation, flag))
    for code in sorted(groups, key=lambda c: CODES.index(c) if c in CODES else len(CODES)):
        group = groups[code]
        source, relation, first = group[0]
        sources = list(dict.fromkeys(s for s, _, _ in group))
        if len(sources) == 1:
            summary = f"Inherited from {source}, {relation}: {first.summary}"
        else:
            more = ", ..." if len(sources) > MAX_INHERITED_SOURCES else ""
            names = ", ".join(sources[:MAX_INHERITED_SOURCES]) + more
            summary = (f"Inherited from {len(sources)} tags this one came from ({names}): {REASONS.get(code, code)}. "
                       f"First: {first.summary}")
        evidence: list[Evidence] = []
        for _, _, flag in group:
            for item in flag.evidence:
                if item not in evidence and len(evidence) < MAX_EVIDENCE:
                    evidence.append(item)
        shown.append({"code": code, "summary": summary, "evidence": [e.to_json() for e in evidence],
                      "tag": source if len(sources) == 1 else None, "from": sources, "inherited": True})
    return shown


def _public(flag: Flag) -> dict[str, Any]:
    return {"code": flag.code, "summary": flag.summary, "evidence": [e.to_json() for e in flag.evidence]}


def verdict_summary(flags: Sequence[dict[str, Any]], custody_summary: str) -> str:
    """The verdict's sentence for a flagged tag: the reasons, then where it stands."""
    reasons = list(dict.fromkeys(REASONS.get(f["code"], f["code"]) + (" (inherited)" if f.get("inherited") else "")
                                 for f in flags))
    return (f"Flagged: {'; '.join(reasons)}. Check the evidence before accepting material bearing this tag. "
            f"Custody: {custody_summary}")


# --- formatting -------------------------------------------------------------------------------------------


def kilograms(grams: int | Fraction) -> str:
    """Exact decimal kilograms to the gram (a fraction of a gram is rounded): 49800 -> "49.800"."""
    g = round(Fraction(grams))
    sign = "-" if g < 0 else ""
    g = abs(g)
    return f"{sign}{g // 1000:,}.{g % 1000:03d}"


def _percent(ppm: int) -> str:
    return f"{ppm / 10_000:.2f}%"
