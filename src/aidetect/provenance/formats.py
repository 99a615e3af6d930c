"""The file format, from the first bytes (``aidetect.model.decode.format_from_magic``), never
from the name: a PNG named ``.jpg`` is read as the PNG it is."""

from __future__ import annotations

from dataclasses import dataclass

from aidetect.model.decode import format_from_magic


@dataclass(frozen=True)
class Format:
    name: str  # "jpeg", "png", "webp", "gif", "tiff", "heif", "avif", "bmp"
    mime: str


# Pillow's format name -> the containers this reader walks (others: XMP/C2PA scan only).
_KNOWN = {
    "JPEG": Format("jpeg", "image/jpeg"),
    "PNG": Format("png", "image/png"),
    "WEBP": Format("webp", "image/webp"),
    "GIF": Format("gif", "image/gif"),
    "TIFF": Format("tiff", "image/tiff"),
    "HEIF": Format("heif", "image/heif"),
    "AVIF": Format("avif", "image/avif"),
    "BMP": Format("bmp", "image/bmp"),
}


def sniff(data: bytes) -> Format | None:
    """The format of ``data``, or None when the first bytes name none this reader knows."""
    return _KNOWN.get(format_from_magic(data[:16]) or "")
