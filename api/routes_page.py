"""GET /t/{tag_id}: the public verification page, for a person holding a bag (or a photo of its QR label).

Server-rendered HTML (jinja2, autoescaped), no JavaScript, one small response with its CSS inline, in English,
French or Swahili (`Accept-Language`, `?lang=en|fr|sw` wins; api/catalogue/ has one file per language). It shows the
same data as `GET /v1/tags/{tag_id}` (ledger.views.tag_document): a verdict, the origin, the custody timeline, the
lot relations, flags, and a "check it yourself" section with the signatures and proofs. `?s=` (the signature of a QR label,
docs/protocol.md) is checked with verification.label. `?as_of=N` shows the tag as the log stood at size N.

Answers: 200 (a tag), 404 (never issued: a full page that says so), 400 (not a tag id, or a bad parameter),
503 (the store did not answer). Every answer is HTML.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote, urlencode

from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.i18n import Messages, language_names, negotiate
from api.page import maybe_gzip, render, tag_page_model
from api.routes_tags import TAG_ID
from api.read_routing import reading
from ledger.service import Ledger
from ledger.views import tag_document

log = logging.getLogger("tagledger.page")
router = APIRouter()

MAX_AS_OF = 2**63 - 1
MAX_LABEL_SIGNATURE = 512  # characters of ?s=; a real one is about 100
# The page's state changes when events arrive (a new holder, a void): caches may keep it briefly. A view `as_of`
# a past log size is history and may be kept longer; an unknown tag may be issued any time.
CACHE_CURRENT = "public, max-age=30"
CACHE_HISTORY = "public, max-age=3600"
CACHE_ERROR = "public, max-age=30"
SECURITY_HEADERS = {
    # Nothing but the inline <style> may load or run: an injected <script> would not run even if escaping failed.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _other_languages(request: Request, lang: str) -> list[dict[str, str]]:
    """The same page in each of the other languages (keeps ?s= and ?as_of=): code, name (in itself) and link."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return [{**other, "href": request.url.path + "?" + urlencode(kept + [("lang", other["code"])])}
            for other in language_names() if other["code"] != lang]


def _html(request: Request, status: int, template: str, t: Messages, cache: str, **context: Any) -> Response:
    body = render(template, t=t, languages=_other_languages(request, t.lang), **context).encode("utf-8")
    payload, compressed = maybe_gzip(body, request.headers.get("accept-encoding"))
    headers = {
        "Cache-Control": cache,
        "Vary": "Accept-Language, Accept-Encoding",
        "Content-Language": t.lang,
        **SECURITY_HEADERS,
    }
    if compressed:
        headers["Content-Encoding"] = "gzip"
    return Response(payload, status_code=status, media_type="text/html; charset=utf-8", headers=headers)


def _check_label(ledger: Ledger, tag: str, signature: str) -> dict[str, Any]:
    """Check a QR label's `?s=kid.sig` over `tag` with the operator's keys (verification.label).

    `valid`, or `invalid` (malformed, not an operator key, or a signature that does not verify). A label signed
    with an operator key revoked since is still the operator's; the page says when the key was revoked.
    """
    try:
        from verification import label as labels
    except ImportError:  # pragma: no cover - the module ships with the ledger
        return {"status": "unchecked", "kid": None, "revoked": None}
    registry = ledger.registry()
    params = registry.ledger
    operator = registry.orgs.get(params.operator) if params is not None else None
    if params is None or operator is None:
        return {"status": "unchecked", "kid": None, "revoked": None}
    keys = {kid: registry.keys[kid].public_key_raw for kid in operator.kids if kid in registry.keys}
    try:
        payload = labels.parse_label(tag, signature)
        labels.verify_label(payload, params.log_key_name, keys)
    except labels.LabelError as error:
        log.info("label for %s does not verify (%s): %s", tag, error.reason, error.detail)
        return {"status": "invalid", "kid": None, "revoked": None}
    record = registry.keys[payload.kid]
    revoked = record.revoked_effective.isoformat()[:10] if record.revoked_effective is not None else None
    return {"status": "valid", "kid": payload.kid, "revoked": revoked}


# Not in the OpenAPI document: it describes the JSON API (whose errors are all problem+json); this page is for
# people, and its data is GET /v1/tags/{tag_id}.
@router.get("/t/{tag_id:path}", include_in_schema=False)
async def tag_page(tag_id: str, request: Request) -> Response:
    """The page of `tag_id` (`?lang=`, `?s=`, `?as_of=`), or, for `/t/?tag=…` (the form), a redirect to it."""
    query = request.query_params
    lang_param = query.get("lang")
    lang = negotiate(request.headers.get("accept-language"), lang_param)
    t = Messages(lang)
    # links to other tags keep an explicit language choice (otherwise Accept-Language decides again)
    keep_lang = lang if lang_param and lang_param.strip().lower().split("-")[0] == lang else None

    if tag_id == "" and query.get("tag") is not None:  # the "check another tag" form: /t/?tag=kal-000001
        wanted = query["tag"].strip().upper() if query["tag"].isascii() else query["tag"]
        target = "/t/" + quote(wanted[:100], safe="")
        if keep_lang:
            target += "?" + urlencode({"lang": keep_lang})
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": CACHE_HISTORY})

    normalised = tag_id.strip().upper() if tag_id.isascii() else tag_id
    if not TAG_ID.fullmatch(normalised):
        return _html(request, 400, "message.html", t, CACHE_ERROR, tone="bad", mark="✕",
                     title=t("bad_title"), detail=t("bad_detail", tag=tag_id[:80]), tag=None, label=None)

    as_of: int | None = None
    if query.get("as_of") not in (None, ""):
        text = query["as_of"].strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19 and 1 <= int(text) <= MAX_AS_OF):
            return _html(request, 400, "message.html", t, CACHE_ERROR, tone="bad", mark="✕",
                         title=t("bad_query_title"), detail=t("bad_query", detail="as_of"), tag=None, label=None)
        as_of = int(text)
    signature = query.get("s")
    if signature is not None and len(signature) > MAX_LABEL_SIGNATURE:
        signature = signature[:MAX_LABEL_SIGNATURE]  # cannot be valid; still answered as an invalid label

    ledger: Ledger = reading(request)

    def load() -> tuple[dict[str, Any] | None, Any, dict[str, Any] | None]:
        view = ledger.tag(normalised, as_of=as_of)
        registry = view.registry if view is not None and view.registry is not None else ledger.registry()
        label = _check_label(ledger, normalised, signature) if signature is not None else None
        return (None if view is None else tag_document(view, registry)), registry, label

    try:
        document, registry, label = await run_in_threadpool(load)
    except (PersistenceError, asyncio.TimeoutError, TimeoutError) as error:
        log.error("verification page for %s: the store did not answer: %s", normalised, error)
        return _html(request, 503, "message.html", t, "no-store", tone="warn", mark="!",
                     title=t("unavailable_title"), detail=t("unavailable_detail"), tag=normalised, label=None)

    if document is None:
        return _html(request, 404, "message.html", t, CACHE_ERROR, tone="bad", mark="✕",
                     title=t("verdict_unknown"), detail=t("verdict_unknown_detail", tag=normalised),
                     hint=t("verdict_unknown_hint"), tag=normalised, label=label)

    model = tag_page_model(document, registry=registry, t=t, lang_param=keep_lang, label=label, as_of=as_of,
                           base_url=str(request.base_url).rstrip("/"))
    return _html(request, 200, "tag.html", t, CACHE_HISTORY if as_of is not None else CACHE_CURRENT, page=model,
                 tag=normalised, label=label)


@router.get("/t", include_in_schema=False)
async def tag_page_form(request: Request) -> Response:
    """`/t?tag=…` (the "check another tag" form without the trailing slash)."""
    return await tag_page("", request)
