"""Sealed incident details and their commitment -- docs/protocol.md section 16.2.

An incident's description (and any precise GPS) may endanger people, so the signed, public
``incident_reported`` event carries only ``details.sha256 = sha256_hex(jcs(details))``. Whoever is shown the
details (an authorised reader) checks them with :func:`commitment` against the signed event. The random
``salt`` keeps anyone from confirming a guessed description by hashing it.
"""

from __future__ import annotations

import os
import re
from typing import Any

from verification.canonical import NonCanonicalValue, jcs
from verification.encoding import b64url_decode, b64url_encode, sha256_hex

__all__ = ["DetailsError", "commitment", "new_details"]

MAX_TEXT = 4000
_COORDINATE = re.compile(r"-?[0-9]{1,3}(\.[0-9]{1,7})?", re.ASCII)


class DetailsError(ValueError):
    """The object is not a sealed-details document of section 16.2."""


def _text(value: Any, name: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT:
        raise DetailsError(f"{name} must be a string of 1 to {MAX_TEXT} characters")


def _gps(value: Any) -> None:
    if not isinstance(value, dict) or set(value) != {"lat", "lon"}:
        raise DetailsError("gps must be {lat, lon}")
    for name, limit in (("lat", 90), ("lon", 180)):
        text = value[name]
        if not isinstance(text, str) or not _COORDINATE.fullmatch(text) or abs(float(text)) > limit:
            raise DetailsError(f"gps.{name} must be a decimal string within [-{limit}, {limit}]")


def commitment(details: Any) -> str:
    """Check ``details`` against section 16.2 and return ``sha256_hex(jcs(details))``."""
    if not isinstance(details, dict):
        raise DetailsError("details must be a JSON object")
    allowed = {"v", "salt", "description", "gps", "notes"}
    if not {"v", "salt", "description"} <= set(details) <= allowed:
        raise DetailsError("details has members v, salt, description and optionally gps, notes")
    if details["v"] != 1 or isinstance(details["v"], bool):
        raise DetailsError("details.v must be 1")
    try:
        salt = b64url_decode(details["salt"]) if isinstance(details["salt"], str) else b""
    except ValueError:
        salt = b""
    if not 16 <= len(salt) <= 64:
        raise DetailsError("details.salt must be base64url of 16 to 64 bytes")
    _text(details["description"], "description")
    if "gps" in details:
        _gps(details["gps"])
    if "notes" in details:
        _text(details["notes"], "notes")
    try:
        return sha256_hex(jcs(details))
    except NonCanonicalValue as exc:
        raise DetailsError(f"details is outside the canonical subset: {exc}") from None


def new_details(description: str, *, gps: dict[str, str] | None = None, notes: str | None = None) -> dict[str, Any]:
    """A sealed-details document with a fresh random salt (for a reporter's client)."""
    details: dict[str, Any] = {"v": 1, "salt": b64url_encode(os.urandom(16)), "description": description}
    if gps is not None:
        details["gps"] = gps
    if notes is not None:
        details["notes"] = notes
    commitment(details)
    return details
