"""Heatmap files: the raw CAM (8-bit grayscale PNG, small, exact; gray + alpha where part of
the image was not seen) and the overlay JPEG (the image with a JET colour map on top: red =
high importance, blue = low), both named from the image content's SHA-256 and the model
version, so scoring the same file again never duplicates them. These files are written for
every scored image, so encoding uses the fastest settings measured: the overlay as JPEG q90
(0.7 ms for 512 x 512 against 9.2 ms for the fastest PNG, docs/inference.md), the CAM as PNG
with PNG_FAST."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from aidetect.errors import ImageLoadError

# zlib level 1 with the RLE strategy and the fixed "Up" row filter: measured ~2x faster
# than level 1 with the default strategy and adaptive filters (~7.5 vs ~14.6 ms CPU for a
# 512 x 512 overlay), files about the same size. (Passing only the level would silently
# reset OpenCV's default RLE strategy.)
PNG_FAST = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
]


def heatmap_names(sha256: str, version: str, method: str, target: str, default_method: str) -> tuple[str, str]:
    """(cam file, overlay file) relative to the heatmap directory: ``ab/<sha>-<version>...``
    sharded by the first two hex digits so one folder never holds a million files."""
    stem = f"{sha256}-{version}"
    if method != default_method:
        stem += f"-{method}"
    if target != "predicted":
        stem += f"-{target}"
    shard = sha256[:2]
    return f"{shard}/{stem}.cam.png", f"{shard}/{stem}.overlay.jpg"


# applyColorMap rebuilds its 256-entry table on every call (~0.2 ms, as much as the rest of a
# 32 px overlay); the table is built once here and applied with cv2.LUT.
_JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET).reshape(256, 1, 3)


def overlay_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_overlay(image: Image.Image | np.ndarray, cam: np.ndarray, max_side: int, alpha: float) -> np.ndarray:
    """BGR uint8 overlay at the image's size capped at ``max_side`` on the long side.
    ``cam`` is float in [0, 1] of any size (resized here, bilinear); NaN parts (not seen by
    the model) are drawn as the image in gray under diagonal hatching, never in colour."""
    rgb = np.asarray(image) if isinstance(image, Image.Image) else image
    h, w = rgb.shape[:2]
    ow, oh = overlay_size(w, h, max_side)
    if (ow, oh) != (w, h):
        rgb = cv2.resize(rgb, (ow, oh), interpolation=cv2.INTER_AREA)
    base = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    return blend_heat(base, jet_heat(cam, (ow, oh)), alpha, unseen_mask(cam, (ow, oh)))


def unseen_mask(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """Boolean (height, width) mask of the parts of ``cam`` no view saw (NaN), at ``size``
    (width, height); None when the model saw everything."""
    unseen = ~np.isfinite(cam)
    if not unseen.any():
        return None
    return cv2.resize(unseen.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)


def jet_heat(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cam`` (float in [0, 1], any size) as a BGR uint8 JET image of ``size`` (width,
    height), resized bilinear: red = high importance, blue = low (NaN drawn as 0; see
    :func:`unseen_mask`)."""
    cam8 = cam_to_png8(cam)
    if cam8.shape != (size[1], size[0]):
        cam8 = cv2.resize(cam8, size, interpolation=cv2.INTER_LINEAR)
    return cv2.LUT(cv2.cvtColor(cam8, cv2.COLOR_GRAY2BGR), _JET)  # = applyColorMap(JET), no LUT rebuild


HATCH_PERIOD = 12  # px between the diagonal lines drawn over parts the model did not see


def blend_heat(base: np.ndarray, heat: np.ndarray, alpha: float, unseen: np.ndarray | None = None) -> np.ndarray:
    """``alpha * heat + (1 - alpha) * base``, rounded; uint8 arrays of one shape and channel
    order (BGR or RGB alike). Where ``unseen`` is set: the image in gray, dimmed, with light
    diagonal lines (no heat colour: the model did not look there)."""
    out = cv2.addWeighted(heat, float(alpha), base, 1.0 - float(alpha), 0.0)
    if unseen is None:
        return out
    gray = base.mean(axis=2, keepdims=True) * 0.55 + 40
    yy, xx = np.indices(unseen.shape)
    lines = ((xx + yy) % HATCH_PERIOD) < 2
    shade = np.where(lines[..., None], 200.0, gray)
    out[unseen] = np.clip(shade[unseen], 0, 255).astype(np.uint8)
    return out


def cam_to_png8(cam: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8 (NaN -> 0)."""
    return np.clip(np.nan_to_num(cam, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def cam_file_array(cam: np.ndarray) -> np.ndarray:
    """What the raw CAM file holds: 8-bit gray, or gray + alpha (BGRA, alpha 0 = not seen by
    the model) when part of the image was not seen."""
    cam8 = cam_to_png8(cam)
    unseen = ~np.isfinite(cam)
    if not unseen.any():
        return cam8
    alpha = np.where(unseen, 0, 255).astype(np.uint8)
    return np.dstack([cam8, cam8, cam8, alpha])


def read_cam_png(path: str | Path) -> np.ndarray:
    """Read a raw CAM file back as float32 in [0, 1], NaN where the model saw nothing (alpha
    0); :class:`ImageLoadError` when the file is missing or not a PNG OpenCV can decode."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageLoadError(f"cannot read heatmap {path}")
    if arr.ndim == 2:
        return arr.astype(np.float32) / 255.0
    cam = arr[..., 0].astype(np.float32) / 255.0
    if arr.shape[2] == 4:
        cam[arr[..., 3] == 0] = np.nan
    return cam


_MADE: set[str] = set()


OVERLAY_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 90]


def write_image(path: Path, array: np.ndarray) -> None:
    """Encode (PNG with PNG_FAST, or JPEG q90 for a ``.jpg`` path) and write atomically (temp
    file + rename): readers never see half a file."""
    suffix = ".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png"
    ok, buf = cv2.imencode(suffix, array, OVERLAY_JPEG if suffix == ".jpg" else PNG_FAST)
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise RuntimeError(f"could not encode {path.name}")
    parent = str(path.parent)
    if parent not in _MADE:  # one mkdir per shard folder per process, not one per file
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(_MADE) > 100_000:
            _MADE.clear()
        _MADE.add(parent)
    try:
        fd, tmp = _new_temp(parent, suffix)
    except FileNotFoundError:  # the folder was removed since: make it again
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_temp(parent, suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_temp(folder: str, suffix: str) -> tuple[int, str]:
    """A new file in ``folder`` created with mode 0666 less the umask, as any file a user's
    program writes (``tempfile.mkstemp`` makes 0600: a dashboard running as another user of
    the group could not read the heatmaps)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(folder, f".tmp-{secrets.token_hex(8)}{suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", folder)  # pragma: no cover
