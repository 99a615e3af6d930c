"""Heatmap files: the raw CAM (8-bit grayscale PNG, small) and the overlay PNG (the image
with a JET colour map on top: red = high importance, blue = low), both named from the image
content's SHA-256 and the model version, so scoring the same file again never duplicates
them. Encoding uses OpenCV with a low PNG compression level: these files are written for
every scored image, and zlib level 1 is several times faster than Pillow's default."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1]


def heatmap_names(sha256: str, version: str, method: str, target: str, default_method: str) -> tuple[str, str]:
    """(cam file, overlay file) relative to the heatmap directory: ``ab/<sha>-<version>...``
    sharded by the first two hex digits so one folder never holds a million files."""
    stem = f"{sha256}-{version}"
    if method != default_method:
        stem += f"-{method}"
    if target != "predicted":
        stem += f"-{target}"
    shard = sha256[:2]
    return f"{shard}/{stem}.cam.png", f"{shard}/{stem}.overlay.png"


def overlay_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_overlay(image: Image.Image | np.ndarray, cam: np.ndarray, max_side: int, alpha: float) -> np.ndarray:
    """BGR uint8 overlay at the image's size capped at ``max_side`` on the long side.
    ``cam`` is float in [0, 1] of any size (resized here, bilinear)."""
    rgb = np.asarray(image) if isinstance(image, Image.Image) else image
    h, w = rgb.shape[:2]
    ow, oh = overlay_size(w, h, max_side)
    if (ow, oh) != (w, h):
        rgb = cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA)
    base = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    cam8 = np.clip(cam * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if cam8.shape != (oh, ow):
        cam8 = cv2.resize(cam8, (ow, oh), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(cam8, cv2.COLORMAP_JET)
    return cv2.addWeighted(heat, float(alpha), base, 1.0 - float(alpha), 0.0)


def cam_to_png8(cam: np.ndarray) -> np.ndarray:
    return np.clip(cam * 255.0 + 0.5, 0, 255).astype(np.uint8)


def read_cam_png(path: str | Path) -> np.ndarray:
    """Read a raw CAM file back as float32 in [0, 1]."""
    arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise FileNotFoundError(str(path))
    return arr.astype(np.float32) / 255.0


def write_png(path: Path, array: np.ndarray) -> None:
    """Encode and write atomically (temp file + rename): readers never see half a file."""
    ok, buf = cv2.imencode(".png", array, PNG_FAST)
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise RuntimeError(f"could not encode {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
