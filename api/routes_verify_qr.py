"""POST /v1/verify/qr: verify a tag from a photo of its QR label (docs/_drafts/verify-qr.md).

The body is the photo itself (PNG or JPEG). `ledger.photo` decodes it with bounded memory and finds the QR codes
(zxing-cpp); the first that is a label of this ledger (docs/protocol.md section 13) names the tag, whose label
signature is checked with the operator's keys (`verification.label`). The answer is exactly that of
`GET /v1/tags/{tag_id}` plus a member `label`, which says whether the label is the operator's.

Decoding runs in worker threads, at most `MAX_CONCURRENT_DECODES` at a time per process; at most `MAX_PENDING`
photos are held (being received, waiting or decoding) and any more are turned away with 503 and `Retry-After`,
so that a flood of photos cannot exhaust the memory.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from api import routes_tags
from api.body import BadBody
from api.parameters import PARAMETER_CHECKS
from api.problems import MEDIA_TYPE, problem, responses
from api.schemas import TagViewOut
from domain.registry import Registry
from ledger import photo
from ledger.service import Ledger
from verification.label import LabelError, LabelPayload, parse_label_url, verify_label

router = APIRouter(tags=["verify"], dependencies=PARAMETER_CHECKS)

MAX_CONCURRENT_DECODES = 2
"""Photos decoded at the same time by one process (each needs up to about 140 MiB, see ledger.photo)."""
MAX_PENDING = 8
"""Photos held by one process at once (received, waiting for a decoder or being decoded); more: 503."""
RETRY_AFTER_S = 2
ECHO_CHARS = 200
"""A foreign QR code's text is echoed up to this many characters."""
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
JPEG_TYPES = {"image/jpeg", "image/jpg", "image/pjpeg"}
ACCEPTED_TYPES = {"image/png", "application/octet-stream", *JPEG_TYPES}
BINARY = {"schema": {"type": "string", "format": "binary"}}


class LabelCheckOut(BaseModel):
    """The QR label found in the photo, and whether the ledger's operator signed it."""

    payload: str
    tag: str
    kid: str
    signature_valid: bool
    signer: str | None
    problem: str | None
    base_url_matches: bool
    key_revoked_from: str | None = None


class VerifyQrOut(TagViewOut):
    """`GET /v1/tags/{tag_id}` for the tag named by the photographed label, with the label's check."""

    label: LabelCheckOut


@dataclass
class _Gate:
    """Per application (so per event loop): decoder slots and the count of photos held."""

    slots: asyncio.Semaphore
    held: int = 0


def _gate(request: Request) -> _Gate:
    gate = getattr(request.app.state, "verify_qr_gate", None)
    if gate is None:  # created on first use, in the application's event loop
        gate = request.app.state.verify_qr_gate = _Gate(asyncio.Semaphore(MAX_CONCURRENT_DECODES))
    return gate


def _public_base_url(request: Request) -> str:
    return (getattr(request.app.state, "public_base_url", None) or DEFAULT_PUBLIC_URL).rstrip("/")


@router.post(
    "/v1/verify/qr",
    response_model=VerifyQrOut,
    summary="Verify a tag from a photo of its QR label",
    description=(
        "Send the photo itself as the body (`image/jpeg` or `image/png`; `application/octet-stream` is read by "
        "its first bytes), at most 10 MiB and 40 megapixels. The QR code is decoded on the server (rotated, "
        "slightly blurred or oblique photos are fine). The answer is exactly `GET /v1/tags/{tag_id}` for the tag "
        "the label names, plus `label`: its URL, key id, and `signature_valid` (false for a forged label: the "
        "verdict then says so and is not authentic). 422 `qr.not_found` if no QR code is found, 422 "
        "`qr.foreign` if none is a label of this ledger; 404 (verdict `unknown`) for a well-formed label of a "
        "tag never issued."
    ),
    responses={**responses(400, 404, 413, 415, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {
        "image/jpeg": BINARY, "image/png": BINARY, "application/octet-stream": BINARY}}},
)
async def verify_qr(request: Request) -> Any:
    gate = _gate(request)
    if gate.held >= MAX_PENDING:
        busy = problem(503, "verify.busy", "too many photos are being checked right now; retry in a few seconds",
                       title="Busy")
        busy.headers["Retry-After"] = str(RETRY_AFTER_S)
        return busy
    gate.held += 1
    try:
        try:
            data = await _read_photo(request)
        except BadBody as bad:
            return problem(bad.status, bad.rule, bad.detail)
        ledger: Ledger = request.app.state.ledger
        base_url = _public_base_url(request)
        async with gate.slots:
            try:
                found = await run_in_threadpool(_scan, ledger, data, base_url)
            except photo.PhotoError as error:
                return problem(error.status, error.rule, error.detail)
        del data
    finally:
        gate.held -= 1
    if isinstance(found, JSONResponse):
        return found
    return await _answer(request, found)


# --- the body --------------------------------------------------------------------------------------


async def _read_photo(request: Request) -> bytes:
    """The body, checked for its media type and size while it is read (never more than the limit is held)."""
    header = request.headers.get("content-type")
    media = (header or "").split(";")[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        sent = f"not {media}" if media else "and say so in Content-Type"
        raise BadBody(415, "request.media_type",
                      f"send the photo itself as image/jpeg or image/png (or application/octet-stream), {sent}")
    limit = photo.MAX_PHOTO_BYTES
    too_large = BadBody(413, "request.too_large", f"the photo is larger than {limit} bytes (10 MiB)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadBody(400, "request.incomplete", "the client went away before the whole photo was sent") from None
    data = b"".join(chunks)
    chunks.clear()
    if not data:
        raise BadBody(400, "photo.not_an_image", "the body is empty: send the photo itself")
    if photo.sniff(data) is None:
        raise BadBody(400, "photo.not_an_image", f"the body ({media}) is not a PNG or JPEG image")
    return data


# --- decoding and judging (in a worker thread) -----------------------------------------------------


@dataclass
class _Found:
    payload: LabelPayload
    text: str
    error: LabelError | None
    base_url_matches: bool
    signer: str | None
    key_revoked_from: str | None


def _operator_keys(registry: Registry) -> tuple[str, str, dict[str, bytes]]:
    """(origin, operator org id, every key of the operator, revoked ones included: a label printed before a
    revocation stays the operator's; the answer says when the key was revoked)."""
    params = registry.ledger
    if params is None:
        raise LookupError("this ledger has no genesis entry yet")
    operator = registry.orgs.get(params.operator)
    kids = operator.kids if operator is not None else []
    return params.log_key_name, params.operator, {
        kid: registry.keys[kid].public_key_raw for kid in kids if kid in registry.keys}


def _same_base(a: str, b: str) -> bool:
    """Equal base URLs (scheme and host compared without regard to case)."""
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme.lower(), x.netloc.lower(), x.path.rstrip("/")) == (y.scheme.lower(), y.netloc.lower(),
                                                                       y.path.rstrip("/"))


def _scan(ledger: Ledger, data: bytes, base_url: str) -> _Found | JSONResponse:
    registry = ledger.registry()
    origin, operator, keys = _operator_keys(registry)
    judged: dict[str, _Found | LabelError] = {}

    def judge(text: str) -> _Found | LabelError:
        if text not in judged:
            judged[text] = _judge(text, base_url, origin, operator, keys, registry)
        return judged[text]

    def ours(text: str) -> bool:
        """A label of this ledger: its base URL, or (a label printed under an earlier URL) a valid signature."""
        found = judge(text)
        return isinstance(found, _Found) and (found.base_url_matches or found.error is None)

    scan = photo.scan_photo(data, accept=ours)
    if not scan.texts:
        return problem(422, "qr.not_found",
                       f"no QR code was found in the photo ({scan.size[0]} x {scan.size[1]} {scan.format}): "
                       "photograph the label flat, in focus and filling a good part of the picture",
                       codes=0)
    for text in scan.texts:
        if ours(text):
            return judge(text)  # type: ignore[return-value]
    first = scan.texts[0]
    why = judge(first)
    if isinstance(why, _Found):
        reason = (f"it is a label of another ledger ({why.payload.base_url}), not of this one ({base_url}), and "
                  "its signature is not this ledger's operator's")
    else:
        reason = "it is not a tagledger label URL ({base}/t/{tag_id}?s={kid}.{sig})"
    return problem(422, "qr.foreign",
                   f"the photo holds {len(scan.texts)} QR code(s) but no label of this ledger: the first one "
                   f"reads {_echo(first)!r}; {reason}",
                   decoded=_echo(first), decoded_truncated=len(first) > ECHO_CHARS, codes=len(scan.texts))


def _judge(text: str, base_url: str, origin: str, operator: str, keys: dict[str, bytes],
           registry: Registry) -> _Found | LabelError:
    try:
        payload = parse_label_url(text)
    except LabelError as error:
        return error
    error: LabelError | None = None
    try:
        verify_label(payload, origin, keys)
    except LabelError as failed:
        error = failed
    record = registry.keys.get(payload.kid) if error is None else None
    revoked = record.revoked_effective.isoformat() if record and record.revoked_effective else None
    return _Found(payload, text, error, _same_base(payload.base_url, base_url),
                  operator if error is None else None, revoked)


def _echo(text: str) -> str:
    return text[:ECHO_CHARS] + ("…" if len(text) > ECHO_CHARS else "")


# --- the answer ------------------------------------------------------------------------------------


async def _answer(request: Request, found: _Found) -> Any:
    payload = found.payload
    label = {
        "payload": found.text,
        "tag": payload.tag_id,
        "kid": payload.kid,
        "signature_valid": found.error is None,
        "signer": found.signer,
        "problem": None if found.error is None else found.error.reason,
        "base_url_matches": found.base_url_matches,
        "key_revoked_from": found.key_revoked_from,
    }
    # exactly what GET /v1/tags/{tag_id} answers (the route itself, so that both always agree)
    answer = await routes_tags.get_tag(tag_id=payload.tag_id, request=request, as_of=None)
    if isinstance(answer, JSONResponse):  # 404 (verdict unknown): the problem document, with the label
        document = json.loads(bytes(answer.body))
        document["label"] = label
        if found.error is not None and isinstance(document.get("verdict"), dict):
            document["verdict"] = _forged(document["verdict"], payload.tag_id, found.error)
        return JSONResponse(document, status_code=answer.status_code, media_type=MEDIA_TYPE)
    document = dict(answer)
    if found.error is not None:
        document["verdict"] = _forged(document["verdict"], payload.tag_id, found.error)
    document["label"] = label
    return document


def _forged(verdict: dict[str, Any], tag: str, error: LabelError) -> dict[str, Any]:
    """The verdict for a label that the operator did not sign: never authentic, and saying so first."""
    why = {
        "unknown_key": "it is signed with a key that is not the operator's",
        "bad_signature": "its signature does not match the tag number",
    }.get(error.reason, "it is not a well-formed label")
    return {
        **verdict,
        "authentic": False,
        "label_forged": True,
        "summary": (f"FORGED LABEL: this QR label was not issued by the ledger's operator ({why}). Do not accept "
                    f"the material on the strength of this label. What the ledger records for tag {tag}: "
                    f"{verdict.get('summary', '')}"),
    }
