"""Signed QR labels (docs/protocol.md section 13): public, no credentials.

    POST /v1/labels                  store labels the operator signed with its own key (all or nothing)
    GET  /v1/tags/{tag_id}/qr.svg    the QR code of the tag's label URL (SVG; ?caption=1 prints the tag id under it)
    GET  /v1/tags/{tag_id}/qr.png    the same as PNG (?scale= pixels per module)
    GET  /v1/labels/sheet.svg        a printable A4 page of labels: ?prefix=&start=&count=&width= or ?tags=A,B
"""

from __future__ import annotations

import os
import re
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.body import BadBody, read_json
from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.read_routing import reading
from ledger.labels import MAX_LABELS_PER_UPLOAD, LabelsRejected, issued, read_labels, store_labels
from ledger.qr import MAX_PNG_SCALE, MAX_SHEET_LABELS, label_sheet_svg, qr_png, qr_svg
from ledger.service import Ledger
from verification.envelope import EnvelopeError, expand_tag_ranges
from verification.label import format_label_url

router = APIRouter(tags=["labels"], dependencies=PARAMETER_CHECKS)

PUBLIC_URL_ENV = "TAGLEDGER_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
MAX_UPLOAD_BYTES = 4 << 20  # 10,000 labels of about 170 bytes each, with room to spare
MAX_LISTED_PROBLEMS = 100
CACHE = "public, max-age=3600"
TAG_ID = re.compile(r"[A-Z0-9][A-Z0-9-]{2,39}")

LABEL_SCHEMA = {
    "type": "object",
    "required": ["labels"],
    "additionalProperties": False,
    "properties": {
        "labels": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LABELS_PER_UPLOAD,
            "items": {
                "type": "object",
                "required": ["tag", "kid", "sig"],
                "additionalProperties": False,
                "properties": {
                    "tag": {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9-]{2,39}$"},
                    "kid": {"type": "string", "pattern": "^[0-9a-f]{16}$",
                            "description": "the key id of the operator key that signed"},
                    "sig": {"type": "string", "pattern": "^[A-Za-z0-9_-]{86}$",
                            "description": "Ed25519 signature over the label message (protocol section 13.1)"},
                },
            },
        }
    },
}


def public_base_url(request: Request) -> str:
    """The ledger's public URL, from `create_app(public_base_url=...)` (else $TAGLEDGER_PUBLIC_URL, else the
    development default)."""
    configured = getattr(request.app.state, "public_base_url", None)
    return (configured or os.environ.get(PUBLIC_URL_ENV) or DEFAULT_PUBLIC_URL).rstrip("/")


def _fix_hint(base: str, tags: list[str]) -> str:
    which = f"--tag {tags[0]}" if len(tags) == 1 else "--prefix PREFIX --start N --count N (or --tag ID ...)"
    return (f"the operator signs labels with its own key and uploads them: `tagledger tags labels --key OPERATOR.pem "
            f"{which} --url {base}` (or POST /v1/labels)")


# --- uploading -------------------------------------------------------------------------------------


@router.post(
    "/v1/labels",
    status_code=201,
    summary="Store labels signed by the operator",
    description=(
        f"Upload up to {MAX_LABELS_PER_UPLOAD} labels `{{tag, kid, sig}}`, each signed by the operator with one of "
        "its own keys (protocol section 13). The ledger checks every one: the tag was issued, `kid` is a key of "
        "the operator organisation and valid now, the signature verifies. All are stored, or none: 422 names "
        "every refused label (`errors`, `field` = `/labels/<i>/...`). Uploading a stored label again is "
        "harmless (200 when nothing new was stored); another signature for a labelled tag is 409 "
        "`label.conflict` (a printed label never changes)."
    ),
    responses={200: {"description": "Every label was stored already"}, **responses(400, 409, 413, 415, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": LABEL_SCHEMA}}}},
)
async def post_labels(request: Request) -> Any:
    ledger: Ledger = request.app.state.ledger
    try:
        body = await read_json(request, limit=MAX_UPLOAD_BYTES)
    except BadBody as bad:
        return problem(bad.status, bad.rule, bad.detail)
    if not isinstance(body, dict) or set(body) != {"labels"} or not isinstance(body["labels"], list):
        return problem(400, "request.invalid", 'send {"labels": [{"tag", "kid", "sig"}, ...]}', field="/labels")
    items = body["labels"]
    if not 1 <= len(items) <= MAX_LABELS_PER_UPLOAD:
        return problem(400, "request.invalid", f"send 1 to {MAX_LABELS_PER_UPLOAD} labels per request",
                       field="/labels")
    try:
        result = await run_in_threadpool(store_labels, ledger, items)
    except LabelsRejected as rejected:
        first = rejected.first
        refused = len(rejected.problems)
        detail = (f"{first.detail}. {refused} of {rejected.total} labels refused; nothing was stored"
                  if refused > 1 or rejected.total > 1 else f"{first.detail}; nothing was stored")
        return problem(rejected.status, first.rule, detail, field=first.field, refused=refused,
                       errors=[p.to_json() for p in rejected.problems[:MAX_LISTED_PROBLEMS]])
    return JSONResponse(result.to_json(), status_code=201 if result.stored else 200)


# --- one tag's QR code -----------------------------------------------------------------------------


def _tag_or_problem(tag_id: str) -> tuple[str | None, Response | None]:
    normalised = tag_id.strip().upper() if tag_id.isascii() else tag_id
    if not TAG_ID.fullmatch(normalised):
        return None, problem(400, "tag.invalid_id", f"{tag_id!r} is not a tag id (A-Z, 0-9 and '-', 3 to 40 "
                                                    "characters)", field="/tag_id")
    return normalised, None


def _label_url(request: Request, tag: str) -> tuple[str | None, Response | None]:
    ledger: Ledger = reading(request)
    if not issued(ledger.store, [tag]):
        return None, problem(404, "tag.unknown", f"no tag {tag} was ever issued by this ledger",
                             verdict={"code": "unknown", "authentic": False,
                                      "summary": "Unknown: this tag was never issued. Treat the material as untraced."})
    label = read_labels(ledger.store, [tag]).get(tag)
    base = public_base_url(request)
    if label is None:
        return None, problem(409, "label.not_signed", f"the operator has not signed the label of tag {tag} yet: "
                                                      + _fix_hint(base, [tag]), tag=tag)
    return format_label_url(base, tag, label.label), None


QR_DESCRIPTION = (
    "The QR code of the tag's label URL `{public_base_url}/t/{tag_id}?s={kid}.{sig}` (protocol section 13): any "
    "phone camera opens the verification page, and an app checks the operator's signature offline first. "
    "Error correction level M, quiet zone of 4 modules. 404 `tag.unknown` if the tag was never issued; 409 "
    "`label.not_signed` until the operator has uploaded the tag's signed label (`POST /v1/labels`)."
)


@router.get(
    "/v1/tags/{tag_id}/qr.svg",
    summary="The QR code of a tag's signed label (SVG)",
    description=QR_DESCRIPTION + " With `caption=1` the tag id is printed under the code (never inside it).",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The QR code"}, **responses(400, 404, 409)},
)
async def get_qr_svg(tag_id: str, request: Request,
                     caption: bool = Query(False, description="print the tag id under the QR code")) -> Any:
    tag, bad = _tag_or_problem(tag_id)
    if bad is not None:
        return bad
    url, bad = await run_in_threadpool(_label_url, request, tag)
    if bad is not None:
        return bad
    svg = await run_in_threadpool(lambda: qr_svg(url, caption=tag if caption else None))
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": CACHE})


@router.get(
    "/v1/tags/{tag_id}/qr.png",
    summary="The QR code of a tag's signed label (PNG)",
    description=QR_DESCRIPTION + " `scale` is the number of pixels per module.",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The QR code"}, **responses(400, 404, 409)},
)
async def get_qr_png(tag_id: str, request: Request,
                     scale: int = Query(8, ge=1, le=MAX_PNG_SCALE, description="pixels per module")) -> Any:
    tag, bad = _tag_or_problem(tag_id)
    if bad is not None:
        return bad
    url, bad = await run_in_threadpool(_label_url, request, tag)
    if bad is not None:
        return bad
    png = await run_in_threadpool(qr_png, url, scale=scale)
    return Response(png, media_type="image/png", headers={"Cache-Control": CACHE})


# --- a printable sheet -----------------------------------------------------------------------------


def _sheet_tags(prefix: str | None, start: int, count: int | None, width: int, tags: str | None
                ) -> tuple[list[str] | None, Response | None]:
    if (tags is None) == (prefix is None and count is None):
        return None, problem(400, "request.invalid", "give either prefix and count (with start and width) or tags",
                             field="/tags")
    if tags is not None:
        listed = [t.strip().upper() for t in tags.split(",") if t.strip()]
        if len(listed) > MAX_SHEET_LABELS:
            return None, problem(400, "label.sheet_too_large", f"a sheet holds at most {MAX_SHEET_LABELS} labels "
                                                               f"({len(listed)} asked): ask for several pages",
                                 field="/tags")
        if not listed:
            return None, problem(400, "request.invalid", "tags lists no tag id", field="/tags")
        for i, tag in enumerate(listed):
            if not TAG_ID.fullmatch(tag):
                return None, problem(400, "tag.invalid_id", f"{tag!r} is not a tag id", field=f"/tags/{i}")
        return listed, None
    if prefix is None or count is None:
        return None, problem(400, "request.invalid", "a range needs prefix and count",
                             field="/prefix" if prefix is None else "/count")
    if count > MAX_SHEET_LABELS:
        return None, problem(400, "label.sheet_too_large", f"a sheet holds at most {MAX_SHEET_LABELS} labels "
                                                           f"({count} asked): ask for several pages", field="/count")
    try:
        return expand_tag_ranges({"ranges": [{"prefix": prefix.upper(), "start": start, "count": count,
                                              "width": width}]}), None
    except EnvelopeError as error:
        last = error.field.rsplit("/", 1)[-1]
        field = "/" + last if last in {"prefix", "start", "count", "width"} else "/prefix"
        return None, problem(400, "request.invalid", f"not a tag range: {error.message}", field=field)


@router.get(
    "/v1/labels/sheet.svg",
    summary="A printable A4 page of signed labels (SVG)",
    description=(
        f"Up to {MAX_SHEET_LABELS} labels on one A4 page, each a QR code with the tag id printed under it, in a grid "
        "(4 x 6 up to 24 labels, 5 x 8 up to 40, 6 x 10 up to 60) with dashed cutting lines; print at actual size. "
        "Name the tags as a range, as `tags_issued` does (`prefix`, `start`, `count`, `width`: `prefix` + "
        "`start + i` zero-padded to `width` digits), or list them (`tags=A,B`). Every tag must be issued (404 "
        "`tag.unknown` lists those that are not) and labelled (409 `label.not_signed`). 400 above "
        f"{MAX_SHEET_LABELS} labels."
    ),
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The page"}, **responses(400, 404, 409)},
)
async def get_sheet(
    request: Request,
    prefix: str | None = Query(None, description="range prefix, e.g. KAL-"),
    start: int = Query(1, ge=0, le=10**12, description="first number of the range"),
    count: int | None = Query(None, ge=1, description=f"labels on the page, 1 to {MAX_SHEET_LABELS}"),
    width: int = Query(6, ge=1, le=12, description="digits of the zero-padded number"),
    tags: str | None = Query(None, description="comma-separated tag ids (instead of a range)"),
) -> Any:
    wanted, bad = _sheet_tags(prefix, start, count, width, tags)
    if bad is not None:
        return bad
    ledger: Ledger = reading(request)

    def build() -> Response:
        known = issued(ledger.store, wanted)
        unknown = [t for t in wanted if t not in known]
        if unknown:
            return problem(404, "tag.unknown", f"{len(unknown)} of these tags were never issued by this ledger: "
                                               f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}",
                           tags=unknown)
        labels = read_labels(ledger.store, wanted)
        unsigned = [t for t in wanted if t not in labels]
        base = public_base_url(request)
        if unsigned:
            return problem(409, "label.not_signed",
                           f"the operator has not signed the labels of {len(unsigned)} of these tags yet "
                           f"({', '.join(unsigned[:10])}{' ...' if len(unsigned) > 10 else ''}): "
                           + _fix_hint(base, unsigned), tags=unsigned)
        items = [(t, format_label_url(base, t, labels[t].label)) for t in wanted]
        title = f"tagledger labels {wanted[0]}" + (f" to {wanted[-1]}" if len(wanted) > 1 else "")
        name = wanted[0] + (f"_{wanted[-1]}" if len(wanted) > 1 else "")
        return Response(label_sheet_svg(items, title=title), media_type="image/svg+xml",
                        headers={"Cache-Control": CACHE,
                                 "Content-Disposition": f'inline; filename="labels_{name}.svg"'})

    return await run_in_threadpool(build)
