"""Response models and the envelope's JSON Schema, for the OpenAPI document (docs/protocol.md is normative)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from domain.roles import EVENT_TYPES

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A signed event envelope (docs/protocol.md section 4).",
    "required": ["body", "sig"],
    "additionalProperties": False,
    "properties": {
        "sig": {"type": "string", "description": "base64url Ed25519 signature over jcs(body)", "minLength": 86,
                "maxLength": 86},
        "body": {
            "type": "object",
            "required": ["v", "id", "type", "stream", "prev", "actor", "key", "time", "data"],
            "additionalProperties": False,
            "properties": {
                "v": {"const": 1},
                "id": {"type": "string", "format": "uuid"},
                "type": {"enum": sorted(EVENT_TYPES)},
                "stream": {"type": "string", "pattern": "^(ledger|org:[a-z0-9][a-z0-9-]{1,39}|tag:[A-Z0-9][A-Z0-9-]{2,39})$"},
                "prev": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                "links": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                "actor": {"type": "string"},
                "key": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
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
