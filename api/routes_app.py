"""The phone app (`/app/`): its files, its service worker, the shared message catalogue, and "my custody".

The app is plain files under `api/static/app/` (HTML, CSS, ES modules, vendored libraries): no build step. This
module serves them from memory with an ETag (a phone on 2G revalidates with a 304) and gzip, and generates the
service worker (`/app/sw.js`) with the list of files to keep offline and a version that is the hash of their
contents: change any file and every installed app updates itself on its next start, while the outbox, keys and
cached custody it keeps in IndexedDB stay as they are.

`GET /v1/orgs/{org_id}/custody` gives an organisation's phone what it needs to work offline in one request: the
tags it holds, those on their way to it, those it sent that are still in transit, the tags issued to it that are
not yet on a bag (grouped by the head of their stream, the `tags_issued` event, so that an attachment recorded
offline links to it), and the current state of any tags it asks about (`?tags=`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.i18n import CATALOGUE_DIR, LANGUAGE_CODE, language_names
from api.parameters import PARAMETER_CHECKS
from api.problems import problem, responses
from api.routes_tags import TAG_ID
from ledger.service import Ledger

router = APIRouter()

APP_DIR = Path(__file__).parent / "static" / "app"
SW_TEMPLATE = "sw.js"
DECODER_DIR = "vendor/zxing-wasm/"
"""The WebAssembly QR decoder: loaded only on phones whose browser has no BarcodeDetector, so it is not part of
the shell the service worker installs (the app fetches it once, when online, and the service worker keeps it)."""
SHELL_LIMIT_BYTES = 200 * 1024
"""The app shell (everything the service worker installs) must stay within this many bytes gzipped."""
MAX_LISTED = 1000
MAX_ASKED = 200
TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8", ".wasm": "application/wasm",
         ".json": "application/json", ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml",
         ".png": "image/png", ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
COMPRESSIBLE = (".js", ".mjs", ".css", ".html", ".json", ".webmanifest", ".svg", ".wasm", ".md", ".txt")
SECURITY_HEADERS = {
    # The app runs only its own files (ES modules, the WebAssembly decoder) and talks only to this ledger; the
    # camera's video and images made on the page are blob:/data: URLs.
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                               "img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


@dataclass(frozen=True)
class AppFiles:
    assets: dict[str, Asset]  # URL path -> asset
    shell: list[str]  # what the service worker installs
    version: str

    def shell_gzip_bytes(self) -> int:
        return sum(len(self.assets[path].gzipped or self.assets[path].body) for path in self.shell)


def _asset(body: bytes, suffix: str) -> Asset:
    media_type = TYPES.get(suffix) or mimetypes.guess_type("x" + suffix)[0] or "application/octet-stream"
    gzipped = gzip.compress(body, compresslevel=9, mtime=0) if suffix in COMPRESSIBLE else None
    return Asset(body, gzipped, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@lru_cache(maxsize=1)
def app_files() -> AppFiles:
    """Every file of the app, read once: the static files, the catalogue (`/app/i18n/<lang>.json`, and
    `languages.json`), and the service worker generated with the shell's list and version."""
    assets: dict[str, Asset] = {}
    for path in sorted(APP_DIR.rglob("*")):
        relative = path.relative_to(APP_DIR).as_posix()
        if path.is_file() and relative != SW_TEMPLATE and not path.name.startswith("."):
            assets["/app/" + relative] = _asset(path.read_bytes(), path.suffix)
    for path in sorted(CATALOGUE_DIR.glob("*.json")):
        if LANGUAGE_CODE.match(path.stem):
            assets[f"/app/i18n/{path.name}"] = _asset(path.read_bytes(), ".json")
    assets["/app/i18n/languages.json"] = _asset(json.dumps(language_names(), ensure_ascii=False).encode(), ".json")
    assets["/app/"] = assets.pop("/app/index.html")
    shell = sorted(p for p in assets if not p.startswith("/app/" + DECODER_DIR) and not p.endswith((".md", ".txt"))
                   and "/LICENSE" not in p)
    digest = hashlib.sha256()
    for path in sorted(assets):
        digest.update(path.encode() + b"\0" + assets[path].body + b"\0")
    version = digest.hexdigest()[:16]
    template = (APP_DIR / SW_TEMPLATE).read_text(encoding="utf-8")
    worker = (template.replace('"__VERSION__"', json.dumps(version))
              .replace('"__SHELL__"', json.dumps(shell))
              .replace('"__DECODER__"', json.dumps("/app/" + DECODER_DIR)))
    assets["/app/sw.js"] = _asset(worker.encode("utf-8"), ".js")
    shell.append("/app/sw.js")
    return AppFiles(assets, shell, version)


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in (request.headers.get("accept-encoding") or "").lower()


def _serve(request: Request, path: str) -> Response:
    asset = app_files().assets.get(path)
    if asset is None:
        return problem(404, "not_found", f"no file {path} in the app")
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding", **SECURITY_HEADERS}
    if path == "/app/sw.js":
        headers["Service-Worker-Allowed"] = "/app/"
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(request) and len(asset.gzipped) < len(body):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


@router.get("/app", include_in_schema=False)
def app_redirect() -> Response:
    return RedirectResponse("/app/", status_code=308)


@router.get("/app/{path:path}", include_in_schema=False)
def app_file(path: str, request: Request) -> Response:
    """A file of the app (the shell for `/app/`)."""
    return _serve(request, "/app/" + path)


# ------------------------------------------------------------------------------------------------
# What an organisation's phone keeps for offline use
# ------------------------------------------------------------------------------------------------


def _issued_heads(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unattached tags grouped by their stream's head (the `tags_issued` that created them)."""
    groups: dict[str, dict[str, Any]] = {}
    for state in states:
        head = state["head"]
        group = groups.setdefault(head["hash"], {"head": head, "time": state.get("last_time"), "tags": []})
        group["tags"].append(state["tag"])
    return list(groups.values())


@router.get(
    "/v1/orgs/{org_id}/custody",
    dependencies=PARAMETER_CHECKS,  # no control character in any parameter, as every route of the JSON API
    tags=["registry"],
    summary="An organisation's tags, for its phone to work offline",
    description=(
        "From the custody projection: `held` (in its custody), `incoming` (in transit to it), `sent` (in transit "
        "from it), `issued` (issued to it, not yet on a bag, grouped by the head of their stream: sign an "
        "attachment with `prev` = that `head.hash`), and `asked`: the current state of the tags listed in "
        f"`?tags=` (comma-separated, at most {MAX_ASKED}). Each list holds at most {MAX_LISTED} tags; "
        "`projection_position` says how far into the log the projection has read. Public data, no credentials."
    ),
    responses=responses(400, 404),
)
async def org_custody(org_id: str, request: Request,
                      tags: str = Query("", description="tags to give the current state of, comma-separated")) -> Any:
    ledger: Ledger = request.app.state.ledger
    asked = [t.strip().upper() for t in tags.split(",") if t.strip()]
    if len(asked) > MAX_ASKED or any(not TAG_ID.fullmatch(t) for t in asked):
        return problem(400, "request.invalid", f"tags: at most {MAX_ASKED} tag ids, comma-separated", field="/tags")

    def read() -> dict[str, Any] | None:
        if org_id not in ledger.registry().orgs:
            return None
        projection = ledger.projection or ledger.start_projection()
        position = projection.position()
        incoming: list[dict[str, Any]] = []
        after = ""
        while len(incoming) < MAX_LISTED:  # in transit to this organisation: read the tags in transit by pages
            page = projection.query(status="in_transit", limit=MAX_LISTED, after=after)
            incoming += [s for s in page if s.get("pending_recipient") == org_id]
            if len(page) < MAX_LISTED:
                break
            after = page[-1]["tag"]
        return {
            "org": org_id,
            "projection_position": position,
            "held": projection.query(holder=org_id, status="in_custody", limit=MAX_LISTED),
            "incoming": incoming[:MAX_LISTED],
            "sent": projection.query(holder=org_id, status="in_transit", limit=MAX_LISTED),
            "issued": _issued_heads(projection.query(issued_to=org_id, status="issued", limit=MAX_LISTED)),
            "asked": projection.states(asked),
        }

    found = await run_in_threadpool(read)
    if found is None:
        return problem(404, "org.unknown", f"no organisation {org_id!r}")
    return found
