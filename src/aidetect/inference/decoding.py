"""Decoding inputs (paths, bytes, PIL images) into RGB images with their content hash and format."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aidetect.model.decode import format_from_magic, load_image, read_file_bytes, to_rgb

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


def decode_item(item: ImageInput, name: str) -> tuple[Image.Image, str, str | None, bytes | None]:
    """(RGB image, sha256, format, the file's bytes: None for a PIL image) or ImageLoadError.
    The bytes are read once, for the hash, the decode and the provenance evidence."""
    if isinstance(item, Image.Image):
        img = to_rgb(item)
        return img, hashlib.sha256(img.tobytes()).hexdigest(), item.format, None
    data = item if isinstance(item, bytes) else read_file_bytes(item)  # no FIFO, no loop, bounded
    img = load_image(data, name=name)
    return img, hashlib.sha256(data).hexdigest(), sniff_format(data), data


def sniff_format(data: bytes) -> str | None:
    """Pillow's format name from the magic bytes (a second Image.open costs more than the
    decode of a 32 px image); Pillow itself for anything else."""
    name = format_from_magic(data[:16])
    if name is not None:
        return name
    try:
        with Image.open(io.BytesIO(data)) as head:
            return head.format
    except Exception:  # noqa: BLE001 - format is informative only
        return None
