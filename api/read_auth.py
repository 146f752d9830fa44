"""Signed reads (docs/protocol.md section 16.4), the ledger's side: who is reading, and what they may see.

`authenticate(request, registry, now)` checks the `Authorization: Tagledger-Signature ...` header: the
organisation and its key are registered, the key is valid now, `time` is within 300 s of the ledger's clock, and
the Ed25519 signature over `ledger.client.read_auth.read_message(method, path and query as sent, time)` verifies.
It returns the `Reader`, None without the header, or raises `Unauthenticated` (401 `read.unauthenticated`).

What a reader may then see is a domain rule: `domain.read_access`.
"""

from __future__ import annotations

import re
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Request
from fastapi.responses import JSONResponse

from api.problems import problem
from domain.registry import Registry
from domain.read_access import Reader
from ledger.client.read_auth import MAX_SKEW_SECONDS, SCHEME, read_message
from verification.encoding import EncodingError, decode_signature, parse_time

RULE = "read.unauthenticated"
MAX_HEADER = 1024
_PARAM = re.compile(r'[ \t]*([a-z]+)="([^"\\]*)"[ \t]*', re.ASCII)
_FIELDS = {"org", "key", "time", "sig"}


class Unauthenticated(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail

    def response(self) -> JSONResponse:
        answer = problem(401, RULE, self.detail)
        answer.headers["WWW-Authenticate"] = SCHEME
        return answer


def parse_authorization(value: str) -> dict[str, str]:
    """`Tagledger-Signature org="...", key="...", time="...", sig="..."` -> the four parameters (each exactly
    once, quoted, nothing else; the scheme is case-insensitive as in RFC 9110)."""
    if len(value) > MAX_HEADER:
        raise Unauthenticated("the Authorization header is too long")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise Unauthenticated(f"the Authorization scheme must be {SCHEME}")
    params: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAM.fullmatch(part)
        if match is None:
            raise Unauthenticated(f'{SCHEME} takes org="...", key="...", time="...", sig="..."')
        name, text = match.groups()
        if name in params or name not in _FIELDS:
            raise Unauthenticated(f"{SCHEME}: unexpected or repeated parameter {name!r}")
        params[name] = text
    if set(params) != _FIELDS:
        raise Unauthenticated(f"{SCHEME} needs org, key, time and sig (missing: {', '.join(sorted(_FIELDS - set(params)))})")
    return params


def request_target(request: Request) -> str:
    """The path and query of the request exactly as the client sent them (not decoded, not normalised)."""
    raw = request.scope.get("raw_path") or request.url.path.encode("ascii", "replace")
    query = request.scope.get("query_string") or b""
    try:
        return raw.decode("ascii") + ("?" + query.decode("ascii") if query else "")
    except UnicodeDecodeError:
        raise Unauthenticated("the request target is not ASCII") from None


def authenticate(request: Request, registry: Registry, now: datetime) -> Reader | None:
    """The signed reader of `request`, None if it carries no Authorization header; `Unauthenticated` otherwise."""
    value = request.headers.get("authorization")
    if value is None:
        return None
    params = parse_authorization(value)
    org = registry.orgs.get(params["org"])
    if org is None:
        raise Unauthenticated(f"no organisation {params['org']!r} is registered")
    key = registry.key_of(org.id, params["key"])
    if key is None:
        raise Unauthenticated(f"{params['key']!r} is not a key of {org.id}")
    problem_now = key.problem_at(now)
    if problem_now is not None:
        raise Unauthenticated(f"key {key.kid} is not valid now: {problem_now[1]}")
    try:
        signed_at = parse_time(params["time"])
    except EncodingError:
        raise Unauthenticated("time is not a protocol time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)") from None
    if abs((now - signed_at).total_seconds()) > MAX_SKEW_SECONDS:
        raise Unauthenticated(f"time {params['time']} is more than {MAX_SKEW_SECONDS} s from the ledger's clock")
    try:
        signature = decode_signature(params["sig"])
    except EncodingError:
        raise Unauthenticated("sig is not an Ed25519 signature in base64url") from None
    message = read_message(request.method, request_target(request), params["time"])
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key_raw).verify(signature, message)
    except InvalidSignature:
        raise Unauthenticated("the signature does not verify (sign the method, the path and query as sent, "
                              "and the time)") from None
    return Reader(org.id, org.role)

