"""An auditor's source that is a static tlog-tiles host (docs/protocol.md section 19): any web server, CDN or
object store serving what `tagledger tiles sync` wrote, or the ledger's own ``/tiles/``.

It reads ``<prefix>/checkpoint``, the entry bundles (``tile/entries/<N>``, or tagledger's ``tagledger/entries/<N>``
for a bundle with an entry over 65,535 bytes) and the hash tiles (``tile/<L>/<N>``). While the audit replays
the entries it compares every level-0 tile with their leaf hashes, and then (`check_tiles`, once the entries
have reproduced the signed root) every tile above with the hashes the entries give, so an altered tile is named.

A static host has no key endpoint, no consistency proof and no projection digest: the log key is pinned
(``--vkey``), remembered, or taken on first use from entry 0 (the genesis entry names it); consistency with a
kept checkpoint is checked by recomputing its root from the replayed entries; no projection is compared.
Standard library only.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from verification.checkpoint import Checkpoint, CheckpointError, parse_checkpoint
from verification.encoding import b64url_decode
from verification.merkle import leaf_hash
from verification.note import encode_vkey
from verification.sources import LogKeys, LogSource, ProjectionClaim, SourceError, SourceMismatch
from verification.tiles import TILE_HEIGHT, TILE_WIDTH, BundleError, Tile, decode_bundle, split_hashes, tile_hash

T = TypeVar("T")
R = TypeVar("R")
ABSENT = (404, 410)
"""HTTP statuses that mean the file is not served (rather than that the host failed)."""


def tiles_source_at(url: str, *, timeout: float = 30.0) -> TilesSource | None:
    """A `TilesSource` if ``url`` serves a tiled log (``<url>/checkpoint`` answers), None otherwise."""
    source = TilesSource(url, timeout=timeout)
    return source if source._get("checkpoint") is not None else None


class TilesSource(LogSource):
    PREFETCH = 8

    def __init__(self, url: str, *, timeout: float = 30.0):
        self.base = url.rstrip("/")
        self.name = self.base
        self.timeout = timeout
        self._note: str | None = None
        self._served: dict[int, str] = {}  # bundle index -> the path its entries came from
        self._tagledger_bundles = 0
        self._problem: str | None = None  # the first level-0 tile found to disagree with the entries
        self._above: list[bytes] = []  # the hash of every full level-0 tile, computed from the entries
        self._streamed: int | None = None  # the size whose entries were all read (and level-0 tiles compared)

    # -- HTTP ----------------------------------------------------------------------------------------

    def _get(self, path: str) -> bytes | None:
        """The file at ``<prefix>/<path>``, or None if the host does not serve it (404)."""
        url = f"{self.base}/{path}"
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, identity"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - http(s) only
                body = answer.read()
                if answer.headers.get("Content-Encoding", "").strip().lower() == "gzip":
                    body = gzip.decompress(body)
                return body
        except urllib.error.HTTPError as error:
            if error.code in ABSENT:
                return None
            raise SourceError(f"GET {url}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError, EOFError) as error:
            raise SourceError(f"GET {url}: {error}") from None

    def _prefetched(self, items: Iterable[T], fetch: Callable[[T], R]) -> Iterator[R]:
        """``fetch(item)`` for each item, in order, with up to PREFETCH requests under way at once."""
        with ThreadPoolExecutor(self.PREFETCH, thread_name_prefix="tiles") as pool:
            window: deque[Future[R]] = deque()
            try:
                for item in items:
                    window.append(pool.submit(fetch, item))
                    if len(window) >= self.PREFETCH:
                        yield window.popleft().result()
                while window:
                    yield window.popleft().result()
            finally:
                for future in window:
                    future.cancel()

    # -- the checkpoint and the keys -----------------------------------------------------------------

    def checkpoint(self) -> str:
        if self._note is None:
            body = self._get("checkpoint")
            if body is None:
                raise SourceError(f"{self.base}/checkpoint is not served")
            try:
                self._note = body.decode("utf-8")
            except UnicodeDecodeError:
                raise SourceMismatch(f"{self.base}/checkpoint is not UTF-8 text") from None
        return self._note

    def _size(self) -> int:
        """The tree size the checkpoint states (the audit verifies its signature before it reads entries)."""
        text = self.checkpoint().split("\n\n", 1)[0] + "\n"
        try:
            return parse_checkpoint(text).size
        except CheckpointError as error:
            raise SourceMismatch(f"{self.base}/checkpoint is not a checkpoint: {error}") from None

    def keys(self) -> LogKeys:
        """The log key as entry 0 (the genesis entry, protocol 6) names it: a static host has no key endpoint."""
        if self._size() == 0:
            raise SourceError("the log is empty: no genesis entry names the log key (pin it with --vkey)")
        entry = self._bundle(0, self._width(0))[1][0]
        try:
            data = json.loads(entry)["envelope"]["body"]["data"]
            name, public_key = data["log_key"]["name"], b64url_decode(data["log_key"]["public_key"], 32)
            return LogKeys(name, encode_vkey(name, public_key), data.get("root_key"))
        except (ValueError, KeyError, TypeError) as error:
            raise SourceMismatch(f"entry 0 is not a genesis entry that names the log key ({error!r}); "
                                 "pin the key with --vkey") from None

    def projection(self) -> ProjectionClaim | None:
        return None  # a static host states no custody projection

    # -- tiles and bundles ---------------------------------------------------------------------------

    def _width(self, index: int, level: int = 0) -> int:
        units = self._size() >> (TILE_HEIGHT * level)
        return min(TILE_WIDTH, units - index * TILE_WIDTH)

    def _bundle(self, index: int, width: int) -> tuple[str, list[bytes]]:
        """The entries of bundle ``index`` (``width`` of them) and the path they came from.

        The specification's path first, then tagledger's; for a partial bundle that is no longer served, the full
        bundle (tlog-tiles lets a log delete a partial tile once the full one exists), cut to ``width`` entries.
        """
        wanted = Tile(0, index, width)
        candidates = [(wanted, wanted.bundle_path, 2), (wanted, wanted.tagledger_bundle_path, 4)]
        if not wanted.full:
            full = Tile(0, index)
            candidates += [(full, full.bundle_path, 2), (full, full.tagledger_bundle_path, 4)]
        for tile, path, prefix in candidates:
            body = self._get(path)
            if body is None:
                continue
            try:
                return path, decode_bundle(body, tile.width, prefix_bytes=prefix)[:width]
            except BundleError as error:
                raise SourceMismatch(f"{path} was altered: it is not a bundle of {tile.width} entries ({error})") \
                    from None
        raise SourceMismatch(f"entries #{wanted.entries[0]} and later: neither {wanted.bundle_path} nor "
                             f"{wanted.tagledger_bundle_path} is served")

    def _tile(self, tile: Tile) -> tuple[str, list[bytes]] | None:
        """The hashes of ``tile`` and its path (the full tile, cut, if a partial one is no longer served)."""
        candidates = [tile] if tile.full else [tile, Tile(tile.level, tile.index)]
        for candidate in candidates:
            body = self._get(candidate.path)
            if body is None:
                continue
            if len(body) != 32 * candidate.width:
                raise SourceMismatch(f"{candidate.path} was altered: it has {len(body)} bytes, not "
                                     f"{32 * candidate.width}")
            return candidate.path, split_hashes(body)[: tile.width]
        return None

    # -- LogSource -----------------------------------------------------------------------------------

    def entries(self, start: int, end: int) -> Iterator[bytes]:
        size = self._size()
        end = min(end, size)
        if start >= end:
            return
        whole = start == 0 and end == size and self._streamed is None
        indexes = range(start // TILE_WIDTH, (end - 1) // TILE_WIDTH + 1)

        def fetch(index: int) -> tuple[int, str, list[bytes], tuple[str, list[bytes]] | None]:
            width = self._width(index)
            path, entries = self._bundle(index, width)
            return index, path, entries, self._tile(Tile(0, index, width)) if whole else None

        for index, path, entries, level0 in self._prefetched(indexes, fetch):
            self._served[index] = path
            if whole:
                self._compare_level0(index, entries, level0)
            first = index * TILE_WIDTH
            yield from entries[max(start - first, 0) : end - first]
        if whole:
            self._streamed = size

    def _compare_level0(self, index: int, entries: list[bytes], served: tuple[str, list[bytes]] | None) -> None:
        hashes = [leaf_hash(entry) for entry in entries]
        if len(hashes) == TILE_WIDTH:
            self._above.append(tile_hash(hashes))
        if self._problem is not None:
            return
        tile = Tile(0, index, len(hashes))
        if served is None:
            self._problem = f"{tile.path} is not served"
            return
        path, published = served
        for i, (ours, theirs) in enumerate(zip(hashes, published, strict=True)):
            if ours != theirs:
                self._problem = f"{path} was altered: hash #{i} is not the leaf hash of entry #{index * TILE_WIDTH + i}"
                return

    def leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        end = min(end, self._size())
        if start >= end:
            return
        for index in range(start // TILE_WIDTH, (end - 1) // TILE_WIDTH + 1):
            served = self._tile(Tile(0, index, self._width(index)))
            if served is None:
                return
            first = index * TILE_WIDTH
            yield from served[1][max(start - first, 0) : end - first]

    def locate(self, seq: int) -> str | None:
        path = self._served.get(seq // TILE_WIDTH)
        return None if path is None else f"in {path}"

    def check_tiles(self, checkpoint: Checkpoint) -> str | None:
        """After the entries reproduced the signed root: every hash tile of the checkpoint's tree must hold the
        hashes the entries give. Raises `SourceMismatch` naming the first altered (or missing) tile."""
        size = checkpoint.size
        if self._streamed != size:
            return None  # only part of the log was read (an "as of" audit)
        if self._problem is not None:
            raise SourceMismatch(self._problem)
        count, level, below = -(-size // TILE_WIDTH), 1, self._above
        while size >> (TILE_HEIGHT * level):
            above = []
            for tile in _level_tiles(size, level):
                served = self._tile(tile)
                if served is None:
                    raise SourceMismatch(f"{tile.path} is not served")
                path, published = served
                expected = below[tile.first_node : tile.first_node + tile.width]
                for i, (ours, theirs) in enumerate(zip(expected, published, strict=True)):
                    if ours != theirs:
                        span = TILE_WIDTH**level
                        first = (tile.first_node + i) * span
                        raise SourceMismatch(f"{path} was altered: hash #{i} is not the hash of entries "
                                             f"#{first} to #{first + span - 1}")
                if tile.full:
                    above.append(tile_hash(expected))
                count += 1
            below, level = above, level + 1
        tagledger = sum(1 for path in self._served.values() if path.startswith("tagledger/"))
        return (f"{count} hash tile(s) on {level} level(s) and {len(self._served)} entry bundle(s) "
                f"({tagledger} in tagledger's own encoding) agree with the entries")


def _level_tiles(size: int, level: int) -> Iterator[Tile]:
    units = size >> (TILE_HEIGHT * level)
    for index in range(units // TILE_WIDTH):
        yield Tile(level, index)
    if units % TILE_WIDTH:
        yield Tile(level, units // TILE_WIDTH, units % TILE_WIDTH)
