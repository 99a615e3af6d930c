"""Image work for the dashboard (runs on background lanes, never on the Tk thread):
decode and fit images for display, thumbnails, and re-blending a saved raw Grad-CAM map
over the original at any opacity.

The colour map is the one pytorch-grad-cam's overlays use (OpenCV's JET): red = most
influence on the verdict, blue = least.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from aidetect.errors import ImageLoadError

THUMB_SIDE = 40
# Upscale small images (CIFAKE is 32x32) with hard pixels rather than a blur: what the person
# sees is what the model saw.
_NEAREST_BELOW = 128


def open_image(path: str | Path, max_side: int = 1024) -> Image.Image:
    """Decode an image file as RGB, EXIF-rotated, no larger than ``max_side`` on its long side."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale, much faster
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot open image {path}: {exc}") from exc
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return im


def thumbnail(path: str | Path, side: int = THUMB_SIDE) -> Image.Image:
    """A square thumbnail (letter-boxed) for a table row."""
    im = open_image(path, max_side=max(side * 4, 64))
    return fit(im, side, side, pad=True)


def fit(im: Image.Image, width: int, height: int, pad: bool = False) -> Image.Image:
    """Scale ``im`` to fit inside ``width`` x ``height`` keeping its aspect ratio (up or down)."""
    width, height = max(1, width), max(1, height)
    scale = min(width / im.width, height / im.height)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    if size != im.size:
        small = max(im.size) < _NEAREST_BELOW and scale > 1
        resample = Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS
        im = im.resize(size, resample)
    if pad and size != (width, height):
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        canvas.paste(im, ((width - size[0]) // 2, (height - size[1]) // 2))
        im = canvas
    return im


def load_cam(path: str | Path) -> np.ndarray:
    """A saved raw Grad-CAM map as float32 HxW in [0, 1] (``.npy``, ``.npz`` or a grey PNG)."""
    p = Path(path)
    try:
        if p.suffix == ".npy":
            cam = np.load(p, allow_pickle=False)
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                cam = z[z.files[0]]
        else:
            with Image.open(p) as im:
                cam = np.asarray(im)
                if cam.ndim == 3:
                    cam = cam[..., 0]
                cam = cam.astype(np.float32) / (65535.0 if cam.dtype == np.uint16 else 255.0)
    except (OSError, ValueError, KeyError) as exc:
        raise ImageLoadError(f"cannot read heatmap {p}: {exc}") from exc
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim == 3:
        cam = cam.squeeze()
    return np.clip(np.nan_to_num(cam), 0.0, 1.0)


def colorize(cam: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The CAM as a JET heat image (red = high) of ``size`` (width, height)."""
    import cv2  # local: only the image lanes pay for importing OpenCV

    grey = Image.fromarray(np.uint8(np.round(cam * 255)), mode="L")
    grey = grey.resize(size, Image.Resampling.BILINEAR)
    bgr = cv2.applyColorMap(np.asarray(grey), cv2.COLORMAP_JET)
    return Image.fromarray(bgr[..., ::-1].copy(), mode="RGB")


def blend(image: Image.Image, heat: Image.Image, alpha: float) -> Image.Image:
    """``(1 - alpha) * image + alpha * heat`` (both RGB of the same size)."""
    alpha = float(min(1.0, max(0.0, alpha)))
    if heat.size != image.size:
        heat = heat.resize(image.size, Image.Resampling.BILINEAR)
    return Image.blend(image, heat, alpha)


def legend_bar(width: int = 160, height: int = 12) -> Image.Image:
    """A horizontal JET gradient, blue (left, least influence) to red (right, most)."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return colorize(ramp, (width, height))
