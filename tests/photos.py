"""Photos of QR codes for the tests of `ledger.photo` and `POST /v1/verify/qr`: real QR codes (the `qrcode`
package), rendered, then distorted the way a phone photo distorts them, and hostile files (decompression bombs,
truncated files).

Everything is deterministic (fixed seeds), and pure Pillow: no numpy.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from collections.abc import Callable

import qrcode
from PIL import Image, ImageDraw, ImageFilter

# --- making -------------------------------------------------------------------------------------------


def qr_image(text: str, *, box: int = 8, border: int = 4) -> Image.Image:
    """`text` as a black-on-white QR code (error correction M), RGB, `box` pixels per module."""
    code = qrcode.QRCode(box_size=box, border=border, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg(image: Image.Image, quality: int = 85, **options: object) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality, **options)
    return out.getvalue()


# --- distorting ---------------------------------------------------------------------------------------


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, expand=True, fillcolor=(255, 255, 255), resample=Image.Resampling.BICUBIC)


def blur(image: Image.Image, radius: float = 1.5) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def noise(image: Image.Image, sigma: float = 40, weight: float = 0.35) -> Image.Image:
    """Gaussian sensor noise blended in (Pillow's generator is seeded from the process: `weight` keeps the
    result comfortably decodable whatever the draw)."""
    grain = Image.effect_noise(image.size, sigma).convert("RGB")
    return Image.blend(image.convert("RGB"), grain, weight)


def _solve(matrix: list[list[float]], values: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (8 x 8 here)."""
    rows = [row[:] + [value] for row, value in zip(matrix, values)]
    n = len(rows)
    for i in range(n):
        pivot = max(range(i, n), key=lambda r: abs(rows[r][i]))
        rows[i], rows[pivot] = rows[pivot], rows[i]
        for r in range(n):
            if r != i:
                factor = rows[r][i] / rows[i][i]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[i])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


def perspective(image: Image.Image, slant: float = 0.25, background: tuple[int, int, int] = (205, 195, 175)
                ) -> Image.Image:
    """The image as photographed at an angle: its top edge shorter and shifted (a PERSPECTIVE transform)."""
    w, h = image.size
    seen = [(w * slant, h * 0.06), (w * (1 - slant * 0.3), 0.0), (float(w), float(h)), (0.0, h * 0.94)]
    source = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    matrix, values = [], []
    for (x, y), (u, v) in zip(seen, source):  # output point (x, y) samples input point (u, v)
        matrix.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        values.append(u)
        matrix.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values.append(v)
    return image.convert("RGB").transform((w, h), Image.Transform.PERSPECTIVE, _solve(matrix, values),
                                          Image.Resampling.BICUBIC, fillcolor=background)


def in_scene(qr: Image.Image, size: tuple[int, int] = (3000, 2250), at: tuple[int, int] = (1700, 1100),
             qr_side: int = 420, seed: int = 7) -> Image.Image:
    """A photo-like scene (grainy ground, sacks, shadows) with the QR label small somewhere in it."""
    rnd = random.Random(seed)
    scene = Image.new("RGB", size, (120, 98, 72))
    draw = ImageDraw.Draw(scene)
    for _ in range(40):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        shade = rnd.randrange(40, 220)
        draw.rectangle([x, y, x + rnd.randrange(80, 500), y + rnd.randrange(40, 300)],
                       fill=(shade, int(shade * 0.85), int(shade * 0.6)))
    scene = Image.blend(scene, Image.effect_noise(size, 50).convert("RGB"), 0.25)
    label = qr.resize((qr_side, qr_side), Image.Resampling.BILINEAR)
    scene.paste(label, at)
    return scene.filter(ImageFilter.GaussianBlur(0.8))


def random_photo(size: tuple[int, int] = (1200, 900), seed: int = 3) -> Image.Image:
    """Noise and shapes, no QR code."""
    rnd = random.Random(seed)
    image = Image.effect_noise(size, 60).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        draw.ellipse([x, y, x + rnd.randrange(10, 200), y + rnd.randrange(10, 200)],
                     fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    return image


def distortions(qr: Image.Image) -> dict[str, Callable[[], bytes]]:
    """Named photos of `qr` (each made on demand): what a phone camera does to a label."""
    return {
        "rotated 17 degrees": lambda: png(rotate(qr, 17)),
        "rotated 90 degrees": lambda: png(rotate(qr, 90)),
        "upside down": lambda: png(rotate(qr, 180)),
        "blurred (r=1.5)": lambda: png(blur(qr, 1.5)),
        "noisy": lambda: png(noise(qr)),
        "JPEG quality 25": lambda: jpeg(qr, 25),
        "at an angle": lambda: png(perspective(qr)),
        "angle, rotation, blur and JPEG 30": lambda: jpeg(blur(perspective(rotate(qr, 33)), 1.2), 30),
        "small in a large photo": lambda: jpeg(in_scene(qr), 80),
    }


# --- hostile files ------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=2)
def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A real decompression bomb: a valid 1-bit PNG of `width` x `height` white-free pixels (2.5 gigapixels by
    default, 2.5 GB once decoded by Pillow) in about 1.4 MB."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(1)
    rows_per_block = 1000
    block = row * rows_per_block
    parts = [compressor.compress(block) for _ in range(height // rows_per_block)]
    parts.append(compressor.compress(row * (height % rows_per_block)))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def bomb_jpeg(width: int = 60_000, height: int = 60_000) -> bytes:
    """A small JPEG whose frame header (SOF0) declares `width` x `height`."""
    data = bytearray(jpeg(Image.new("RGB", (16, 16), (200, 200, 200))))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


# --- small labels in phone photos (issue 15) ---------------------------------------------------------------


def uneven_light(image: Image.Image, darkest: float = 0.45, seed: int = 0) -> Image.Image:
    """The image lit from one side: brightness falls linearly from 1 to `darkest` across it, in a direction drawn
    from `seed` (a phone photo taken beside a window, or under a lamp)."""
    rnd = random.Random(seed)
    w, h = image.size
    gradient = Image.linear_gradient("L").rotate(rnd.choice((0, 90, 180, 270)) + rnd.uniform(-30, 30),
                                                 resample=Image.Resampling.BILINEAR, fillcolor=128)
    shade = gradient.resize((w, h), Image.Resampling.BILINEAR).point(lambda v: int(255 * (1 - (1 - darkest) * v / 255)))
    black = Image.new("RGB", (w, h), (0, 0, 0))
    return Image.composite(image.convert("RGB"), black, shade)


def small_label_photo(qr: Image.Image, seed: int, *, size: tuple[int, int] = (1200, 900),
                      side: tuple[int, int] = (140, 160), quality: tuple[int, int] = (25, 40)) -> bytes:
    """A phone photo shrunk to `size` with the label `qr` small in it: the label (quiet zone included) `side`
    pixels wide, seen at an angle, turned, placed in a grainy scene, unevenly lit, slightly out of focus and saved as a low-quality JPEG. Every parameter is
    drawn from `seed` (the label's side in pixels within `side`, the JPEG quality within `quality`)."""
    rnd = random.Random(seed)
    target = rnd.randint(*side)
    label = qr.resize((target, target), Image.Resampling.LANCZOS)
    label = rotate(perspective(label, slant=rnd.uniform(0.0, 0.15)), rnd.uniform(-35, 35))
    at = (rnd.randrange(40, size[0] - label.width - 40), rnd.randrange(40, size[1] - label.height - 40))
    scene = in_scene(label, size=size, at=at, qr_side=label.width, seed=seed)
    scene = uneven_light(scene, darkest=rnd.uniform(0.35, 0.7), seed=seed)
    scene = blur(scene, rnd.uniform(0.3, 0.9))
    return jpeg(scene, rnd.randint(*quality))
