"""The log as C2SP tlog-tiles, served by the running ledger under the prefix ``/tiles`` (docs/protocol.md section 19).

    GET /tiles/checkpoint                           the latest signed checkpoint (text/plain, not cached)
    GET /tiles/tile/{L}/{N}[.p/{W}]                 a hash tile, read from the stored tree (immutable)
    GET /tiles/tile/entries/{N}[.p/{W}]             an entry bundle, uint16 length prefixes (the specification's)
    GET /tiles/tagledger/entries/{N}[.p/{W}]        tagledger's bundle (uint32), only where an entry exceeds 64 KiB

The same bytes as `tagledger tiles sync DIR` writes, so a CDN can pull them from here as well as from a static
mirror. A tile is served for any tree size up to the stored tree's: every one of them is a fixed range of stored
hashes or entries that never changes.
"""

from __future__ import annotations

import gzip
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.read_routing import reading
from ledger.service import Ledger
from ledger.tiles import TileReader
from verification.tiles import MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH, Tile, parse_index_path

router = APIRouter(prefix="/tiles", tags=["tiles"], dependencies=PARAMETER_CHECKS)

OCTETS = "application/octet-stream"
FULL_CACHE = "public, max-age=31536000, immutable"
PARTIAL_CACHE = "public, max-age=60"
_PATH = re.compile(r"(?P<index>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<width>[1-9][0-9]{0,2}))?")
_TILE_ANSWERS: dict[int | str, dict[str, Any]] = {200: {"content": {OCTETS: {}}}, **responses(400, 404)}


def _tile(level: int, path: str) -> Tile | None:
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    width = int(match["width"] or TILE_WIDTH)
    if match["width"] and width >= TILE_WIDTH:  # a partial tile has 1 to 255 hashes
        return None
    try:
        return Tile(level, parse_index_path(match["index"]), width)
    except ValueError:
        return None


def _bad_path(path: str) -> Any:
    return problem(400, "tiles.path", f"{path!r} is not a tile path: <N> in 3-digit elements, all but the last "
                   "prefixed with x (x001/x234/067), then .p/<W> (1 to 255) for a partial tile", field="/path")


def _beyond(ledger: Ledger, tile: Tile) -> Any:
    size = ledger.store.tree_size()
    units = size >> (TILE_HEIGHT * tile.level)
    if tile.first_node + tile.width > units:
        return problem(404, "tiles.not_found", f"the log ({size} entries) has no {tile.path} yet", size=size)
    return None


def _octets(request: Request, data: bytes, tile: Tile, *, compress: bool = False) -> Response:
    headers = {"Cache-Control": FULL_CACHE if tile.full else PARTIAL_CACHE}
    if compress:
        headers["Vary"] = "Accept-Encoding"
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            data = gzip.compress(data, 6)
            headers["Content-Encoding"] = "gzip"
    return Response(data, media_type=OCTETS, headers=headers)


@router.get("/checkpoint", summary="The latest signed checkpoint (tlog-tiles)", response_class=PlainTextResponse,
            responses=responses(404))
def checkpoint(request: Request) -> Any:
    latest = reading(request).store.latest_checkpoint()
    if latest is None:
        return problem(404, "log.no_checkpoint", "no checkpoint has been signed yet; try again in a second")
    return Response(latest.note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"})


def _bundle(request: Request, path: str, *, tagledger: bool) -> Any:
    ledger: Ledger = reading(request)
    tile = _tile(0, path)
    if tile is None:
        return _bad_path(path)
    if (missing := _beyond(ledger, tile)) is not None:
        return missing
    bundle = TileReader(ledger.store).bundle(tile)
    wanted = tile.tagledger_bundle_path if tagledger else tile.bundle_path
    if bundle.path != wanted:
        why = ("every entry fits the specification's bundle" if tagledger
               else "an entry is longer than 65,535 bytes")
        return problem(404, "tiles.not_found", f"{wanted} is not served: {why}; see {bundle.path}",
                       location=f"/tiles/{bundle.path}")
    return _octets(request, bundle.data, tile, compress=True)


@router.get("/tile/entries/{path:path}", summary="An entry bundle (tlog-tiles, uint16 length prefixes)",
            responses=_TILE_ANSWERS)
def entry_bundle(request: Request, path: str) -> Any:
    return _bundle(request, path, tagledger=False)


@router.get("/tagledger/entries/{path:path}", summary="tagledger's entry bundle (uint32), for entries over 64 KiB",
            responses=_TILE_ANSWERS)
def tagledger_bundle(request: Request, path: str) -> Any:
    return _bundle(request, path, tagledger=True)


@router.get("/tile/{level}/{path:path}", summary="A hash tile (tlog-tiles)", responses=_TILE_ANSWERS)
def hash_tile(request: Request, level: str, path: str) -> Any:
    if not re.fullmatch(r"0|[1-9][0-9]*", level) or int(level) > MAX_TILE_LEVEL:
        return problem(400, "tiles.path", f"tile level {level!r} is not a number from 0 to {MAX_TILE_LEVEL} "
                       "without leading zeros", field="/level")
    tile = _tile(int(level), path)
    if tile is None:
        return _bad_path(path)
    ledger: Ledger = reading(request)
    if (missing := _beyond(ledger, tile)) is not None:
        return missing
    return _octets(request, TileReader(ledger.store).hash_tile(tile), tile)
