"""The verifiable log, for anyone to check (docs/protocol.md sections 10-12): no credentials needed.

    GET /v1/log/key                     the log's verifier key (C2SP vkey) and the operator's root key
    GET /v1/log/checkpoint              the latest signed checkpoint (C2SP tlog-checkpoint note, text/plain)
    GET /v1/log/checkpoints             every signed checkpoint, by size
    GET /v1/log/entries                 the raw entries, one per line, byte for byte
    GET /v1/log/leaf-hashes             the stored leaf hashes, 32 bytes each (to locate a damaged entry)
    GET /v1/log/proof/inclusion         RFC 9162 inclusion proof
    GET /v1/log/proof/consistency       RFC 9162 consistency proof
    GET /v1/projection                  the custody projection's position and digest (to compare with a replay)
"""

from __future__ import annotations

import json

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.read_routing import reading
from ledger.service import Ledger
from verification.encoding import b64url_encode

router = APIRouter(tags=["log"], dependencies=PARAMETER_CHECKS)

MAX_ENTRIES = 1000
MAX_LEAF_HASHES = 100_000
NDJSON = "application/x-ndjson"


def _ledger(request: Request) -> Ledger:
    return reading(request)  # public reads: from the store api/read_routing.py chose


@router.get("/v1/log/key", summary="The log's verifier key and the operator's root key")
def log_key(request: Request) -> Any:
    ledger = _ledger(request)
    identity = ledger.identity()
    params = ledger.registry().ledger
    return {
        "origin": identity.origin,
        "vkey": identity.vkey,
        "log_public_key": b64url_encode(identity.public_key_raw),
        "operator": params.operator if params else None,
        "root_key": params.root_key if params else None,
    }


@router.get(
    "/v1/log/checkpoint",
    summary="The latest signed checkpoint",
    description="A C2SP tlog-checkpoint, signed as a C2SP signed-note by the log key (`GET /v1/log/key`).",
    response_class=PlainTextResponse,
    responses=responses(404),
)
def checkpoint(request: Request) -> Any:
    return checkpoint_answer(_ledger(request))


def checkpoint_answer(ledger: Ledger) -> Response:
    """The answer of `GET /v1/log/checkpoint` (also served by api/lean_routes.py)."""
    latest = ledger.store.latest_checkpoint()
    if latest is None:
        return problem(404, "log.no_checkpoint", "no checkpoint has been signed yet; try again in a second")
    return PlainTextResponse(latest.note, headers={"Cache-Control": "no-cache"})


@router.get("/v1/log/checkpoints", summary="Every signed checkpoint, by increasing size", responses=responses(400))
def checkpoints(request: Request, after_size: int = Query(-1, ge=-1, le=2**63 - 1),
                limit: int = Query(100, ge=1, le=1000)) -> Any:
    found = _ledger(request).store.checkpoints(after_size=after_size, limit=limit)
    return {"checkpoints": [{"size": c.size, "root": c.root.hex(), "signed_at": c.signed_at, "note": c.note}
                            for c in found]}


def _range(ledger: Ledger, start: int, end: int | None, most: int) -> tuple[int, int, bool] | Any:
    """(start, end, cut): the range to serve, and whether the cap `most` cut it short of what was asked (of
    `end`, or without `end` of the log's end); or a 400 `log.range` problem."""
    size = ledger.store.tree_size()
    wanted = size if end is None else min(size, end)
    end = min(wanted, start + most)
    if start > size:
        return problem(400, "log.range", f"start {start} is beyond the end of the log ({size} entries)",
                       field="/start", size=size)
    if end < start:
        return problem(400, "log.range", f"end {end} is before start {start}", field="/end")
    return start, end, end < wanted


def _page_headers(request: Request, start: int, count: int, cut: bool, asked_end: int | None) -> dict[str, str]:
    """`X-Log-Start` and `X-Log-Count` (what the answer holds) and, when the cap cut it, the link to the rest
    (docs/protocol.md 11.3: fewer items than asked and no `next` link means the log ends there)."""
    headers = {"X-Log-Start": str(start), "X-Log-Count": str(count)}
    if cut and count > 0:
        rest = {"start": start + count} if asked_end is None else {"start": start + count, "end": asked_end}
        headers["Link"] = f'<{request.url.path}?{urlencode(rest)}>; rel="next"'
    return headers


@router.get(
    "/v1/log/entries",
    summary="Raw log entries",
    description=(
        f"Entries [start, end) in order, at most {MAX_ENTRIES} per request: each line is one entry's exact bytes "
        "(canonical JSON, which contains no newline) followed by `\\n`. Leaf i of the Merkle tree is "
        "SHA-256(0x00 || line i without its newline). `X-Log-Start` and `X-Log-Count` say which entries the "
        "answer holds; when the cap cut it, `Link: <...>; rel=\"next\"` asks for the rest. Fewer lines than "
        "asked and no next link: the log ends there."
    ),
    response_class=Response,
    responses={200: {"content": {NDJSON: {}}}, **responses(400)},
)
async def entries(request: Request, start: int = Query(0, ge=0), end: int | None = Query(None, ge=0)) -> Any:
    ledger = _ledger(request)
    bounds = _range(ledger, start, end, MAX_ENTRIES)
    if not isinstance(bounds, tuple):
        return bounds
    first, last, cut = bounds
    stored = await run_in_threadpool(ledger.store.read_range, first, last)
    body = b"".join(event.data + b"\n" for event in stored)
    return Response(body, media_type=NDJSON, headers=_page_headers(request, first, len(stored), cut, end))


@router.get(
    "/v1/log/leaf-hashes",
    summary="Stored leaf hashes",
    description=(
        f"The Merkle tree's leaf hashes [start, end) as stored, 32 bytes each, at most {MAX_LEAF_HASHES} per request. "
        "They are authentic if they reproduce a signed root; an auditor whose recomputed root differs uses them to "
        "name the first entry that does not match. Paged like the entries (`X-Log-Count`, `Link` rel=\"next\")."
    ),
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **responses(400)},
)
async def leaf_hashes(request: Request, start: int = Query(0, ge=0), end: int | None = Query(None, ge=0)) -> Any:
    ledger = _ledger(request)
    bounds = _range(ledger, start, end, MAX_LEAF_HASHES)
    if not isinstance(bounds, tuple):
        return bounds
    first, last, cut = bounds
    hashes = await run_in_threadpool(ledger.store.tree.leaf_hashes, first, last)  # type: ignore[attr-defined]
    return Response(b"".join(hashes), media_type="application/octet-stream",
                    headers=_page_headers(request, first, len(hashes), cut, end))


def _json(content: dict[str, Any]) -> Response:
    """The bytes FastAPI's JSONResponse would send for `content` (plain str/int/list values), without its
    `jsonable_encoder` walk over them: a proof answer is a few short strings (issue 13)."""
    return Response(json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")),
                    media_type="application/json")


def _hashes_json(hashes: list[bytes]) -> str:
    """`"hashes":[...]}`, the end of a proof object, as `_json` writes hex strings (hex needs no escaping)."""
    return '"hashes":[' + ",".join(['"' + h.hex() + '"' for h in hashes]) + "]}"


def _inclusion_json(index: int, size: int, leaf: bytes, proof: list[bytes]) -> Response:
    """`_json({"index": index, "size": size, "leaf_hash": leaf.hex(), "hashes": [...]})`, the same bytes
    (tests/unit/test_proof_json.py), written directly: a proof is served for every request (issue 13)."""
    return Response(f'{{"index":{index:d},"size":{size:d},"leaf_hash":"{leaf.hex()}",' + _hashes_json(proof),
                    media_type="application/json")


def _consistency_json(old: int, new: int, proof: list[bytes]) -> Response:
    """`_json({"old": old, "new": new, "hashes": [...]})`, the same bytes, written directly."""
    return Response(f'{{"old":{old:d},"new":{new:d},' + _hashes_json(proof), media_type="application/json")


def _tree_size_problem(ledger: Ledger, size: int, field: str) -> Any:
    tree_size = ledger.store.tree_size()
    if size > tree_size:
        return problem(400, "log.range", f"the log has {tree_size} entries, not {size}", field=field, size=tree_size)
    return None


@router.get(
    "/v1/log/proof/inclusion",
    summary="RFC 9162 inclusion proof of one entry",
    description="The proof that entry `index` is leaf `index` of the tree of `size` entries (hashes in hex, leaf first).",
    responses=responses(400),
)
def inclusion_proof(request: Request, index: int = Query(ge=0), size: int = Query(ge=1)) -> Any:
    # a plain function: FastAPI runs it in its thread pool, so the store is never read on the event loop
    return inclusion_answer(_ledger(request), index, size)


def inclusion_answer(ledger: Ledger, index: int, size: int) -> Response:
    """The answer of `GET /v1/log/proof/inclusion` for valid parameters (also served by api/lean_routes.py)."""
    if index >= size:
        return problem(400, "log.range", f"index {index} is not in a tree of size {size}", field="/index")
    found = ledger.store.tree.leaf_and_inclusion_proof_within(index, size)  # type: ignore[attr-defined]
    if found is None:  # the tree was smaller than `size`: only then is its size read, for the answer
        if (bad := _tree_size_problem(ledger, size, "/size")) is not None:
            return bad
        found = ledger.store.tree.leaf_and_inclusion_proof(index, size)  # type: ignore[attr-defined]  # it grew since
    leaf, proof = found
    return _inclusion_json(index, size, leaf, proof)


@router.get(
    "/v1/log/proof/consistency",
    summary="RFC 9162 consistency proof between two tree sizes",
    description="The proof that the tree of `old` entries is a prefix of the tree of `new` entries (hashes in hex).",
    responses=responses(400),
)
def consistency_proof(request: Request, old: int = Query(ge=0), new: int = Query(ge=0)) -> Any:
    return consistency_answer(_ledger(request), old, new)


def consistency_answer(ledger: Ledger, old: int, new: int) -> Response:
    """The answer of `GET /v1/log/proof/consistency` for valid parameters (also served by api/lean_routes.py)."""
    if old > new:
        return problem(400, "log.range", f"old size {old} is larger than new size {new}", field="/old")
    proof = ledger.store.tree.consistency_proof_within(old, new)  # type: ignore[attr-defined]
    if proof is None:
        if (bad := _tree_size_problem(ledger, new, "/new")) is not None:
            return bad
        proof = ledger.store.tree.consistency_proof(old, new)  # type: ignore[attr-defined]  # it grew since
    return _consistency_json(old, new, proof)


@router.get(
    "/v1/projection",
    summary="The custody projection's position and digest",
    description=(
        "`position` = how many log entries the projection has folded; `digest` = SHA-256 over every tag's custody "
        "state (docs/protocol.md section 10). An auditor replaying the first `position` entries must find the "
        "same digest."
    ),
)
async def projection(request: Request) -> Any:
    ledger = _ledger(request)
    projection = ledger.projection or ledger.start_projection(follow=False)
    return await run_in_threadpool(projection.summary)
