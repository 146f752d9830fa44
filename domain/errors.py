"""The one exception the domain raises: a named rule, the field it is about, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RuleViolation(Exception):
    """An event breaks a rule of docs/protocol.md section 7.

    `rule` is the rule's name (e.g. ``custody.not_holder``), `field` a JSON Pointer into the submitted
    envelope, `detail` a sentence for a person, `extra` any structured evidence (e.g. the current head).
    """

    rule: str
    field: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.rule} at {self.field}: {self.detail}"

    @property
    def is_conflict(self) -> bool:
        """Conflicts can be retried against the current head (HTTP 409); all others cannot (422)."""
        return self.rule in {"stream.conflict", "event.duplicate_id"}
