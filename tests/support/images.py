"""Make test images quickly: distinct small PNG/JPEG files and the bad inputs the pipeline
must survive (non-image, truncated, zero bytes, decompression bomb header, symlink out)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def image_bytes(seed: int, side: int = 32, fmt: str = "PNG") -> bytes:
    """A distinct image (colour blocks + noise): a different seed gives different bytes."""
    rng = np.random.default_rng(seed)
    block = max(1, side // 4)
    base = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8).repeat(block, 0).repeat(block, 1)
    base = np.resize(base, (side, side, 3)) if base.shape[0] != side else base
    noise = rng.integers(-20, 21, size=base.shape)
    arr = np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_images(folder: Path, n: int, start: int = 0, side: int = 32, fmt: str = "PNG") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ext = "jpg" if fmt == "JPEG" else fmt.lower()
    out = []
    for i in range(start, start + n):
        p = folder / f"img_{i:05d}.{ext}"
        p.write_bytes(image_bytes(i, side, fmt))
        out.append(p)
    return out


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims huge dimensions (Pillow refuses it as a bomb)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    # IHDR chunk: 8-byte signature, 4 length, 4 type, then width, height
    struct.pack_into(">II", data, 16, width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    struct.pack_into(">I", data, 29, crc)
    return bytes(data)


def write_bad_inputs(folder: Path, outside: Path) -> dict[str, Path]:
    """Bad files in ``folder`` (and a target in ``outside`` for a symlink that leaves it).
    Returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    good = image_bytes(99_999, 64, "JPEG")
    files = {
        "not_image": folder / "notes.jpg",
        "truncated": folder / "truncated.jpg",
        "zero": folder / "zero.png",
        "bomb": folder / "bomb.png",
        "symlink_out": folder / "link_out.jpg",
    }
    files["not_image"].write_text("this is not an image\n")
    files["truncated"].write_bytes(good[: len(good) // 3])
    files["zero"].write_bytes(b"")
    files["bomb"].write_bytes(bomb_png())
    target = outside / "secret.png"
    target.write_bytes(image_bytes(123_456))
    files["symlink_out"].symlink_to(target)
    return files
