"""QR codes of label URLs (docs/protocol.md section 13.4): PNG, SVG, and a printable A4 sheet of labels.

Drawn with the `qrcode` library: the modules as one SVG path (`qrcode.image.svg.SvgPathImage`) and PNG through
pypng (`qrcode.image.pure.PyPNGImage`), error correction level M (15 %), a quiet zone of 4 modules. A label URL
of about 150 characters makes a version 7 symbol (45 x 45 modules).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import qrcode
import qrcode.constants
import qrcode.image.pure
import qrcode.image.svg

ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
QUIET_ZONE = 4
"""Modules of white around the symbol (ISO/IEC 18004 asks for 4)."""
MODULE_MM = 0.5
"""Printed size of one module in a standalone SVG (a version 7 symbol with its quiet zone: 26.5 mm)."""
DEFAULT_PNG_SCALE = 8
MAX_PNG_SCALE = 40

SHEET_WIDTH_MM = 210
SHEET_HEIGHT_MM = 297
SHEET_MARGIN_MM = 10
MAX_SHEET_LABELS = 60
SHEET_GRIDS = ((4, 6), (5, 8), (6, 10))
"""(columns, rows) of a sheet: the first that holds all its labels."""

__all__ = ["MAX_SHEET_LABELS", "SHEET_GRIDS", "label_sheet_svg", "qr_png", "qr_svg", "sheet_grid"]


@dataclass(frozen=True)
class _Symbol:
    size: int
    """Modules per side, without the quiet zone."""
    path: str
    """The dark modules as SVG path data, one unit per module, origin at the symbol's top-left corner."""


@functools.lru_cache(maxsize=256)
def _symbol(data: str) -> _Symbol:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECTION, box_size=10, border=0,
                       image_factory=qrcode.image.svg.SvgPathImage)
    qr.add_data(data)
    qr.make(fit=True)
    image = qr.make_image()  # box_size 10 is one SVG unit per module
    assert image.path is not None
    return _Symbol(qr.modules_count, image.path.get("d") or "")


def qr_png(data: str, *, scale: int = DEFAULT_PNG_SCALE) -> bytes:
    """A PNG (1-bit greyscale) of the QR code of `data`: `scale` pixels per module, quiet zone included."""
    if not 1 <= scale <= MAX_PNG_SCALE:
        raise ValueError(f"scale is 1 to {MAX_PNG_SCALE} pixels per module")
    qr = qrcode.QRCode(error_correction=ERROR_CORRECTION, box_size=scale, border=QUIET_ZONE)
    qr.add_data(data)
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image(image_factory=qrcode.image.pure.PyPNGImage).save(out)
    return out.getvalue()


def _num(x: float) -> str:
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def qr_svg(data: str, *, caption: str | None = None) -> str:
    """A standalone SVG of the QR code of `data` on a white square (quiet zone included), `MODULE_MM` mm per
    module; with `caption`, the text is printed under the symbol (the QR code itself never contains it)."""
    symbol = _symbol(data)
    side = symbol.size + 2 * QUIET_ZONE
    height = side + (5 if caption else 0)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_num(side * MODULE_MM)}mm" '
        f'height="{_num(height * MODULE_MM)}mm" viewBox="0 0 {side} {height}">',
        f'<rect width="{side}" height="{height}" fill="#fff"/>',
        f'<path class="qr" transform="translate({QUIET_ZONE} {QUIET_ZONE})" fill="#000" d="{symbol.path}"/>',
    ]
    if caption:
        parts.append(f'<text x="{_num(side / 2)}" y="{side + 1}" text-anchor="middle" font-family="DejaVu Sans Mono, '
                     f'Menlo, Consolas, monospace" font-size="4" font-weight="bold" fill="#000">'
                     f'{escape(caption)}</text>')
    parts.append("</svg>\n")
    return "".join(parts)


def sheet_grid(count: int) -> tuple[int, int]:
    """(columns, rows) of a sheet of `count` labels."""
    if not 1 <= count <= MAX_SHEET_LABELS:
        raise ValueError(f"a sheet holds 1 to {MAX_SHEET_LABELS} labels")
    return next(grid for grid in SHEET_GRIDS if grid[0] * grid[1] >= count)


def label_sheet_svg(labels: Sequence[tuple[str, str]], *, title: str = "tagledger labels") -> str:
    """A printable A4 page (SVG, sizes in mm) of labels: each `(tag id, label URL)` as a QR code with the tag id
    printed under it, in a grid (`SHEET_GRIDS`) with dashed cutting lines. Print at 100 % ("actual size")."""
    columns, rows = sheet_grid(len(labels))
    cell_w = (SHEET_WIDTH_MM - 2 * SHEET_MARGIN_MM) / columns
    cell_h = (SHEET_HEIGHT_MM - 2 * SHEET_MARGIN_MM) / rows
    caption_mm = 3.2 if rows <= 6 else 2.6
    qr_mm = min(cell_w - 4, cell_h - 3 - 2 * caption_mm)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{SHEET_WIDTH_MM}mm" '
        f'height="{SHEET_HEIGHT_MM}mm" viewBox="0 0 {SHEET_WIDTH_MM} {SHEET_HEIGHT_MM}" '
        f'data-columns="{columns}" data-rows="{rows}">',
        f"<title>{escape(title)}</title>",
        "<style>@page { size: A4 portrait; margin: 0 } "
        "html, body { margin: 0 } "
        ".cut { fill: none; stroke: #999; stroke-width: 0.15; stroke-dasharray: 1 1 } "
        ".tag { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-weight: bold; fill: #000 } "
        "@media print { .cut { stroke: #bbb } }</style>",
        f'<rect width="{SHEET_WIDTH_MM}" height="{SHEET_HEIGHT_MM}" fill="#fff"/>',
    ]
    for i, (tag, url) in enumerate(labels):
        symbol = _symbol(url)
        side = symbol.size + 2 * QUIET_ZONE
        scale = qr_mm / side
        x = SHEET_MARGIN_MM + (i % columns) * cell_w
        y = SHEET_MARGIN_MM + (i // columns) * cell_h
        qr_x = (cell_w - qr_mm) / 2
        qr_y = 1.5
        parts.append(
            f'<g class="label" data-tag={quoteattr(tag)} data-url={quoteattr(url)} '
            f'transform="translate({_num(x)} {_num(y)})">'
            f'<rect class="cut" width="{_num(cell_w)}" height="{_num(cell_h)}"/>'
            f'<g transform="translate({_num(qr_x)} {_num(qr_y)}) scale({scale:.6f})">'
            f'<rect width="{side}" height="{side}" fill="#fff"/>'
            f'<path class="qr" transform="translate({QUIET_ZONE} {QUIET_ZONE})" fill="#000" d="{symbol.path}"/>'
            f"</g>"
            f'<text class="tag" x="{_num(cell_w / 2)}" y="{_num(qr_y + qr_mm + caption_mm + 0.3)}" '
            f'text-anchor="middle" font-size="{caption_mm}">{escape(tag)}</text>'
            f"</g>"
        )
    parts.append("</svg>\n")
    return "".join(parts)
