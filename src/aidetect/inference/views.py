"""View planning: which native-resolution crops of an image the model sees, and how their
CAMs are stitched into one heatmap over the whole image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from aidetect.explain.cam import normalise

CAM_MAX_SIDE = 256  # long side of Verdict.cam (and of the raw CAM file)


@dataclass
class ViewPlan:
    """Where the views of one image come from and which part of the heatmap each explains.

    ``tiles``: (x, y) top-left corners of input-size crops at native resolution, or empty
    when the image is fed whole (resized + centre-cropped by EvalPreset if needed).
    ``regions``: per view, the (x0, y0, x1, y1) box of the image its CAM is drawn over.
    """

    tiles: list[tuple[int, int]]
    regions: list[tuple[float, float, float, float]]


def tile_grid(width: int, height: int, size: int, max_tiles: int) -> tuple[int, int]:
    """Columns x rows of input-size tiles: enough to cover the image when that takes at
    most ``max_tiles``; otherwise the largest grid within ``max_tiles`` with the image's
    aspect ratio (tiles then sample the image evenly instead of covering it)."""
    gx, gy = math.ceil(width / size), math.ceil(height / size)
    if gx * gy <= max_tiles:
        return gx, gy
    k = math.sqrt(max_tiles / (gx * gy))
    nx, ny = max(1, min(gx, int(gx * k))), max(1, min(gy, int(gy * k)))
    # a side clamped to 1 tile (a long thin image) leaves the other over the cap: shrink it
    nx, ny = min(nx, max(1, max_tiles // ny)), min(ny, max(1, max_tiles // nx))
    while True:
        grow_x = nx < gx and (nx + 1) * ny <= max_tiles
        grow_y = ny < gy and nx * (ny + 1) <= max_tiles
        if grow_x and (not grow_y or gx / nx >= gy / ny):
            nx += 1
        elif grow_y:
            ny += 1
        else:
            return nx, ny


JPEG_BLOCK = 8


def _axis(length: int, size: int, n: int) -> tuple[list[int], list[tuple[float, float]]]:
    """Tile starts along one axis (each tile centred in its cell of an even partition, then
    moved to the nearest multiple of 8 so that a tile's 8 x 8 blocks are the JPEG encoder's
    blocks, as in training; at most 7 px at the far edge can go unseen) and the span each
    tile's CAM is drawn over (the tile itself when the tiles cover the axis, the tile's cell
    when they only sample it)."""
    edges = np.linspace(0.0, float(length), n + 1)
    last = (length - size) // JPEG_BLOCK * JPEG_BLOCK
    starts, spans = [], []
    for i in range(n):
        centre = (edges[i] + edges[i + 1]) / 2
        s = min(max(centre - size / 2, 0), length - size)
        s = min(int(round(s / JPEG_BLOCK)) * JPEG_BLOCK, last)
        starts.append(s)
        cell = edges[i + 1] - edges[i]
        spans.append((float(s), float(s + size)) if cell <= size else (float(edges[i]), float(edges[i + 1])))
    return starts, spans


def plan_views(width: int, height: int, size: int, tile_min_side: int, max_tiles: int) -> ViewPlan:
    """The tiling policy. An image of exactly the model's input size is fed unchanged. An
    image whose short side is at least ``max(size, tile_min_side)`` is tiled at native
    resolution (see :func:`tile_grid`). Anything else is resized on the short side and
    centre-cropped (EvalPreset); its CAM covers the cropped part."""
    if (width, height) != (size, size) and min(width, height) >= max(size, tile_min_side) and max_tiles > 1:
        nx, ny = tile_grid(width, height, size, max_tiles)
        xs, xspans = _axis(width, size, nx)
        ys, yspans = _axis(height, size, ny)
        tiles = [(x, y) for y in ys for x in xs]
        regions = [(xa, ya, xb, yb) for (ya, yb) in yspans for (xa, xb) in xspans]
        return ViewPlan(tiles=tiles, regions=regions)
    if (width, height) == (size, size):
        return ViewPlan(tiles=[], regions=[(0.0, 0.0, float(width), float(height))])
    short, long_ = min(width, height), max(width, height)
    scale = size / short
    new_long = int(size * long_ / short)
    if width <= height:
        rw, rh = size, new_long
    else:
        rw, rh = new_long, size
    left, top = int(round((rw - size) / 2)), int(round((rh - size) / 2))
    region = (left / scale, top / scale, (left + size) / scale, (top + size) / scale)
    return ViewPlan(tiles=[], regions=[region])


def cam_canvas_size(width: int, height: int, max_side: int = CAM_MAX_SIDE) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def stitch(cams: np.ndarray, plan: ViewPlan, width: int, height: int) -> np.ndarray:
    """Per-view raw CAMs (k, h, w) -> one float32 heatmap over the whole image (aspect
    kept, long side <= CAM_MAX_SIDE), normalised to [0, 1] over the image (so tiles keep
    their relative importance). Parts no view saw (outside a centre crop) stay 0."""
    cw, ch = cam_canvas_size(width, height)
    if len(plan.regions) == 1 and plan.regions[0] == (0.0, 0.0, float(width), float(height)):
        return normalise(cv2.resize(cams[0], (cw, ch), interpolation=cv2.INTER_LINEAR))  # one view, whole image
    sx, sy = cw / width, ch / height
    acc = np.zeros((ch, cw), np.float32)
    cnt = np.zeros((ch, cw), np.float32)
    for cam, (x0, y0, x1, y1) in zip(cams, plan.regions, strict=True):
        a, b = int(round(x0 * sx)), int(round(y0 * sy))
        c, d = max(a + 1, min(cw, int(round(x1 * sx)))), max(b + 1, min(ch, int(round(y1 * sy))))
        a, b = max(0, min(a, cw - 1)), max(0, min(b, ch - 1))
        weight = blend_window(d - b, c - a)
        acc[b:d, a:c] += cv2.resize(cam, (c - a, d - b), interpolation=cv2.INTER_LINEAR) * weight
        cnt[b:d, a:c] += weight
    np.divide(acc, cnt, out=acc, where=cnt > 0)
    return normalise(acc)


BLEND_FLOOR = 0.05  # weight of a view's CAM at its border (never 0: a part only one view saw keeps its value)


def blend_window(h: int, w: int) -> np.ndarray:
    """Weights (h, w) of one view's CAM where views overlap: a separable raised sine, highest at
    the view's centre and BLEND_FLOOR at its border, so that overlapping tiles fade into each
    other instead of meeting at a hard seam (a weighted mean, as in overlap-tile segmentation)."""
    def axis(n: int) -> np.ndarray:
        return BLEND_FLOOR + (1 - BLEND_FLOOR) * np.sin(np.pi * (np.arange(n, dtype=np.float32) + 0.5) / n)

    return np.outer(axis(h), axis(w)).astype(np.float32)
