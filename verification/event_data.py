"""The ``data`` object of each event type, and the stream each type belongs to -- docs/protocol.md section 6.

:func:`check_event_shape` is the part of rule ``envelope.malformed`` that needs no state: the event type is
one of section 6, its ``stream`` has the right kind (``ledger`` for the genesis, ``org:`` for registry
events, ``tag:`` for tag events, ``incident:`` for incident events, ``site:`` for ``site_monitored``),
``links`` appear only on ``lot_formed`` and ``lot_split`` and name ``tag:`` streams, and ``data`` has exactly
the fields of the type's table, each of the right type and encoding.  It raises :class:`DataError` with a
JSON Pointer into the envelope (``/body/data/mass_g``).

For the risk events this includes the shapes of section 6 "Risk and remediation": evidence items and lists
(1..50 items, distinct by ``sha256``: a repeated ``sha256`` is ``envelope.malformed`` at the list, as the
ledger refuses it with the schema), cycles, action ids, the details commitment, ``summary`` of at most 200
characters, distinct ``concerns``.  The *cross-field* checks of ``incident_reported`` (``worst_forms`` only for
``child_labour``, ``occurred_at`` not after ``time``) are type rules, checked after the streams and the
time like the ledger does (:mod:`verification.risk_replay`).

Strings are limited as section 6 "Strings" says: names and short labels 1..120 characters, reasons, notes,
resolutions and descriptions 1..500 (``summary`` 1..200), counted in Unicode code points.  Where section 6 is
silent the check follows the ledger: masses and capacities are integers > 0, optional fields may also be given
as ``null`` (which means absent).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from verification.canonical import MAX_SAFE_INTEGER, json_pointer
from verification.encoding import (
    KEY_ID_RE,
    ORG_ID_RE,
    TAG_ID_RE,
    EncodingError,
    decode_public_key,
    parse_time,
)
from verification.envelope import EnvelopeError, issued_tags
from verification.note import is_valid_key_name

__all__ = [
    "CUSTODY_ROLES",
    "EVENT_TYPES",
    "INCIDENT_EVENT_TYPES",
    "REGISTRY_EVENT_TYPES",
    "RISK_EVENT_TYPES",
    "ROLES",
    "SITE_EVENT_TYPES",
    "TAG_EVENT_TYPES",
    "DataError",
    "check_event_shape",
]

ROLES = frozenset(
    {"operator", "site", "cooperative", "trader", "processor", "exporter", "refiner", "auditor", "monitor",
     "authority", "partner"}
)
CUSTODY_ROLES = frozenset({"site", "cooperative", "trader", "processor", "exporter", "refiner"})
REGISTRY_EVENT_TYPES = frozenset({"ledger_created", "org_registered", "key_added", "key_revoked", "tags_issued"})
TAG_EVENT_TYPES = frozenset(
    {"tag_attached", "custody_dispatched", "custody_received", "lot_formed", "lot_split", "tag_consumed",
     "tag_voided", "tag_scanned"}
)
INCIDENT_EVENT_TYPES = frozenset(
    {"incident_reported", "incident_confirmed", "incident_dismissed", "incident_closed", "action_assigned",
     "action_progress", "action_verified"}
)
SITE_EVENT_TYPES = frozenset({"site_monitored"})
RISK_EVENT_TYPES = INCIDENT_EVENT_TYPES | SITE_EVENT_TYPES
EVENT_TYPES = REGISTRY_EVENT_TYPES | TAG_EVENT_TYPES | RISK_EVENT_TYPES
MINERALS = frozenset({"cobalt", "copper", "tin", "tantalum", "tungsten"})
VOID_REASONS = frozenset({"lost", "stolen", "damaged", "other"})
SCAN_PURPOSES = frozenset({"customs", "inspection", "purchase", "monitoring", "other"})
CATEGORIES = frozenset({"child_labour", "health_safety", "forced_labour", "armed_groups", "security_forces",
                        "chain_of_custody", "environment", "governance"})
SEVERITIES = frozenset({"low", "medium", "high", "critical"})
OUTCOMES = frozenset({"implemented", "not_implemented"})
CONCERNS = frozenset({"price", "payment_delay", "safety", "health", "water", "harassment", "illegal_taxation",
                      "land_access", "equipment", "finance", "childcare", "other"})
MAX_SUMMARY = 200
MAX_EVIDENCE = 50
MAX_MASS_TOLERANCE_PPM = 500_000
MAX_NAME = 120
MAX_NOTE = 500

_COUNTRY = re.compile(r"[A-Z]{2}", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_RMI_CID = re.compile(r"CID[0-9]{6}", re.ASCII)
_COORDINATE = re.compile(r"-?[0-9]{1,3}(\.[0-9]{1,7})?", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_MEDIA_TYPE = re.compile(r"[a-z]+/[a-z0-9.+-]{1,60}", re.ASCII)
_ACTION_ID = re.compile(r"[A-Z0-9][A-Z0-9-]{0,19}", re.ASCII)
_CYCLE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)


class DataError(ValueError):
    """Rule ``envelope.malformed``: ``field`` is a JSON Pointer into the envelope, ``message`` says why."""

    rule = "envelope.malformed"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# --- value checkers: each takes (value, path) and raises DataError ----------------------------------------

Path = tuple[str | int, ...]
Checker = Callable[[Any, Path], None]


def _fail(path: Path, message: str) -> DataError:
    return DataError(json_pointer(("body", "data", *path)), message)


def _pattern(regex: re.Pattern[str], what: str) -> Checker:
    def check(value: Any, path: Path) -> None:
        if type(value) is not str or regex.fullmatch(value) is None:
            raise _fail(path, f"is not {what}")

    return check


def _identifier(regex: re.Pattern[str], what: str) -> Checker:
    """A str (or a subclass: as ``verification.encoding.is_org_id`` and its kin) that ``regex`` matches in full."""

    def check(value: Any, path: Path) -> None:
        if not isinstance(value, str) or regex.fullmatch(value) is None:
            raise _fail(path, f"is not {what}")

    return check


def _integer(low: int, high: int = MAX_SAFE_INTEGER) -> Checker:
    def check(value: Any, path: Path) -> None:
        if type(value) is not int or not low <= value <= high:
            raise _fail(path, f"is not an integer in [{low}, {high}]")

    return check


def _one_of(choices: frozenset[str]) -> Checker:
    def check(value: Any, path: Path) -> None:
        if type(value) is not str or value not in choices:
            raise _fail(path, f"is not one of {', '.join(sorted(choices))}")

    return check


def _public_key(value: Any, path: Path) -> None:
    if type(value) is not str:
        raise _fail(path, "is not a public key (base64url string)")
    try:
        decode_public_key(value)
    except EncodingError as error:
        raise _fail(path, f"is not a public key: {error}") from None


def _time(value: Any, path: Path) -> None:
    try:
        parse_time(value)
    except EncodingError as error:
        raise _fail(path, str(error)) from None


def _coordinate(limit: int) -> Checker:
    def check(value: Any, path: Path) -> None:
        # at most 3 + 7 digits: a float holds the value closely enough to compare it with an integer limit
        if type(value) is not str or _COORDINATE.fullmatch(value) is None or abs(float(value)) > limit:
            raise _fail(path, f"is not a decimal string in [-{limit}, {limit}] with at most 7 decimals")

    return check


def _object(fields: dict[str, tuple[bool, Checker]]) -> Checker:
    """An object with exactly these members: name -> (required, checker); an optional one may be null."""

    names = frozenset(fields)

    def check(value: Any, path: Path) -> None:
        if type(value) is not dict:
            raise _fail(path, "is not an object")
        for name, (required, member_check) in fields.items():
            if name in value:
                member = value[name]
                if member is None and not required:
                    continue
                member_check(member, (*path, name))
            elif required:
                raise _fail((*path, name), "is required")
        if not names.issuperset(value):  # only then sort, to name the first one that is not a field
            for name in sorted(value):
                if name not in fields:
                    raise _fail((*path, name), "is not a field here")

    return check


def _list(item: Checker, low: int, high: int) -> Checker:
    def check(value: Any, path: Path) -> None:
        if type(value) is not list or not low <= len(value) <= high:
            raise _fail(path, f"is not a list of {low}..{high} items")
        for index, member in enumerate(value):
            item(member, (*path, index))

    return check


def _distinct(items: Checker, key: Callable[[Any], Any], what: str) -> Checker:
    """A list that passes ``items`` and whose members are distinct by ``key`` (else the list is the field)."""

    def check(value: Any, path: Path) -> None:
        items(value, path)
        if len({key(member) for member in value}) != len(value):
            raise _fail(path, f"has a repeated {what}")

    return check


def _boolean(value: Any, path: Path) -> None:
    if type(value) is not bool:
        raise _fail(path, "is not true or false")


def _text_up_to(limit: int) -> Checker:
    def check(value: Any, path: Path) -> None:
        if type(value) is not str or not 1 <= len(value) <= limit:
            raise _fail(path, f"is not a string of 1..{limit} characters")

    return check


_NAME = _text_up_to(MAX_NAME)
"""Names and short labels (section 6, "Strings"): 1..120 characters."""
_NOTE = _text_up_to(MAX_NOTE)
"""Reasons, notes, resolutions and descriptions (section 6, "Strings"): 1..500 characters."""
_GRAMS = _integer(1)


def _log_key_name(value: Any, path: Path) -> None:
    """The log's origin (section 11.2): a name of 1..120 characters that is a C2SP note key name (since 1.8)."""
    _NAME(value, path)
    if not is_valid_key_name(value):
        raise _fail(path, "is not a note key name (no space, no '+', no control character)")


_LOG_KEY_NAME = _log_key_name
_ORG = _identifier(ORG_ID_RE, "an organisation id")
_TAG = _identifier(TAG_ID_RE, "a tag id")
_GPS = _object({"lat": (True, _coordinate(90)), "lon": (True, _coordinate(180))})
_MONEY = _object({"currency": (True, _pattern(_CURRENCY, "an ISO 4217 code")), "minor_per_kg": (True, _integer(0))})
_COUNTRY_CODE = _pattern(_COUNTRY, "an ISO 3166-1 alpha-2 code")
_COUNT = _integer(0)
_ACTION = _pattern(_ACTION_ID, "an action id")
_CYCLE_MONTH = _pattern(_CYCLE, "a cycle YYYY-MM")
_EVIDENCE = _distinct(
    _list(_object({
        "sha256": (True, _pattern(_SHA256, "a lowercase hex SHA-256")),
        "media_type": (True, _pattern(_MEDIA_TYPE, "a media type")),
        "name": (False, _NAME),
    }), 1, MAX_EVIDENCE),
    lambda item: item["sha256"],
    "sha256",
)
"""An evidence list (section 6, "Risk and remediation"): 1..50 items ``{sha256, media_type, name?}``, distinct
by ``sha256``."""

_DATA: dict[str, Checker] = {
    "ledger_created": _object({
        "ledger": (True, _NAME),
        "operator": (True, _object({"org": (True, _ORG), "name": (True, _NAME), "country": (True, _COUNTRY_CODE)})),
        "root_key": (True, _public_key),
        "log_key": (True, _object({"name": (True, _LOG_KEY_NAME), "public_key": (True, _public_key)})),
        "mass_tolerance_ppm": (True, _integer(0, MAX_MASS_TOLERANCE_PPM)),
    }),
    "org_registered": _object({
        "name": (True, _NAME),
        "role": (True, _one_of(ROLES)),
        "country": (True, _COUNTRY_CODE),
        "public_keys": (True, _list(_public_key, 1, 8)),
        "rmi_cid": (False, _pattern(_RMI_CID, "an RMI id CID + 6 digits")),
        "operated_by": (False, _ORG),
        "gps": (False, _GPS),
        "capacity_kg_per_month": (False, _integer(1)),
    }),
    "key_added": _object({"public_key": (True, _public_key)}),
    "key_revoked": _object({
        "key": (True, _identifier(KEY_ID_RE, "a key id")),
        "reason": (True, _NOTE),
        "effective": (False, _time),
    }),
    # the tags themselves (tag ids, ranges, 1..10000 distinct) are checked by verification.envelope.issued_tags
    "tags_issued": _object({"tags": (False, lambda value, path: None), "ranges": (False, lambda value, path: None)}),
    "tag_attached": _object({
        "site": (True, _ORG),
        "mineral": (True, _one_of(MINERALS)),
        "ore": (False, _NAME),
        "mass_g": (True, _GRAMS),
        "pit": (True, _NAME),
        "gps": (False, _GPS),
        "price_paid": (False, _MONEY),
    }),
    "custody_dispatched": _object({
        "to": (True, _ORG),
        "mass_g": (False, _GRAMS),
        "location": (False, _NAME),
        "gps": (False, _GPS),
    }),
    "custody_received": _object({"mass_g": (True, _GRAMS), "location": (False, _NAME), "gps": (False, _GPS)}),
    "lot_formed": _object({"inputs": (True, _list(_TAG, 1, 1000)), "mass_g": (True, _GRAMS)}),
    "lot_split": _object({
        "outputs": (True, _list(_object({"tag": (True, _TAG), "mass_g": (True, _GRAMS)}), 2, 1000)),
    }),
    "tag_consumed": _object({"mass_g": (False, _GRAMS), "product": (False, _NAME)}),
    "tag_voided": _object({"reason": (True, _one_of(VOID_REASONS)), "note": (False, _NOTE)}),
    "tag_scanned": _object({
        "gps": (True, _GPS),
        "location": (False, _NAME),
        "purpose": (False, _one_of(SCAN_PURPOSES)),
    }),
    # risk and remediation (section 6 "Risk and remediation", section 16); members in the ledger's order, so
    # that the first bad member reported is the same
    "incident_reported": _object({
        "site": (True, _ORG),
        "category": (True, _one_of(CATEGORIES)),
        "severity": (True, _one_of(SEVERITIES)),
        "occurred_at": (True, _time),
        "details": (True, _object({"sha256": (True, _pattern(_SHA256, "a lowercase hex SHA-256"))})),
        "worst_forms": (False, _boolean),
        "summary": (False, _text_up_to(MAX_SUMMARY)),
        "people_affected": (False, _COUNT),
        "referred_to": (False, _ORG),
        "evidence": (False, _EVIDENCE),
    }),
    "incident_confirmed": _object({
        "severity": (False, _one_of(SEVERITIES)),
        "note": (False, _NOTE),
        "evidence": (False, _EVIDENCE),
    }),
    "incident_dismissed": _object({"reason": (True, _NOTE)}),
    "incident_closed": _object({"resolution": (True, _NOTE)}),
    "action_assigned": _object({
        "action": (True, _ACTION),
        "owner": (True, _ORG),
        "description": (True, _NOTE),
        "cycle": (True, _CYCLE_MONTH),
    }),
    "action_progress": _object({
        "action": (True, _ACTION),
        "note": (True, _NOTE),
        "percent": (False, _integer(0, 100)),
        "evidence": (False, _EVIDENCE),
    }),
    "action_verified": _object({
        "action": (True, _ACTION),
        "outcome": (True, _one_of(OUTCOMES)),
        "note": (False, _NOTE),
        "evidence": (False, _EVIDENCE),
    }),
    "site_monitored": _object({
        "period": (True, _CYCLE_MONTH),
        "price_paid": (False, _MONEY),
        "reference_price": (False, _MONEY),
        "reference_source": (False, _NAME),
        "workforce": (False, _object({"women": (True, _COUNT), "men": (True, _COUNT)})),
        "minors_observed": (False, _COUNT),
        "concerns": (False, _distinct(_list(_one_of(CONCERNS), 1, len(CONCERNS)), lambda concern: concern,
                                      "concern")),
        "note": (False, _NOTE),
    }),
}

_STREAM_KIND = (
    {t: "org:" for t in REGISTRY_EVENT_TYPES}
    | {t: "tag:" for t in TAG_EVENT_TYPES}
    | {t: "incident:" for t in INCIDENT_EVENT_TYPES}
    | {t: "site:" for t in SITE_EVENT_TYPES}
)
_STREAM_KIND["ledger_created"] = "ledger"
_LINKED_TYPES = frozenset({"lot_formed", "lot_split"})


def check_event_shape(body: dict[str, Any]) -> list[str] | None:
    """Check what section 6 says of an event that needs no state; return the tags a ``tags_issued`` issues.

    ``body`` is a body that :class:`verification.envelope.Envelope` accepted (section 4).  Raises
    :class:`DataError` (rule ``envelope.malformed``).  Returns ``None`` for every other type.
    """
    event_type = body["type"]
    checker = _DATA.get(event_type)
    if checker is None:
        raise DataError("/body/type", f"{event_type!r} is not an event type of section 6")
    # the ledger's order: the data (its schema), the tags issued, then the kind of stream and the links
    checker(body["data"], ())
    issued = None
    if event_type == "tags_issued":
        try:
            issued = issued_tags(body["data"])
        except EnvelopeError as error:
            raise DataError(error.field, error.message) from None
    kind = _STREAM_KIND[event_type]
    stream: str = body["stream"]
    if (stream != kind) if kind == "ledger" else not stream.startswith(kind):
        raise DataError("/body/stream", f"{event_type} belongs to a {kind!r} stream")
    links = body.get("links")
    if links is not None:
        if event_type not in _LINKED_TYPES:
            raise DataError("/body/links", f"{event_type} has no links")
        if not links:
            raise DataError("/body/links", "links, when present, is not empty")
        for name in links:
            if not name.startswith("tag:"):
                raise DataError(json_pointer(("body", "links", name)), "links name tag streams")
    return issued
