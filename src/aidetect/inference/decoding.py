"""Decoding inputs (paths, bytes, PIL images) into RGB images with their content hash and format."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aidetect.model.decode import load_image, to_rgb

ImageInput = str | Path | bytes | Image.Image


@dataclass
class Decoded:
    index: int
    width: int
    height: int
    overlay_base: np.ndarray | None  # RGB already at overlay size (kept only to draw overlays)
    sha256: str
    format: str | None


def source_name(item: ImageInput, index: int) -> str:
    if isinstance(item, bytes):
        return f"<bytes #{index}>"
    if isinstance(item, Image.Image):
        return f"<image #{index}>"
    return str(item)


def decode_item(item: ImageInput, name: str) -> tuple[Image.Image, str, str | None]:
    """(RGB image, sha256, format) or ImageLoadError."""
    if isinstance(item, Image.Image):
        img = to_rgb(item)
        return img, hashlib.sha256(img.tobytes()).hexdigest(), item.format
    if isinstance(item, bytes):
        data = item
    else:
        try:
            data = Path(item).read_bytes()
        except OSError:
            load_image(item)  # raises the one-line ImageLoadError for this path
            raise  # pragma: no cover
    img = load_image(data, name=name)
    return img, hashlib.sha256(data).hexdigest(), sniff_format(data)


_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """Pillow's format name from the magic bytes (a second Image.open costs more than the
    decode of a 32 px image); Pillow itself for anything else."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    try:
        with Image.open(io.BytesIO(data)) as head:
            return head.format
    except Exception:  # noqa: BLE001 - format is informative only
        return None
