"""Response models and the envelope's JSON Schema, for the OpenAPI document (docs/protocol.md is normative)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from domain.roles import EVENT_TYPES
from verification.encoding import HASH_RE, KEY_ID_RE, ORG_ID_RE, TAG_ID_RE
from verification.envelope import STREAM_RE


def _whole(pattern: re.Pattern[str]) -> str:
    """A protocol regular expression as a JSON Schema `pattern` (which matches anywhere unless anchored)."""
    return f"^(?:{pattern.pattern})$"


ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A signed event envelope (docs/protocol.md section 4).",
    "required": ["body", "sig"],
    "additionalProperties": False,
    "properties": {
        "sig": {"type": "string", "description": "base64url Ed25519 signature over jcs(body)",
                "pattern": "^[A-Za-z0-9_-]{86}$"},
        "body": {
            "type": "object",
            "required": ["v", "id", "type", "stream", "prev", "actor", "key", "time", "data"],
            "additionalProperties": False,
            "properties": {
                "v": {"const": 1},
                "id": {"type": "string", "format": "uuid"},
                "type": {"enum": sorted(EVENT_TYPES)},
                "stream": {"type": "string", "pattern": _whole(STREAM_RE),
                           "description": "ledger, org:<org id>, tag:<tag id>, incident:<incident id> or "
                                          "site:<site org id> (docs/protocol.md section 3)"},
                "prev": {"type": ["string", "null"], "pattern": _whole(HASH_RE)},
                "links": {"type": "object", "minProperties": 1,
                          "propertyNames": {"pattern": f"^tag:(?:{TAG_ID_RE.pattern})$"},
                          "additionalProperties": {"type": ["string", "null"], "pattern": _whole(HASH_RE)}},
                "actor": {"type": "string", "pattern": _whole(ORG_ID_RE)},
                "key": {"type": "string", "pattern": _whole(KEY_ID_RE)},
                "time": {"type": "string", "description": "RFC 3339 UTC, Z suffix"},
                "data": {"type": "object", "description": "type-specific, docs/protocol.md section 6"},
            },
        },
    },
}


class ReceiptOut(BaseModel):
    event_id: str
    seq: int = Field(description="Log index of the entry (0 = genesis)")
    received: str = Field(description="The ledger's receipt time")
    hash: str = Field(description="sha256 of jcs(envelope)")
    duplicate: bool = Field(description="True when this envelope had already been recorded")


class BatchItem(BaseModel):
    status: int
    receipt: ReceiptOut | None = None
    problem: dict[str, Any] | None = None


class BatchResult(BaseModel):
    results: list[BatchItem]


class HeadOut(BaseModel):
    stream: str
    hash: str
    seq: int
    time: str


class TagViewOut(BaseModel):
    """`tagledger/tag-view/v1`: verdict, state, origins, and every event with what is needed to check it."""

    model_config = {"extra": "allow"}
    format: str
    tag: str
    verdict: dict[str, Any]
    state: dict[str, Any]
    origins: list[dict[str, Any]]
    events: list[dict[str, Any]]
    keys: dict[str, Any]
    problems: list[str]
    flags: list[dict[str, Any]] = Field(default_factory=list, description=(
        "Fraud flags, the tag's own then those inherited from the tags it came from: `code`, `summary`, "
        "`evidence` ([{seq, hash, note}], seq null for a refused attempt), `tag`, `inherited`"))
    flags_position: int | None = Field(None, description="Log entries the flags projection had read")
    as_of: int | None = None
    log: dict[str, Any] | None = None
