"""The log as static tiles: C2SP tlog-tiles paths and encodings (docs/protocol.md section 19) -- no I/O.

A tiled log is a directory of static files under a URL prefix (c2sp.org/tlog-tiles):

- ``checkpoint``: the signed checkpoint (section 11.2);
- ``tile/<L>/<N>[.p/<W>]``: *hash tiles*, 256 consecutive Merkle tree hashes of level ``8 * L`` of the RFC 9162
  tree (``<W>`` of them in a partial tile); level 0 holds the leaf hashes;
- ``tile/entries/<N>[.p/<W>]``: *entry bundles*, the entries under level-0 tile ``<N>``, each prefixed with its
  length as a big-endian uint16 (per the specification);
- ``tagledger/entries/<N>[.p/<W>]``: tagledger's own bundle of the same entries with uint32 length prefixes,
  served *instead of* the specification's bundle when one of its entries is longer than 65,535 bytes (which
  a uint16 cannot say). Exactly one of the two paths exists for every bundle.

``<N>`` is written in 3-digit path elements, all but the last prefixed with ``x`` (1234067 is
``x001/x234/067``). Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from verification.merkle import HASH_SIZE, CompactRange

__all__ = [
    "BUNDLE_PATH",
    "MAX_SPEC_ENTRY",
    "TAGLEDGER_BUNDLE_PATH",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "BundleError",
    "Tile",
    "decode_bundle",
    "encode_bundle",
    "index_path",
    "parse_index_path",
    "tile_hash",
    "tiles_of",
]

TILE_HEIGHT = 8
"""A tile spans 8 levels of the Merkle tree: tile level ``L`` holds the hashes of tree level ``8 * L``."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256), entries in a full bundle; a full hash tile is 8,192 bytes."""
MAX_TILE_LEVEL = 7
"""The highest tile level a log of at most 2**56 entries (protocol section 11) can have."""
MAX_SPEC_ENTRY = 0xFFFF
"""The longest entry the specification's bundle (uint16 length prefixes) can carry."""
MAX_ENTRY = 0xFFFFFFFF
"""The longest entry tagledger's bundle (uint32 length prefixes) can carry."""
BUNDLE_PATH = "tile/entries"
TAGLEDGER_BUNDLE_PATH = "tagledger/entries"

_ELEMENT = re.compile(r"x?[0-9]{3}")


class BundleError(ValueError):
    """An entry bundle that is not the encoding of the entries it should hold."""


def index_path(index: int) -> str:
    """``<N>`` of a tile path: 3-digit elements, all but the last prefixed with ``x`` (``x001/x234/067``)."""
    if type(index) is not int or index < 0:
        raise ValueError(f"a tile index is a non-negative integer, not {index!r}")
    elements = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        elements.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(elements))


def parse_index_path(text: str) -> int:
    """The index that :func:`index_path` wrote as ``text``; ValueError for any other spelling."""
    elements = text.split("/")
    if not all(_ELEMENT.fullmatch(e) for e in elements) or any(e[0] != "x" for e in elements[:-1]) \
            or elements[-1][0] == "x" or (len(elements) > 1 and elements[0] == "x000"):
        raise ValueError(f"not a tile index path: {text!r}")
    index = 0
    for element in elements:
        index = index * 1000 + int(element.lstrip("x"))
    return index


@dataclass(frozen=True, order=True)
class Tile:
    """Hash tile ``level``/``index`` of ``width`` hashes (256: a full tile; fewer: a partial one)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_TILE_LEVEL or self.index < 0 or not 1 <= self.width <= TILE_WIDTH:
            raise ValueError(f"no tile level {self.level}, index {self.index}, width {self.width}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    def _suffix(self) -> str:
        return "" if self.full else f".p/{self.width}"

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``."""
        return f"tile/{self.level}/{index_path(self.index)}{self._suffix()}"

    @property
    def bundle_path(self) -> str:
        """``tile/entries/<N>[.p/<W>]``: the specification's entry bundle under this level-0 tile."""
        return f"{BUNDLE_PATH}/{index_path(self.index)}{self._suffix()}"

    @property
    def tagledger_bundle_path(self) -> str:
        """``tagledger/entries/<N>[.p/<W>]``: tagledger's bundle, for entries the specification's cannot hold."""
        return f"{TAGLEDGER_BUNDLE_PATH}/{index_path(self.index)}{self._suffix()}"

    @property
    def partials_dir(self) -> str:
        """``tile/<L>/<N>.p``: where this tile's partial versions lie (removed once the full one exists)."""
        return f"tile/{self.level}/{index_path(self.index)}.p"

    @property
    def first_node(self) -> int:
        """The index, within tree level ``8 * level``, of this tile's first hash."""
        return self.index * TILE_WIDTH

    @property
    def entries(self) -> tuple[int, int]:
        """The entries ``[start, end)`` under this tile's hashes."""
        span = TILE_WIDTH ** self.level
        return self.first_node * span, (self.first_node + self.width) * span


def tiles_of(size: int, *, after: int = 0) -> Iterator[Tile]:
    """The tiles of the tree of ``size`` entries, level by level, that the tree of ``after`` entries lacks.

    At tile level ``L`` the tree has ``u = size // 256**L`` hashes: ``u // 256`` full tiles and, if ``u % 256``
    is not 0, one partial tile of that width. With ``after``, full tiles that were already full at ``after``
    are left out, and so is the partial tile if it is the same (an incremental mirror writes the rest).
    """
    if not 0 <= after <= size:
        raise ValueError(f"no tiles from size {after} to size {size}")
    level = 0
    while size >> (TILE_HEIGHT * level):
        units, old_units = size >> (TILE_HEIGHT * level), after >> (TILE_HEIGHT * level)
        for index in range(old_units // TILE_WIDTH, units // TILE_WIDTH):
            yield Tile(level, index)
        width = units % TILE_WIDTH
        if width and units != old_units:
            yield Tile(level, units // TILE_WIDTH, width)
        level += 1


def tile_hash(hashes: Sequence[bytes]) -> bytes:
    """MTH of the subtree whose level-``8 L`` hashes are a full tile's: the hash it has in the tile above."""
    if len(hashes) != TILE_WIDTH:
        raise ValueError(f"only a full tile ({TILE_WIDTH} hashes) has a hash in the tile above")
    compact = CompactRange()
    compact.extend(hashes)  # the subtrees are perfect and of equal size: folded like leaves
    return compact.root()


def split_hashes(data: bytes) -> list[bytes]:
    """The hashes of a tile's bytes (a multiple of 32 bytes)."""
    if len(data) % HASH_SIZE:
        raise ValueError(f"a hash tile is a multiple of {HASH_SIZE} bytes, not {len(data)}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_bundle(entries: Iterable[bytes], *, prefix_bytes: int = 2) -> bytes:
    """Entries, each prefixed with its length as a big-endian integer of ``prefix_bytes`` bytes (2: the
    specification's bundle; 4: tagledger's). ValueError if an entry is too long for the prefix."""
    limit = (1 << (8 * prefix_bytes)) - 1
    out = bytearray()
    for entry in entries:
        if len(entry) > limit:
            raise ValueError(f"an entry of {len(entry)} bytes does not fit a {8 * prefix_bytes}-bit length prefix")
        out += len(entry).to_bytes(prefix_bytes, "big")
        out += entry
    return bytes(out)


def decode_bundle(data: bytes, count: int, *, prefix_bytes: int = 2) -> list[bytes]:
    """The ``count`` entries of a bundle; :class:`BundleError` unless ``data`` is exactly that many."""
    entries = []
    position = 0
    while position < len(data):
        if len(entries) == count:
            raise BundleError(f"the bundle goes on after its {count} entries")
        length = int.from_bytes(data[position : position + prefix_bytes], "big")
        position += prefix_bytes
        if position > len(data) or position + length > len(data):
            raise BundleError(f"entry {len(entries)} of the bundle is cut short")
        entries.append(bytes(data[position : position + length]))
        position += length
    if len(entries) != count:
        raise BundleError(f"the bundle holds {len(entries)} entries, not {count}")
    return entries
