"""The `data` object of each event type (protocol section 6), as strict schemas.

Every model forbids unknown fields and coerces nothing: a string is not an integer, `true` is not `1`.
`parse_data` turns a schema failure into a `RuleViolation("envelope.malformed", "/body/data/...")`
that names the first offending field.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from domain.errors import RuleViolation
from domain.roles import Role
from verification.encoding import EncodingError, parse_time
from verification.note import is_valid_key_name

ORG_ID = r"^[a-z0-9][a-z0-9-]{1,39}$"
TAG_ID = r"^[A-Z0-9][A-Z0-9-]{2,39}$"
TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
PUBLIC_KEY = r"^[A-Za-z0-9_-]{43}$"
KID = r"^[0-9a-f]{16}$"
MAX_SAFE_INT = 2**53 - 1

OrgId = Annotated[str, Field(pattern=ORG_ID)]
TagId = Annotated[str, Field(pattern=TAG_ID)]


def _real_instant(value: str) -> str:
    """A time that matches TIME must also name a real instant: no 2026-02-30, no hour 24, no year 0000."""
    try:
        parse_time(value)
    except EncodingError as error:
        raise ValueError(str(error)) from None
    return value


Time = Annotated[str, Field(pattern=TIME), AfterValidator(_real_instant)]
PublicKey = Annotated[str, Field(pattern=PUBLIC_KEY)]
Grams = Annotated[int, Field(gt=0, le=MAX_SAFE_INT)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
ShortText = Annotated[str, Field(min_length=1, max_length=120)]

Mineral = Literal["cobalt", "copper", "tin", "tantalum", "tungsten"]
VoidReason = Literal["lost", "stolen", "damaged", "other"]


def _coordinate(limit: int):
    def check(value: str) -> str:
        if not re.fullmatch(r"-?[0-9]{1,3}(\.[0-9]{1,7})?", value):
            raise ValueError("must be a decimal string with at most 7 decimals")
        try:
            number = Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the regex already excludes it
            raise ValueError("not a number") from exc
        if abs(number) > limit:
            raise ValueError(f"must be within [-{limit}, {limit}]")
        return value

    return AfterValidator(check)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Gps(Strict):
    lat: Annotated[str, _coordinate(90)]
    lon: Annotated[str, _coordinate(180)]


class Money(Strict):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    minor_per_kg: Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]


# --- registry events ---------------------------------------------------------------------------


class OperatorInfo(Strict):
    org: OrgId
    name: ShortText
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


def _note_key_name(value: str) -> str:
    """The log key's name is the log's origin: a C2SP note key name (no space, no `+`; protocol 11.2)."""
    if not is_valid_key_name(value):
        raise ValueError("is not a note key name (C2SP signed-note: no space, no '+', no control character)")
    return value


class LogKey(Strict):
    name: Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_note_key_name)]
    public_key: PublicKey


class LedgerCreated(Strict):
    ledger: ShortText
    operator: OperatorInfo
    root_key: PublicKey
    log_key: LogKey
    mass_tolerance_ppm: Annotated[int, Field(ge=0, le=500_000)]


class OrgRegistered(Strict):
    name: ShortText
    role: Annotated[Role, Field(strict=False)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    public_keys: Annotated[list[PublicKey], Field(min_length=1, max_length=8)]
    rmi_cid: Annotated[str, Field(pattern=r"^CID[0-9]{6}$")] | None = None
    operated_by: OrgId | None = None
    gps: Gps | None = None
    capacity_kg_per_month: Annotated[int, Field(gt=0, le=MAX_SAFE_INT)] | None = None


class KeyAdded(Strict):
    public_key: PublicKey


class KeyRevoked(Strict):
    key: Annotated[str, Field(pattern=KID)]
    reason: Text
    effective: Time | None = None


class TagRange(Strict):
    prefix: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{0,30}$")]
    start: Annotated[int, Field(ge=0, le=10**12)]
    count: Annotated[int, Field(ge=1, le=10_000)]
    width: Annotated[int, Field(ge=1, le=12)]


class TagsIssued(Strict):
    tags: Annotated[list[TagId], Field(max_length=10_000)] | None = None
    ranges: Annotated[list[TagRange], Field(max_length=100)] | None = None


# --- tag lifecycle events ----------------------------------------------------------------------


class TagAttached(Strict):
    site: OrgId
    mineral: Mineral
    ore: ShortText | None = None
    mass_g: Grams
    pit: ShortText
    gps: Gps | None = None
    price_paid: Money | None = None


class CustodyDispatched(Strict):
    to: OrgId
    mass_g: Grams | None = None
    location: ShortText | None = None
    gps: Gps | None = None


class CustodyReceived(Strict):
    mass_g: Grams
    location: ShortText | None = None
    gps: Gps | None = None


class LotFormed(Strict):
    inputs: Annotated[list[TagId], Field(min_length=1, max_length=1000)]
    mass_g: Grams


class SplitOutput(Strict):
    tag: TagId
    mass_g: Grams


class LotSplit(Strict):
    outputs: Annotated[list[SplitOutput], Field(min_length=2, max_length=1000)]


class TagConsumed(Strict):
    mass_g: Grams | None = None
    product: ShortText | None = None


class TagVoided(Strict):
    reason: VoidReason
    note: Text | None = None


class TagScanned(Strict):
    gps: Gps
    location: ShortText | None = None
    purpose: Literal["customs", "inspection", "purchase", "monitoring", "other"] | None = None


# --- risk and remediation events (protocol section 16) -------------------------------------------

SHA256_HEX = r"^[0-9a-f]{64}$"
ACTION_ID = r"^[A-Z0-9][A-Z0-9-]{0,19}$"
CYCLE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"

Category = Literal[
    "child_labour", "health_safety", "forced_labour", "armed_groups", "security_forces",
    "chain_of_custody", "environment", "governance",
]
Severity = Literal["low", "medium", "high", "critical"]
Concern = Literal[
    "price", "payment_delay", "safety", "health", "water", "harassment", "illegal_taxation",
    "land_access", "equipment", "finance", "childcare", "other",
]
ActionId = Annotated[str, Field(pattern=ACTION_ID)]
Cycle = Annotated[str, Field(pattern=CYCLE)]
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]


class EvidenceItem(Strict):
    sha256: Annotated[str, Field(pattern=SHA256_HEX)]
    media_type: Annotated[str, Field(pattern=r"^[a-z]+/[a-z0-9.+-]{1,60}$")]
    name: ShortText | None = None


def _distinct_evidence(items: list[EvidenceItem]) -> list[EvidenceItem]:
    if len({item.sha256 for item in items}) != len(items):
        raise ValueError("evidence items must have distinct sha256")
    return items


Evidence = Annotated[list[EvidenceItem], Field(min_length=1, max_length=50), AfterValidator(_distinct_evidence)]


class DetailsCommitment(Strict):
    sha256: Annotated[str, Field(pattern=SHA256_HEX)]


class IncidentReported(Strict):
    site: OrgId
    category: Category
    severity: Severity
    occurred_at: Time
    details: DetailsCommitment
    worst_forms: bool | None = None
    summary: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    people_affected: Count | None = None
    referred_to: OrgId | None = None
    evidence: Evidence | None = None


class IncidentConfirmed(Strict):
    severity: Severity | None = None
    note: Text | None = None
    evidence: Evidence | None = None


class IncidentDismissed(Strict):
    reason: Text


class IncidentClosed(Strict):
    resolution: Text


class ActionAssigned(Strict):
    action: ActionId
    owner: OrgId
    description: Text
    cycle: Cycle


class ActionProgress(Strict):
    action: ActionId
    note: Text
    percent: Annotated[int, Field(ge=0, le=100)] | None = None
    evidence: Evidence | None = None


class ActionVerified(Strict):
    action: ActionId
    outcome: Literal["implemented", "not_implemented"]
    note: Text | None = None
    evidence: Evidence | None = None


class Workforce(Strict):
    women: Count
    men: Count


def _distinct_concerns(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("concerns must be distinct")
    return items


class SiteMonitored(Strict):
    period: Cycle
    price_paid: Money | None = None
    reference_price: Money | None = None
    reference_source: ShortText | None = None
    workforce: Workforce | None = None
    minors_observed: Count | None = None
    concerns: Annotated[list[Concern], Field(min_length=1, max_length=12), AfterValidator(_distinct_concerns)] | None = None
    note: Text | None = None


PAYLOADS: dict[str, type[Strict]] = {
    "ledger_created": LedgerCreated,
    "org_registered": OrgRegistered,
    "key_added": KeyAdded,
    "key_revoked": KeyRevoked,
    "tags_issued": TagsIssued,
    "tag_attached": TagAttached,
    "custody_dispatched": CustodyDispatched,
    "custody_received": CustodyReceived,
    "lot_formed": LotFormed,
    "lot_split": LotSplit,
    "tag_consumed": TagConsumed,
    "tag_voided": TagVoided,
    "tag_scanned": TagScanned,
    "incident_reported": IncidentReported,
    "incident_confirmed": IncidentConfirmed,
    "incident_dismissed": IncidentDismissed,
    "incident_closed": IncidentClosed,
    "action_assigned": ActionAssigned,
    "action_progress": ActionProgress,
    "action_verified": ActionVerified,
    "site_monitored": SiteMonitored,
}


def parse_data(event_type: str, data: Any) -> Strict:
    """Validate `data` for `event_type`; raise `envelope.malformed` naming the first bad field."""
    model = PAYLOADS.get(event_type)
    if model is None:
        raise RuleViolation(
            "envelope.malformed", "/body/type", f"unknown event type {event_type!r}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        pointer = "/body/data" + "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in error["loc"])
        raise RuleViolation("envelope.malformed", pointer, error["msg"]) from None
