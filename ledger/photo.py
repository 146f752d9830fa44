"""Reading QR codes from an uploaded photo (PNG or JPEG), with bounded memory and time.

Pure image work, no HTTP: `scan_photo(data)` checks the bytes, opens the image *without* decoding its pixels,
refuses it if it declares too many pixels (a decompression bomb is refused before a single pixel is decoded),
decodes it at a reduced size (JPEG: libjpeg's DCT scaling, so a 40-megapixel JPEG is decoded at 1/2 to 1/8 of
its size; PNG: decoded once, then box-reduced), converts it to 8-bit grey (transparent areas on white) and looks
for QR codes with zxing-cpp, trying a few cheap variants (another binariser, sharpened, halved, enlarged, contrast
stretched) until one yields a code the caller accepts; if none does, a second pass enlarges the photo 2x, then 3x
(within DECODE_SIDE), for a small label whose modules are under 3 pixels (issue 15).

Limits (docs/_drafts/verify-qr.md): at most `MAX_PHOTO_BYTES` bytes, at most `MAX_PHOTO_PIXELS` pixels as
declared by the file's header and at most `MAX_DECODE_BYTES` of estimated decoding memory (checked from the header
too), decoding at most `DECODE_SIDE` pixels on the long side. Pillow's own bomb check
(`PIL.Image.MAX_IMAGE_PIXELS`) is set to the same limit, as a second line of defence.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import zxingcpp
from PIL import Image, ImageFile, ImageFilter, ImageOps

MAX_PHOTO_BYTES = 10 * 1024 * 1024
"""The largest upload (10 MiB): more than any phone photo of a tag needs."""
MAX_PHOTO_PIXELS = 40_000_000
"""The most pixels an image may declare (a 48-MP phone's full-size photo is binned to 12 MP by default)."""
MAX_DECODE_BYTES = 128 * 2**20
"""The most memory one decode may need, estimated from the header before decoding (`decode_cost`): JPEG up to
about 33 MP at 4:2:0 sampling or 19 MP at 4:4:4; PNG up to 26 MP in colour, 40 MP in 8-bit grey."""
DECODE_SIDE = 4000
"""Photos are decoded at most this many pixels on their long side (8-bit grey: at most 16 MB)..."""
SEARCH_SIDE = 2000
"""...and searched at most this many pixels on their long side first; the decoded size is searched last, for a
small QR code in a large photo."""
SMALL_SIDE = 800
"""Below this long side, an enlarged copy is also tried (modules of one or two pixels)."""

# Pillow's own check, in `Image.open`, before any pixel is decoded: it warns above MAX_IMAGE_PIXELS and raises
# DecompressionBombError above twice that. With our limit, its error refuses every image of more than 80 MP (any
# real bomb) even if our check were bypassed, and it never warns about an image we accept.
Image.MAX_IMAGE_PIXELS = MAX_PHOTO_PIXELS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


class PhotoError(Exception):
    """The upload cannot be read as a photo: `status` (400 or 413), `rule` and a readable `detail`."""

    def __init__(self, status: int, rule: str, detail: str):
        super().__init__(detail)
        self.status, self.rule, self.detail = status, rule, detail


@dataclass
class Scan:
    """What `scan_photo` found: the image's format and declared size, the size it was decoded at, the
    distinct QR code texts in the order found, and how many decoder passes it took."""

    format: str
    size: tuple[int, int]
    decoded_size: tuple[int, int]
    texts: list[str] = field(default_factory=list)
    attempts: int = 0


def sniff(data: bytes) -> str | None:
    """"PNG" or "JPEG" from the magic bytes, or None."""
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    return None


def open_photo(data: bytes) -> Image.Image:
    """The photo, opened but not decoded; PhotoError if it is not a PNG/JPEG, if it declares too many pixels or
    would need too much memory to decode, or if its header is bad."""
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoError(413, "request.too_large", f"the photo is larger than {MAX_PHOTO_BYTES} bytes")
    kind = sniff(data)
    if kind is None:
        raise PhotoError(400, "photo.not_an_image", "the body is not a PNG or JPEG image")
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
    except Image.DecompressionBombError:
        raise PhotoError(413, "photo.too_many_pixels",
                         f"the image declares more than {MAX_PHOTO_PIXELS} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PhotoError(400, "photo.malformed", f"the {kind} file cannot be read: {exc}") from None
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise PhotoError(400, "photo.malformed", f"the image has no pixels ({width} x {height})")
    if width * height > MAX_PHOTO_PIXELS:
        image.close()
        raise PhotoError(413, "photo.too_many_pixels",
                         f"the image declares {width} x {height} pixels, more than {MAX_PHOTO_PIXELS}")
    cost = decode_cost(image)
    if cost > MAX_DECODE_BYTES:
        image.close()
        raise PhotoError(413, "photo.too_many_pixels",
                         f"decoding this {width} x {height} {kind} would need about {cost // 2**20} MiB, more than "
                         f"{MAX_DECODE_BYTES // 2**20} MiB; send a smaller photo (12 megapixels is plenty)")
    return image


def decode_cost(image: Image.Image) -> int:
    """An estimate of the bytes needed to decode the opened (not loaded) `image` (see MAX_DECODE_BYTES).

    JPEG: libjpeg's whole-image coefficient buffer (2 bytes per sample of every component, at its sampling),
    which a progressive or multi-scan file needs whatever the output scale, and the grey output at full size.
    PNG: Pillow's full-size image (1, 2 or 4 bytes per pixel) and one 8-bit plane extracted from it.
    """
    width, height = image.size
    pixels = width * height
    if image.format == "JPEG":
        layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * len(image.getbands())
        h_max = max(layer[1] for layer in layers) or 1
        v_max = max(layer[2] for layer in layers) or 1
        samples = sum(_blocks(width * layer[1], h_max) * _blocks(height * layer[2], v_max) * 64 for layer in layers)
        return 2 * samples + pixels  # and the grey output, full size at worst
    cost = pixels * (_pixel_size(image.mode) + 1)  # the image, and one 8-bit plane extracted from it
    if image.mode == "P" and _has_alpha(image):
        cost += 4 * pixels  # converted to LA first
    elif image.mode.startswith("I;16"):
        cost += 3 * pixels  # converted to 32-bit integers, not to an 8-bit plane
    return cost


def _blocks(scaled: int, maximum: int) -> int:
    return math.ceil(math.ceil(scaled / maximum) / 8)


def _pixel_size(mode: str) -> int:
    """Bytes per pixel of a Pillow image in `mode`."""
    if mode in {"1", "L", "P"}:
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def decoded_image(image: Image.Image) -> Image.Image:
    """The opened photo, decoded as 8-bit grey at most DECODE_SIDE pixels on its long side; closes `image`.

    A JPEG is decoded by libjpeg directly in grey at a reduced scale (1/2, 1/4 or 1/8); a PNG is decoded at full
    size, then its grey and alpha channels are extracted and box-reduced one at a time. PhotoError(400) if the
    pixel data is truncated or corrupt.
    """
    kind = image.format
    width, height = image.size
    scale = min(1.0, DECODE_SIDE / max(width, height))
    try:
        if kind == "JPEG":
            # libjpeg scales while decoding, never below the requested size
            image.draft("L", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))
        # Truncated pixel data is refused: WeasyPrint's import (the PDF reports, api.report_page) turns Pillow's
        # process-wide LOAD_TRUNCATED_IMAGES on; it is put back at once, and off again here before each decode.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        image.load()
        return _small_grey(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise PhotoError(400, "photo.malformed", f"the {kind} image data cannot be decoded: {exc}") from None
    finally:
        image.close()  # the full-size pixels are released here


def _small_grey(image: Image.Image) -> Image.Image:
    """A new 8-bit grey image, box-reduced to at most DECODE_SIDE on its long side; transparent areas become
    white (a QR code on a transparent background is dark on light). At most one full-size 8-bit plane is held
    besides `image` (Pillow's `reduce` of an image with alpha would make a full-size premultiplied copy)."""
    factor = math.ceil(max(image.size) / DECODE_SIDE)

    def small(plane: Image.Image) -> Image.Image:
        return plane.reduce(factor) if factor > 1 else plane

    if image.mode == "P" and _has_alpha(image):
        image = image.convert("LA")
    alpha = None
    if image.mode in {"RGBA", "LA", "PA", "La", "RGBa"}:
        alpha = small(image.getchannel("A"))
    if image.mode == "L":
        grey = small(image.copy() if factor == 1 else image)
    elif image.mode.startswith("I"):  # 16-bit grey: reduced as 32-bit integers, then scaled to 8 bits, not clipped
        wide = small(image if image.mode == "I" else image.convert("I"))
        grey = wide.point(lambda v: v / 256).convert("L")
    else:
        grey = small(image.convert("L"))
    if alpha is None:
        return grey
    return Image.composite(grey, Image.new("L", grey.size, 255), alpha)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in {"RGBA", "LA", "PA", "La", "RGBa"} or (image.mode == "P" and "transparency" in image.info)


def _variants(decoded: Image.Image) -> Iterator[tuple[str, Image.Image, zxingcpp.Binarizer]]:
    """The passes, cheapest and most likely first: on the photo at most SEARCH_SIDE on its long side, then on
    the decoded photo if it is larger."""
    factor = math.ceil(max(decoded.size) / SEARCH_SIDE)
    work = decoded.reduce(factor) if factor > 1 else decoded
    yield "as is", work, zxingcpp.Binarizer.LocalAverage
    yield "global histogram", work, zxingcpp.Binarizer.GlobalHistogram
    yield "sharpened", work.filter(ImageFilter.UnsharpMask(radius=2, percent=200, threshold=0)), \
        zxingcpp.Binarizer.LocalAverage
    if max(work.size) >= SMALL_SIDE:
        yield "halved", work.reduce(2), zxingcpp.Binarizer.LocalAverage
    else:
        yield "enlarged", work.resize((work.width * 2, work.height * 2), Image.Resampling.BICUBIC), \
            zxingcpp.Binarizer.LocalAverage
    yield "contrast stretched", ImageOps.autocontrast(work, cutoff=2), zxingcpp.Binarizer.GlobalHistogram
    if work is not decoded:
        yield "decoded size", decoded, zxingcpp.Binarizer.LocalAverage


ENLARGEMENTS = (2, 3)
"""The second pass (issue 15): a small label (140 to 160 pixels in a 1200 x 900 photo: modules under 3 pixels)
is read once the photo is enlarged. Only the factors that keep the enlarged photo within DECODE_SIDE on its long
side are tried, so the second pass never holds a larger image than the first pass's "decoded size" may."""


def _enlarged(decoded: Image.Image) -> Iterator[tuple[str, Image.Image, zxingcpp.Binarizer]]:
    """The second pass, made only when the first found nothing: the decoded photo enlarged (Lanczos) 2x, then
    3x, each within DECODE_SIDE; the 2x the first pass already tried for a small photo is not repeated. One
    enlarged copy is held at a time. (Of the 111 photos of bench/small_labels.py's first 200 that the first pass
    missed, Lanczos then read 79, bicubic 73, in about 30 ms less per unreadable photo; bilinear far fewer.)"""
    for factor in ENLARGEMENTS:
        if factor * max(decoded.size) > DECODE_SIDE:
            break
        if factor == 2 and max(decoded.size) < SMALL_SIDE:
            continue  # the first pass's "enlarged"
        yield f"enlarged {factor}x", decoded.resize((decoded.width * factor, decoded.height * factor),
                                                    Image.Resampling.LANCZOS), zxingcpp.Binarizer.LocalAverage


def find_qr_codes(decoded: Image.Image, accept: Callable[[str], bool] | None = None, *,
                  second_pass: bool = True) -> tuple[list[str], int]:
    """The distinct QR code texts in `decoded` (8-bit grey), and the number of passes made.

    Passes stop at the first that finds a text `accept` accepts (any text, without `accept`); texts found in
    earlier passes are kept, in the order found. The enlarged passes (`_enlarged`) come only after every
    other pass found nothing accepted (and not at all with `second_pass=False`, for measuring).
    """
    texts: list[str] = []
    attempts = 0
    passes = itertools.chain(_variants(decoded), _enlarged(decoded) if second_pass else ())
    for name, variant, binarizer in passes:
        attempts += 1
        # An enlarged photo (the second pass) is searched as it is: its downscales, its rotations and its
        # inverse read no more labels there (QR detection does not depend on the angle; a label is printed dark
        # on light, and an inverted one was looked for in the first pass) and cost about half the search's time.
        second = name.startswith("enlarged ")
        found = zxingcpp.read_barcodes(
            variant,
            formats=zxingcpp.BarcodeFormat.QRCode,
            try_rotate=not second,
            try_downscale=not second,
            try_invert=not second,
            text_mode=zxingcpp.TextMode.Plain,
            binarizer=binarizer,
        )
        for barcode in found:
            if barcode.valid and barcode.text not in texts:
                texts.append(barcode.text)
        if any(accept is None or accept(t) for t in texts):
            break
    return texts, attempts


def scan_photo(data: bytes, accept: Callable[[str], bool] | None = None, *, second_pass: bool = True) -> Scan:
    """Open, check, decode and search the photo in `data` (see the module's docstring). PhotoError if the
    photo is refused; an empty `texts` if no QR code was found."""
    image = open_photo(data)
    scan = Scan(format=str(image.format), size=image.size, decoded_size=(0, 0))
    decoded = decoded_image(image)
    scan.decoded_size = decoded.size
    scan.texts, scan.attempts = find_qr_codes(decoded, accept, second_pass=second_pass)
    return scan
