"""Reading request bodies: size limits, media type, and the protocol's strict JSON parser."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from domain.errors import RuleViolation
from verification.canonical import MalformedJSON, parse_json

MAX_EVENT_BYTES = 1 << 20  # 1 MiB: a tags_issued event with 10,000 explicit ids is about 200 KB


class BadBody(Exception):
    def __init__(self, status: int, rule: str, detail: str):
        super().__init__(detail)
        self.status, self.rule, self.detail = status, rule, detail


async def read_json(request: Request, limit: int = MAX_EVENT_BYTES) -> Any:
    content_type, declared = _two_headers(request)
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media not in {"application/json", "application/*+json"} and not media.endswith("+json"):
        raise BadBody(415, "request.media_type", f"send application/json, not {media}")
    raw = await read_bytes(request, limit, declared)
    try:
        return parse_json(raw)
    except MalformedJSON as exc:
        raise BadBody(400, "request.malformed_json", f"the body is not protocol JSON: {exc}") from None


def _two_headers(request: Request) -> tuple[str | None, str | None]:
    """`Content-Type` and `Content-Length` (the first of each, as `request.headers.get` reads them) in one pass over
    the raw headers, without building `request.headers` (one request per envelope: issue 13)."""
    content_type = content_length = None
    for name, value in request.scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"content-length" and content_length is None:
            content_length = value.decode("latin-1")
    return content_type, content_length


_UNREAD: Any = object()


async def read_bytes(request: Request, limit: int, declared: Any = _UNREAD) -> bytes:
    """The body, never more than `limit` bytes of it held: 413 `request.too_large` beyond (announced or not).
    `declared`: its `Content-Length`, when the caller has read it."""
    if declared is _UNREAD:
        declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadBody(413, "request.too_large", f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadBody(413, "request.too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def envelope_or_violation(obj: Any) -> Any:
    if not isinstance(obj, dict):
        raise RuleViolation("envelope.malformed", "", "an envelope is a JSON object {body, sig}")
    return obj
