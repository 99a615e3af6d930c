"""Image work for the dashboard (runs on background lanes, never on the Tk thread):
decode and fit images for display, thumbnails, and re-blending a saved raw Grad-CAM map
over the original at any opacity.

Colouring and blending are the core's (:mod:`aidetect.explain.overlay`, the same JET map as
the saved overlay files): red = most influence on the verdict, blue = least. This module only
turns them into the RGB Pillow images the window shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from aidetect.explain import overlay
from aidetect.model.decode import load_image

THUMB_SIDE = 40
# Upscale small images (CIFAKE is 32x32) with hard pixels rather than a blur: what the person
# sees is what the model saw.
_NEAREST_BELOW = 128


def open_image(path: str | Path, max_side: int = 1024) -> Image.Image:
    """Decode an image file as the model sees it (``aidetect.model.decode``: upright RGB,
    transparency on white), no larger than ``max_side`` on its long side."""
    im = load_image(path, draft=max_side)  # JPEG: decoded at reduced scale, much faster
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


def colorize(cam: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The CAM as a JET heat image (red = high) of ``size`` (width, height)."""
    return Image.fromarray(np.ascontiguousarray(overlay.jet_heat(cam, size)[..., ::-1]))


def blend(image: Image.Image, heat: Image.Image, alpha: float, unseen: np.ndarray | None = None) -> Image.Image:
    """``(1 - alpha) * image + alpha * heat`` (both RGB of the same size); parts in ``unseen``
    (not seen by the model, :func:`aidetect.explain.overlay.unseen_mask`) gray and hatched, as in the overlay files."""
    return Image.fromarray(overlay.blend_heat(np.asarray(image), np.asarray(heat), alpha, unseen))



def legend_bar(width: int = 160, height: int = 12) -> Image.Image:
    """A horizontal JET gradient, blue (left, least influence) to red (right, most)."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return colorize(ramp, (width, height))
