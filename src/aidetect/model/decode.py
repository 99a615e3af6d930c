"""Decoding image files: one definition for scoring, training, evaluation and the dashboard.
Imports no torch (the dashboard decodes with it)."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aidetect.errors import ImageLoadError

# Leading bytes of the formats Pillow reads -> Pillow's format name.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"qoif", "QOI"),
)
_FTYP_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIF", b"heix": "HEIF", b"hevc": "HEIF", b"hevx": "HEIF", b"heim": "HEIF", b"heis": "HEIF",
                b"mif1": "HEIF", b"msf1": "HEIF"}


def format_from_magic(head: bytes) -> str | None:
    """The image format named by the first 16 bytes of a file, or None: decided by content,
    never by the file's name (PNG files named .jpg are common)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP_BRANDS:
        return _FTYP_BRANDS[head[8:12]]
    if len(head) >= 2 and head[0:1] == b"P" and head[1:2] in b"123456":
        return "PPM"
    return None

ImageSource = str | Path | bytes


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit and float images stretched to their range, transparency on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = Image.fromarray(((arr - lo) * scale).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(source: ImageSource, name: str | None = None, draft: int | None = None) -> Image.Image:
    """Decode ``source`` to an upright RGB image.

    ``draft``: a JPEG may be decoded at a reduced scale whose long side stays at least this
    many pixels (much faster for display; never used for scoring).

    Raises :class:`ImageLoadError` with a one-line reason for anything that is not a whole,
    decodable image (missing, unreadable, empty, truncated, not an image, decompression bomb).
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) stays on; its warning is
    treated as an error too.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")

    def refused(reason: str) -> ImageLoadError:
        return ImageLoadError(reason, source=label)

    try:
        if isinstance(source, bytes):
            if not source:
                raise refused("empty file (0 bytes)")
            fh: io.BytesIO | Path = io.BytesIO(source)
        else:
            fh = Path(source)
            if fh.is_file() and fh.stat().st_size == 0:
                raise refused("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                if draft is not None:
                    img.draft("RGB", (draft, draft))
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise refused(_bomb_reason(exc)) from exc
    except FileNotFoundError as exc:
        raise refused("file not found") from exc
    except PermissionError as exc:
        raise refused("permission denied") from exc
    except IsADirectoryError as exc:
        raise refused("is a directory") from exc
    except UnidentifiedImageError as exc:
        raise refused("not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise refused(f"truncated or corrupt ({_detail(exc, label)})") from exc


# The reasons are what a person reads next to the file's path (a result row, a table line):
# about the file, one short line, without the path again and without Pillow's alarm wording.
_PIXELS = re.compile(r"\((\d+) pixels\)")
_DETAIL_MAX = 100


def _bomb_reason(exc: Exception) -> str:
    """``refused: 10000000000 pixels is over the decompression bomb limit of 89478485``."""
    found = _PIXELS.search(str(exc))
    size = f"{found.group(1)} pixels" if found else "the image size"
    return f"refused: {size} is over the decompression bomb limit of {Image.MAX_IMAGE_PIXELS}"


def _detail(exc: Exception, label: str) -> str:
    """Pillow's own words for a broken file, on one line, without the file's name."""
    text = " ".join(str(exc).replace(label, "").split()).strip(" :;,.'\"") or type(exc).__name__
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3].rstrip() + "..."
