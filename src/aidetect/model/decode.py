"""Decoding image files: one definition for scoring, training, evaluation and the dashboard.
Imports no torch (the dashboard decodes with it)."""

from __future__ import annotations

import errno
import io
import os
import re
import stat
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

# -- limits on the work one input may cost (docs/inference.md, "Limits") -------------------
# Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS, 89.5 MP) bounds the pixels; these
# bound what its header check lets through: the bytes read, each side, and the aspect ratio
# (a 1 x 1,000,000 PNG is 9.8 KB and under the pixel limit, but no view of it is a picture).
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_SIDE = 32768
MAX_ASPECT = 32.0


def _reason_for_errno(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop (the link leads back to itself)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "file not found"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"unreadable ({exc.strerror or exc})"


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (from ``st_mode``)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_file_bytes(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, or :class:`ImageLoadError` with a one-line
    reason: a symlink loop, a FIFO / socket / device (never opened for a blocking read: a FIFO
    with no writer would hang the caller), a directory, a missing or unreadable file, or a
    file over ``max_bytes``. The file is opened non-blocking and checked again on the open
    descriptor, so a path swapped for a FIFO between the check and the read cannot block."""
    label = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ImageLoadError(_reason_for_errno(exc), source=label) from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(f"not a regular file: {file_kind(st.st_mode)}", source=label)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageLoadError(_reason_for_errno(exc), source=label) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError(f"not a regular file: {file_kind(st.st_mode)}", source=label)
        if st.st_size > max_bytes:
            raise ImageLoadError(f"refused: {st.st_size} bytes is over the limit of {max_bytes} bytes per file",
                                 source=label)
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise ImageLoadError(_reason_for_errno(exc), source=label) from None
    if len(data) > max_bytes:  # grew while read
        raise ImageLoadError(f"refused: over the limit of {max_bytes} bytes per file", source=label)
    return data


def check_size(width: int, height: int) -> str | None:
    """Why an image of ``width`` x ``height`` is refused before its pixels are decoded
    (a side over MAX_SIDE, an aspect ratio over MAX_ASPECT), or None."""
    if max(width, height) > MAX_SIDE:
        return f"refused: {width}x{height} px, a side over the limit of {MAX_SIDE} px"
    short = max(1, min(width, height))
    if max(width, height) / short > MAX_ASPECT:
        return (f"refused: {width}x{height} px, an aspect ratio of {max(width, height) / short:.0f}:1 "
                f"is over the limit of {MAX_ASPECT:.0f}:1")
    return None


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
    treated as an error too; sizes past :func:`check_size` are refused from the header, before
    any pixel is decoded; a path is read with :func:`read_file_bytes` (no FIFO, no loop).
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")

    def refused(reason: str) -> ImageLoadError:
        return ImageLoadError(reason, source=label)

    try:
        data = source if isinstance(source, bytes) else read_file_bytes(source)
        if not data:
            raise refused("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                too_big = check_size(*img.size)
                if too_big:
                    raise refused(too_big)
                if draft is not None:
                    img.draft("RGB", (draft, draft))
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except ImageLoadError as exc:
        if exc.source is None or exc.source != label:
            raise refused(exc.reason) from None
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
