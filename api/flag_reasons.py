"""A fraud flag's reason and evidence in the reader's language, with names and readable dates.

The ledger states each flag (docs/protocol.md 9.1) as an English `summary` and English evidence `note`s, written by
`domain/flags.py` with organisation ids and raw protocol times. The verification page shows them to people in
French, Swahili..., so this module says the same thing from the catalogue (api/catalogue/), taking its values from:

* the flag's evidence items that are events of the tag itself (the view's `events`: what happened, who, when);
* the numbers and ids in the ledger's own sentences, read with patterns that mirror the f-strings of
  `domain/flags.py` (distances, masses, months, keys). `tests/unit/test_flag_reasons.py` builds every kind of flag
  with `domain/flags.py` itself and checks that each one is understood, so a change of wording there fails a test
  here rather than silently falling back.

Anything not understood (a flag code or a sentence this module does not know) is shown as the ledger wrote it,
marked as English, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from api.i18n import DEFAULT, META, Messages, iso_date, iso_minute
from domain.flags import haversine_km  # the very formula the ledger applied
from verification.encoding import parse_time

Names = Callable[[str | None], str]

_KG = r"(-?[\d,]+\.\d{3})"
_TIME = r"(\d{4}-\d\d-\d\dT[\d:.]+Z)"
_ORG = r"([a-z0-9][a-z0-9-]*)"
_TAG = r"([A-Z0-9][A-Z0-9-]*)"
_WORD = r"([a-z_]+)"

# --- the ledger's sentences (domain/flags.py), as patterns ------------------------------------------------------
INHERITED_ONE = re.compile(r"^Inherited from \S+, (?:a tag that went into this lot|the lot this tag was split from"
                           r"|a tag upstream of this one): (.*)$", re.S)
INHERITED_MANY = re.compile(r"^Inherited from \d+ tags this one came from \([^)]*\): [^.]*\. First: (.*)$", re.S)
TRAVEL = re.compile(r"^Possible cloned tag: .* recorded [\d,]+ km apart, .*; nothing carries ore faster than "
                    r"(\d+) km/h \(entries #(\d+) and #(\d+)\)\.$", re.S)
SCANNED_AFTER_END = re.compile(r"^Tag \S+ was scanned by .* after its life was over: .*\(entry #(\d+)\)\. A tag "
                               r"seen after its end may have been reused on other material\.$", re.S)
ATTEMPTS = re.compile(r"^(\d+) event\(s\) were attempted on tag " + _TAG + r" after it was (.+?), signed by "
                      r"([a-z0-9, -]+): refused by the ledger and kept as evidence; the tag may have been reused on "
                      r"other material\.$", re.S)
MASS_GAIN = re.compile(r"^Mass gained along the chain: " + _KG + r" kg at entry #(\d+) against a starting mass of "
                       + _KG + r" kg \(entry #(\d+)\), [\d.]+% more, beyond the ([\d.]+)% tolerance\.$")
LOT_HEAVIER = re.compile(r"^Lot " + _TAG + r" was formed at " + _KG + r" kg, more than the " + _KG + r" kg of the "
                         r"tags it was made from \(entry #(\d+)\): ore may have been added\.$")
SPLIT_HEAVIER = re.compile(r"^The tags split out of lot " + _TAG + r" weigh " + _KG + r" kg, more than the lot's "
                           + _KG + r" kg \(entry #(\d+)\)\.$")
OVER_CAPACITY = re.compile(r"^Site " + _ORG + r" tagged " + _KG + r" kg in (\d{4}-\d\d), more than its declared "
                           r"capacity of ([\d,]+) kg per month; (?:this attachment took it over|this bag was attached "
                           r"after the total crossed it \(entry #(\d+)\))\.$")
REVOKED_KEY = re.compile(r"^Entry #(\d+) \(" + _WORD + r" by " + _ORG + r", dated " + _TIME + r"\) was signed with "
                         r"key ([0-9a-f]{16}), which was later revoked with effect from " + _TIME + r" \(entry #(\d+): "
                         r"(.*)\): whoever held the compromised key may have signed it\.$", re.S)

LATE_RECORD = re.compile(r"^Entry #(\d+) \(" + _WORD + r" by " + _ORG + r"\) on tag " + _TAG + r" is dated " + _TIME
                         + r" but reached the ledger on " + _TIME + r", (\d+) days later \(more than (\d+)\): it may "
                         r"have been backdated\.$")

NOTE_POSITION = re.compile(r"^" + _WORD + r" of " + _TAG + r" at (-?[\d.]+),(-?[\d.]+) on " + _TIME + r"$")
NOTE_ATTEMPT = re.compile(r"^" + _WORD + r" by " + _ORG + r" dated " + _TIME + r", refused \(([a-z_.]+)\) at "
                          + _TIME + r"$")
NOTE_START_MASS = re.compile(r"^starting mass of the chain: " + _KG + r" kg$")
NOTE_MASS_STEP = re.compile(r"^(dispatched|received|consumed|lot formed|split into outputs totalling): " + _KG
                            + r" kg$")
NOTE_LOT_FORMED = re.compile(r"^lot formed: " + _KG + r" kg from inputs of " + _KG + r" kg$")
NOTE_SPLIT = re.compile(r"^split: outputs " + _KG + r" kg, lot " + _KG + r" kg$")
NOTE_CAPACITY = re.compile(r"^" + _TAG + r" attached at " + _KG + r" kg; the month's total is then " + _KG + r" kg$")
NOTE_CAPACITY_CROSSED = re.compile(r"^the attachment that crossed the capacity \(" + _TAG + r"\)$")
NOTE_KEY_USE = re.compile(r"^" + _WORD + r" by " + _ORG + r" signed with key ([0-9a-f]{16}) at " + _TIME + r"$")
NOTE_KEY_REVOKED = re.compile(r"^key ([0-9a-f]{16}) of " + _ORG + r" revoked with effect from " + _TIME
                              + r": (.*)$", re.S)
NOTE_LATE = re.compile(r"^" + _WORD + r" by " + _ORG + r" dated " + _TIME + r", received " + _TIME
                       + r" \((\d+) days later\)$")
NOTE_END = re.compile(r"^" + _TAG + r" (consumed at " + _ORG + r"|voided \(([a-z]+)\) by " + _ORG
                      + r"|merged into lot " + _TAG + r" by " + _ORG + r"|split into (\d+) tags by " + _ORG
                      + r") on " + _TIME + r"$")
NOTE_END_BARE = re.compile(r"^" + _TAG + r" (consumed|voided|merged|split)(?: \(([a-z]+)\))?$")
MASS_STEPS = {"dispatched": "custody_dispatched", "received": "custody_received", "consumed": "tag_consumed",
              "lot formed": "lot_formed", "split into outputs totalling": "lot_split"}


@dataclass
class FlagText:
    """What the page says of one flag: `reason` (None: show the ledger's English summary) and, per evidence item,
    a `note` in the reader's language (None: the ledger's English note)."""

    reason: Markup | None
    notes: list[Markup | None] = field(default_factory=list)


def grams(kilograms: str) -> int:
    """`1,234.567` (domain.flags.kilograms) -> 1234567."""
    return int(Decimal(kilograms.replace(",", "")) * 1000)


class FlagExplainer:
    """Explains the flags of one tag view in one language."""

    def __init__(self, t: Messages, names: Names, events: dict[int, dict[str, Any]]):
        self.t = t
        self.names = names
        self.events = events  # this tag's own events, by seq

    # -- small formats -----------------------------------------------------------------------------------------

    def when(self, moment: str | None) -> str:
        return self.t("datetime_utc", date=iso_date(moment), time=iso_minute(moment)) if moment else ""

    def mass(self, kilograms: str) -> str:
        return self.t.mass(grams(kilograms))

    def percent(self, value: Decimal) -> str:
        text = f"{value:.2f}".replace(".", META.get(self.t.lang, META[DEFAULT])["decimal"])
        return self.t("percent", n=text)

    def event(self, kind: str) -> str:
        return self.t.term("event", kind)

    def org(self, org: str) -> Markup:
        return Markup("<strong>{}</strong>").format(self.names(org))

    def _body(self, seq: int | None) -> dict[str, Any] | None:
        event = self.events.get(seq) if seq is not None else None
        return ((event or {}).get("envelope") or {}).get("body") if event else None

    # -- the flag ------------------------------------------------------------------------------------------------

    def explain(self, flag: dict[str, Any]) -> FlagText:
        summary = str(flag.get("summary") or "")
        for inherited in (INHERITED_ONE, INHERITED_MANY):
            match = inherited.match(summary)
            if match:
                summary = match.group(1)
                break
        evidence = [item for item in flag.get("evidence") or [] if isinstance(item, dict)]
        try:
            reason = self._reason(str(flag.get("code") or ""), summary, evidence)
        except (ArithmeticError, KeyError, TypeError, ValueError):
            reason = None
        return FlagText(reason, [self._note(item) for item in evidence])

    def _reason(self, code: str, summary: str, evidence: list[dict[str, Any]]) -> Markup | None:
        t = self.t
        if code == "tag.reuse":
            if match := TRAVEL.match(summary):
                return self._travel(int(match.group(1)), evidence)
            if SCANNED_AFTER_END.match(summary):
                return self._scanned_after_end(evidence)
            if match := ATTEMPTS.match(summary):
                actors = [a.strip() for a in match.group(4).split(",") if a.strip()]
                return t("flag_reason_attempts", n=int(match.group(1)), end=self._end_status(match.group(3)),
                         actors=Markup(", ").join(self.org(a) for a in actors))
        elif code == "mass.gain" and (match := MASS_GAIN.match(summary)):
            mass, seq, start, start_seq, tolerance = match.groups()
            gain = (Decimal(grams(mass)) - grams(start)) * 100 / grams(start)
            step = next((self._note_step(item.get("note")) for item in evidence if item.get("seq") == int(seq)), "")
            return t("flag_reason_mass_gain", mass=self.mass(mass), step=step, seq=int(seq), start=self.mass(start),
                     start_seq=int(start_seq), gain=self.percent(gain), tolerance=self.percent(Decimal(tolerance)))
        elif code == "lot.heavier_than_inputs":
            if match := LOT_HEAVIER.match(summary):
                lot, mass, parts, seq = match.groups()
                return t("flag_reason_lot_heavier", lot=lot, mass=self.mass(mass), parts=self.mass(parts),
                         seq=int(seq))
            if match := SPLIT_HEAVIER.match(summary):
                lot, mass, parts, seq = match.groups()
                return t("flag_reason_split_heavier", lot=lot, mass=self.mass(mass), parts=self.mass(parts),
                         seq=int(seq))
        elif code == "site.over_capacity" and (match := OVER_CAPACITY.match(summary)):
            site, total, month, capacity, crossed = match.groups()
            which = t("flag_capacity_after", seq=int(crossed)) if crossed else t("flag_capacity_crossed")
            return t("flag_reason_over_capacity", site=self.org(site), total=self.mass(total), month=month,
                     capacity=t.mass(int(capacity.replace(",", "")) * 1000), which=which)
        elif code == "custody.revoked_key" and (match := REVOKED_KEY.match(summary)):
            seq, kind, actor, dated, kid, effective, rseq, why = match.groups()
            return t("flag_reason_revoked_key", seq=int(seq), event=self.event(kind), actor=self.org(actor),
                     when=self.when(dated), kid=kid, effective=self.when(effective), rseq=int(rseq), reason=why)
        elif code == "time.late_record" and (match := LATE_RECORD.match(summary)):
            seq, kind, actor, tag, dated, received, days, limit = match.groups()
            return t("flag_reason_late_record", seq=int(seq), event=self.event(kind), actor=self.org(actor), tag=tag,
                     when=self.when(dated), received=self.when(received), n=int(days), limit=int(limit))
        return None

    def _travel(self, limit: int, evidence: list[dict[str, Any]]) -> Markup | None:
        fixes = [self._position(item) for item in evidence[:2]]
        if len(fixes) != 2 or None in fixes:
            return None
        (lat1, lon1, time1), (lat2, lon2, time2) = fixes  # type: ignore[misc]
        km = haversine_km(lat1, lon1, lat2, lon2)
        seconds = (parse_time(time2) - parse_time(time1)).total_seconds()
        distance = f"{km:,.0f}".replace(",", META.get(self.t.lang, META[DEFAULT])["group"])
        if seconds <= 0:
            return self.t("flag_reason_travel_same_time", km=distance, limit=limit)
        minutes = round(seconds / 60)
        duration = (self.t("duration_min", n=minutes) if minutes < 120
                    else self.t("duration_h", n=f"{minutes / 60:.1f}".replace(".", META.get(
                        self.t.lang, META[DEFAULT])["decimal"])))
        speed = f"{km * 3600 / seconds:,.0f}".replace(",", META.get(self.t.lang, META[DEFAULT])["group"])
        return self.t("flag_reason_travel", km=distance, duration=duration, speed=speed, limit=limit)

    def _position(self, item: dict[str, Any]) -> tuple[str, str, str] | None:
        """A position of the tag (travel evidence): from the tag's own event, else from the ledger's note."""
        body = self._body(item.get("seq"))
        if body is not None:
            gps = (body.get("data") or {}).get("gps") or {}
            if "lat" in gps and "lon" in gps:
                return str(gps["lat"]), str(gps["lon"]), str(body.get("time"))
        match = NOTE_POSITION.match(str(item.get("note") or ""))
        return (match.group(3), match.group(4), match.group(5)) if match else None

    def _scanned_after_end(self, evidence: list[dict[str, Any]]) -> Markup | None:
        if len(evidence) < 2:
            return None
        end, scan = self._end(evidence[0]), self._body(evidence[-1].get("seq"))
        if end is None or scan is None:
            return None
        return self.t("flag_reason_scanned_after_end", actor=self.org(scan.get("actor")), when=self.when(
            scan.get("time")), end=end)

    def _end(self, item: dict[str, Any]) -> Markup | None:
        """How the tag's life ended (the end entry of `tag.reuse` evidence), in words."""
        match = NOTE_END.match(str(item.get("note") or ""))
        if not match:
            return None
        (tag, _, consumer, reason, voider, lot, merger, n, splitter, moment) = match.groups()
        when = self.when(moment)
        if consumer:
            return self.t("flag_end_consumed", tag=tag, actor=self.org(consumer), when=when)
        if voider:
            return self.t("flag_end_voided", tag=tag, reason=self.t.reason(reason), actor=self.org(voider), when=when)
        if lot:
            return self.t("flag_end_merged", tag=tag, lot=lot, actor=self.org(merger), when=when)
        return self.t("flag_end_split", tag=tag, n=int(n), actor=self.org(splitter), when=when)

    def _end_status(self, text: str) -> str:
        """`consumed`, `voided (lost)`, `merged`, `split` (domain.flags.attempts_flag) in words."""
        match = re.fullmatch(r"(consumed|voided|merged|split)(?: \(([a-z]+)\))?", text)
        if not match:
            return text
        status, reason = match.groups()
        return self.t(f"end_status_{status}", reason=self.t.reason(reason))

    # -- evidence notes ------------------------------------------------------------------------------------------

    def _note_step(self, note: Any) -> str:
        match = NOTE_MASS_STEP.match(str(note or ""))
        return self.event(MASS_STEPS[match.group(1)]) if match else ""

    def _note(self, item: dict[str, Any]) -> Markup | None:
        """The evidence item's note in words; None when it is not understood (the page shows the ledger's)."""
        note, t = str(item.get("note") or ""), self.t
        if match := NOTE_POSITION.match(note):
            kind, tag, lat, lon, moment = match.groups()
            return t("flag_note_position", event=self.event(kind), tag=tag, gps=f"{lat}, {lon}", when=self.when(moment))
        if match := NOTE_ATTEMPT.match(note):
            kind, actor, dated, rule, received = match.groups()
            return t("flag_note_attempt", event=self.event(kind), actor=self.org(actor), when=self.when(dated),
                     rule=t.term("problem", rule), received=self.when(received))
        if match := NOTE_START_MASS.match(note):
            return t("flag_note_start_mass", mass=self.mass(match.group(1)))
        if match := NOTE_MASS_STEP.match(note):
            return t("flag_note_mass_step", event=self.event(MASS_STEPS[match.group(1)]),
                     mass=self.mass(match.group(2)))
        if match := NOTE_LOT_FORMED.match(note):
            return t("flag_note_lot_formed", mass=self.mass(match.group(1)), parts=self.mass(match.group(2)))
        if match := NOTE_SPLIT.match(note):
            return t("flag_note_split", mass=self.mass(match.group(1)), parts=self.mass(match.group(2)))
        if match := NOTE_CAPACITY.match(note):
            return t("flag_note_capacity", tag=match.group(1), mass=self.mass(match.group(2)),
                     total=self.mass(match.group(3)))
        if match := NOTE_CAPACITY_CROSSED.match(note):
            return t("flag_note_capacity_crossed", tag=match.group(1))
        if match := NOTE_KEY_USE.match(note):
            kind, actor, kid, moment = match.groups()
            return t("flag_note_key_use", event=self.event(kind), actor=self.org(actor), kid=kid,
                     when=self.when(moment))
        if match := NOTE_KEY_REVOKED.match(note):
            kid, org, moment, why = match.groups()
            return t("flag_note_key_revoked", kid=kid, org=self.org(org), when=self.when(moment), reason=why)
        if match := NOTE_LATE.match(note):
            kind, actor, dated, received, days = match.groups()
            return t("flag_note_late", event=self.event(kind), actor=self.org(actor), when=self.when(dated),
                     received=self.when(received), n=int(days))
        if (end := self._end(item)) is not None:
            return end
        if match := NOTE_END_BARE.match(note):
            return Markup("{} {}").format(match.group(1), self._end_status(
                match.group(2) + (f" ({match.group(3)})" if match.group(3) else "")))
        return None
