"""Where an auditor reads a log from: a running ledger over HTTP, or an exported bundle (docs/protocol.md §12).

Both give the same things, each exactly as published: the log's keys, the signed checkpoint, the entries as
bytes (in pages, never all in memory), the stored leaf hashes (to name a damaged entry), and the server's
claim about its custody projection. Nothing here trusts what it reads: `verification.audit` checks it all.
Only the standard library is used (`urllib`, `zipfile`).
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.parse
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BUNDLE_FORMAT = "tagledger/bundle/v1"
_BLOCK = 1 << 20
MANIFEST, CHECKPOINT, ENTRIES, LEAF_HASHES = "manifest.json", "checkpoint.txt", "entries.ndjson", "leaf-hashes.bin"
ATTEMPTS = "refused-attempts.ndjson"  # optional (since protocol 1.7): the refused attempts, one JSON object a line
HASH_SIZE = 32


class SourceError(Exception):
    """The source could not be read (network, HTTP error, malformed bundle)."""


class SourceMismatch(SourceError):
    """What the source publishes is altered or missing where the checkpoint requires it (a tile that disagrees with
    the entries, a malformed entry bundle): the log fails the audit, rather than the audit failing to run."""


@dataclass(frozen=True)
class LogKeys:
    origin: str
    vkey: str
    root_key: str | None


@dataclass(frozen=True)
class ProjectionClaim:
    """What the server says its custody projection is: `digest` after folding the first `position` entries."""

    position: int
    digest: str
    tags: int


class LogSource(ABC):
    name: str

    @abstractmethod
    def keys(self) -> LogKeys: ...

    @abstractmethod
    def checkpoint(self) -> str:
        """The latest signed checkpoint note (text)."""

    @abstractmethod
    def projection(self) -> ProjectionClaim | None: ...

    @abstractmethod
    def entries(self, start: int, end: int) -> Iterator[bytes]:
        """Entries [start, end) in order, each the exact bytes (without a newline); fewer if the source has
        fewer (the audit reports that as entries missing)."""

    @abstractmethod
    def leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        """The stored leaf hashes [start, end), 32 bytes each."""

    def consistency_proof(self, old: int, new: int) -> list[bytes] | None:
        """The server's RFC 9162 consistency proof, or None if the source cannot give one (a bundle)."""
        return None

    def locate(self, seq: int) -> str | None:
        """Where the source published entry `seq` (e.g. "in tile/entries/000"), to name it in a failure."""
        return None

    def check_tiles(self, checkpoint: Any) -> str | None:
        """After the entries reproduced `checkpoint`'s root: check the source's own hash tiles against them (a tiles
        source, verification.tiles_source); a line for the report, or None if it publishes none."""
        return None

    def refused_attempts(self) -> list[dict[str, Any]] | None:
        """Every refused attempt the ledger published (protocol 9.1), or None if the source has none to give
        (a ledger or a bundle from before protocol 1.7)."""
        return None

    def close(self) -> None:
        return None


# -- a running ledger ---------------------------------------------------------------------------------


class HttpSource(LogSource):
    PAGE = 1000
    PREFETCH = 4

    def __init__(self, url: str, *, timeout: float = 30.0):
        self.base = url.rstrip("/")
        self.name = self.base
        self.timeout = timeout

    def _get(self, path: str, **params: Any) -> bytes:
        return self._get_page(path, **params)[0]

    def _get_page(self, path: str, **params: Any) -> tuple[bytes, bool]:
        """The answer's body, and whether it links to a next page (`Link: <...>; rel="next"`, protocol 11.3)."""
        import urllib.error  # here, not at the top: a bundle's audit (and each replay worker) does without the HTTP
        import urllib.request  # client's imports (http.client, email: ~50 ms of CPU per process)

        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        url = f"{self.base}{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:  # noqa: S310 - http(s) only
                links = answer.headers.get_all("Link") or []
                return answer.read(), any(_is_next_link(link) for link in links)
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode("utf-8", "replace")
            raise SourceError(f"GET {url}: HTTP {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise SourceError(f"GET {url}: {error}") from None

    def _json(self, path: str, **params: Any) -> Any:
        try:
            return json.loads(self._get(path, **params))
        except ValueError as error:
            raise SourceError(f"GET {path}: not JSON ({error})") from None

    def keys(self) -> LogKeys:
        doc = self._json("/v1/log/key")
        return LogKeys(doc["origin"], doc["vkey"], doc.get("root_key"))

    def checkpoint(self) -> str:
        return self._get("/v1/log/checkpoint").decode("utf-8")

    def projection(self) -> ProjectionClaim | None:
        doc = self._json("/v1/projection")
        return ProjectionClaim(int(doc["position"]), str(doc["digest"]), int(doc["tags"]))

    def refused_attempts(self) -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            try:
                doc = self._json("/v1/log/refused-attempts", after=after)
            except SourceError as error:
                if "HTTP 404" in str(error) and not found:
                    return None  # a ledger from before protocol 1.7
                raise
            found.extend(doc["attempts"])
            if doc.get("next") is None:
                return found
            after = int(doc["next"])

    def _pages(self, path: str, start: int, end: int, page: int, item_size: int | None = None) -> Iterator[bytes]:
        """Fetch pages in a background thread, a few ahead, so the network overlaps the replay.

        As protocol 11.3 says: a page may hold fewer items than asked because of the server's cap, and then it
        links to the next one; the next page starts after the items received. Fewer items and no next link: the
        log ends there. Items are lines, or `item_size` bytes each."""
        pages: queue.Queue[bytes | BaseException | None] = queue.Queue(self.PREFETCH)
        stop = threading.Event()

        def fetch() -> None:
            try:
                first = start
                while first < end and not stop.is_set():
                    asked = min(end, first + page) - first
                    body, more = self._get_page(path, start=first, end=first + asked)
                    pages.put(body)
                    got = body.count(b"\n") if item_size is None else len(body) // item_size
                    if got < asked and (got == 0 or not more):
                        break  # the log ends here
                    first += got
                pages.put(None)
            except BaseException as error:  # handed to the consumer
                pages.put(error)

        thread = threading.Thread(target=fetch, daemon=True)
        thread.start()
        try:
            while (item := pages.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def entries(self, start: int, end: int) -> Iterator[bytes]:
        expected = start
        for body in self._pages("/v1/log/entries", start, end, self.PAGE):
            lines = body.split(b"\n")
            if lines[-1] != b"":
                raise SourceError(f"entries from #{expected}: the answer does not end with a newline")
            for line in lines[:-1]:
                yield line
                expected += 1
            if len(lines) == 1:  # an empty page: the server has no more (the audit reports the shortfall)
                return

    def leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        for body in self._pages("/v1/log/leaf-hashes", start, end, 100_000, HASH_SIZE):
            for i in range(0, len(body), HASH_SIZE):
                yield body[i : i + HASH_SIZE]

    def consistency_proof(self, old: int, new: int) -> list[bytes] | None:
        doc = self._json("/v1/log/proof/consistency", old=old, new=new)
        return [bytes.fromhex(h) for h in doc["hashes"]]


def _is_next_link(header: str) -> bool:
    """Does a `Link` header value (RFC 8288) carry a link with `rel="next"`?"""
    for link in header.split(","):
        for param in link.split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return True
    return False


# -- an exported bundle -------------------------------------------------------------------------------


class BundleSource(LogSource):
    def __init__(self, path: str):
        self.name = path
        try:
            self.zip = zipfile.ZipFile(path)
            self.manifest = json.loads(self.zip.read(MANIFEST))
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
            raise SourceError(f"{path} is not a tagledger bundle: {error}") from None
        if self.manifest.get("format") != BUNDLE_FORMAT:
            raise SourceError(f"{path}: unknown bundle format {self.manifest.get('format')!r}")

    def keys(self) -> LogKeys:
        return LogKeys(self.manifest["origin"], self.manifest["vkey"], self.manifest.get("root_key"))

    def checkpoint(self) -> str:
        return self.zip.read(CHECKPOINT).decode("utf-8")

    def projection(self) -> ProjectionClaim | None:
        claim = self.manifest.get("projection")
        if claim is None:
            return None
        return ProjectionClaim(int(claim["position"]), str(claim["digest"]), int(claim["tags"]))

    def entries(self, start: int, end: int) -> Iterator[bytes]:
        # Read in blocks of 1 MiB and split them: a line at a time through ZipExtFile.readline costs several
        # microseconds per entry in Python code.
        seq = 0
        rest = b""
        with self.zip.open(ENTRIES) as stream:
            while seq < end:
                block = stream.read(_BLOCK)
                if not block:
                    break
                lines = (rest + block).split(b"\n")
                rest = lines.pop()  # the unfinished last line (b"" if the block ended with a newline)
                if seq + len(lines) <= start:
                    seq += len(lines)
                    continue
                for line in lines:
                    if seq >= end:
                        return
                    if seq >= start:
                        yield line
                    seq += 1
        if rest and seq < end:
            if seq >= start:
                raise SourceError(f"{ENTRIES}: entry #{seq} does not end with a newline")

    def refused_attempts(self) -> list[dict[str, Any]] | None:
        if ATTEMPTS not in self.zip.namelist():
            return None
        try:
            return [json.loads(line) for line in self.zip.read(ATTEMPTS).splitlines() if line.strip()]
        except ValueError as error:
            raise SourceError(f"{ATTEMPTS}: not JSON lines ({error})") from None

    def leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        with self.zip.open(LEAF_HASHES) as stored:
            stored.seek(start * HASH_SIZE)
            for _ in range(start, end):
                value = stored.read(HASH_SIZE)
                if len(value) != HASH_SIZE:
                    return
                yield value

    def close(self) -> None:
        self.zip.close()


def open_source(location: str) -> LogSource:
    if location.startswith(("http://", "https://")):
        from verification.tiles_source import tiles_source_at  # a static tlog-tiles host (protocol 19), or the API

        return tiles_source_at(location) or HttpSource(location)
    return BundleSource(location)
