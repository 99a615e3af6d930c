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

    ``tiles``: (x, y) top-left corners of native-resolution crops of ``view`` = (width,
    height) pixels each (one crop at (0, 0) of the image's own size when the model sees it
    whole), or empty when the image is resized + centre-cropped by EvalPreset.
    ``regions``: per view, the (x0, y0, x1, y1) box of the image its CAM is drawn over; parts
    of the image in no region were not seen and are marked so in the heatmap (NaN).
    """

    tiles: list[tuple[int, int]]
    regions: list[tuple[float, float, float, float]]
    view: tuple[int, int] = (0, 0)

    def one_view_of_all(self, width: int, height: int) -> bool:
        """One view whose CAM covers the whole image (seen whole, or exactly the input size)."""
        return len(self.regions) == 1 and self.regions[0] == (0.0, 0.0, float(width), float(height))


def tile_grid(width: int, height: int, size: int | tuple[int, int], max_tiles: int) -> tuple[int, int]:
    """Columns x rows of ``size`` tiles (one side, or (width, height)): enough to cover the
    image when that takes at most ``max_tiles``; otherwise the largest grid within
    ``max_tiles`` with the image's aspect ratio (tiles then sample the image evenly)."""
    sx, sy = (size, size) if isinstance(size, int) else size
    gx, gy = math.ceil(width / sx), math.ceil(height / sy)
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


def _axis(length: int, size: int, n: int) -> list[int]:
    """Tile starts along one axis: each tile centred in its cell of an even partition, then
    moved to the nearest multiple of 8 so that a tile's 8 x 8 blocks are the JPEG encoder's
    blocks, as in training (at most 7 px at the far edge of a covering grid go unseen)."""
    edges = np.linspace(0.0, float(length), n + 1)
    last = (length - size) // JPEG_BLOCK * JPEG_BLOCK
    starts = []
    for i in range(n):
        centre = (edges[i] + edges[i + 1]) / 2
        s = min(max(centre - size / 2, 0), length - size)
        starts.append(min(int(round(s / JPEG_BLOCK)) * JPEG_BLOCK, last))
    return starts


def _grid(width: int, height: int, vw: int, vh: int, max_tiles: int) -> ViewPlan:
    """Native-resolution crops of vw x vh on the JPEG grid, covering the image or sampling it
    evenly (:func:`tile_grid`); each crop's CAM is drawn over the crop itself (the rest of a
    sampled image stays unseen)."""
    nx, ny = tile_grid(width, height, (vw, vh), max_tiles)
    tiles = [(x, y) for y in _axis(height, vh, ny) for x in _axis(width, vw, nx)]
    def end(start: int, size: int, length: int) -> float:  # the <= 7 px a grid on 8 px cannot reach: drawn by the last crop
        return float(length if length - (start + size) < JPEG_BLOCK else start + size)

    regions = [(float(x), float(y), end(x, vw, width), end(y, vh, height)) for x, y in tiles]
    return ViewPlan(tiles=tiles, regions=regions, view=(vw, vh))


WINDOW_OVERLAP = 64  # px: wanted overlap of neighbouring windows, where their CAMs are blended


def _even_starts(length: int, size: int, n: int) -> list[int]:
    """``n`` starts of ``size`` px views spread evenly from 0 to the far edge, on the 8 px JPEG
    grid (one view: centred)."""
    last = (length - size) // JPEG_BLOCK * JPEG_BLOCK
    if n <= 1:
        return [min(last, (length - size) // 2 // JPEG_BLOCK * JPEG_BLOCK)]
    return [min(last, int(round(i * (length - size) / (n - 1) / JPEG_BLOCK)) * JPEG_BLOCK) for i in range(n)]


def _covering_grid(width: int, height: int, vw: int, vh: int, max_windows: int) -> tuple[int, int] | None:
    """Columns x rows of windows that cover the image, at most ``max_windows``: of the grids that
    fit, the one whose neighbours overlap most (up to WINDOW_OVERLAP: seams fall where CAMs are
    blended), then the one with fewer windows. None when no covering grid fits."""
    def overlap(length: int, size: int, n: int) -> float:
        return float(size) if n <= 1 else size - (length - size) / (n - 1)

    best: tuple[float, int, tuple[int, int]] | None = None
    for nx in range(max(1, math.ceil(width / vw)), max_windows + 1):
        for ny in range(max(1, math.ceil(height / vh)), max_windows // nx + 1):
            ov = min(min(overlap(width, vw, nx), WINDOW_OVERLAP) if width > vw else WINDOW_OVERLAP,
                     min(overlap(height, vh, ny), WINDOW_OVERLAP) if height > vh else WINDOW_OVERLAP)
            key = (ov, -nx * ny, (nx, ny))
            if best is None or key[:2] > best[:2]:
                best = key
    return None if best is None else best[2]


def lattice_step(xs: list[int], ys: list[int]) -> int:
    """The multiplier of the rank-1 lattice (Korobov) through ``n`` columns ``xs`` and rows ``ys``:
    window i at (xs[i], ys[i * step mod n]), with ``step`` coprime with n so that every row is
    used once, chosen so that the nearest two windows are as far apart as possible."""
    n = len(xs)
    if n <= 2:
        return 1

    def nearest(step: int) -> float:
        pts = np.array([(xs[i], ys[(i * step) % n]) for i in range(n)], np.float64)
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
        d[np.diag_indices(n)] = np.inf
        return float(d.min())

    return max((a for a in range(1, n) if math.gcd(a, n) == 1), key=lambda a: (nearest(a), -a))


def _window_views(width: int, height: int, vw: int, vh: int, max_windows: int) -> ViewPlan:
    """Windows of vw x vh for an image larger than the whole-image limit: a covering grid when
    one fits in ``max_windows`` (neighbours overlapping where possible, so their CAMs blend),
    else ``max_windows`` windows on a rank-1 lattice: the i-th window at the i-th of n evenly
    spread columns and the (i * step mod n)-th of n evenly spread rows. Every column band and
    every row band of the image then holds a window (when n windows span a side), and they are
    spread in two dimensions: no whole band of the picture goes unseen, as it did with the
    rows of windows before (a 2048 x 2048 render: two rows of four, three full-width bands unseen)."""
    grid = _covering_grid(width, height, vw, vh, max_windows)
    if grid is not None:
        nx, ny = grid
        tiles = [(x, y) for y in _even_starts(height, vh, ny) for x in _even_starts(width, vw, nx)]
    else:
        n = max(1, max_windows)
        xs, ys = _even_starts(width, vw, n), _even_starts(height, vh, n)
        step = lattice_step(xs, ys)
        tiles = sorted({(xs[i], ys[(i * step) % n]) for i in range(n)}, key=lambda t: (t[1], t[0]))

    def end(start: int, size: int, length: int) -> float:  # the <= 7 px a grid on 8 px cannot reach
        return float(length if length - (start + size) < JPEG_BLOCK else start + size)

    regions = [(float(x), float(y), end(x, vw, width), end(y, vh, height)) for x, y in tiles]
    return ViewPlan(tiles=tiles, regions=regions, view=(vw, vh))


def plan_views(width: int, height: int, size: int, tile_min_side: int, max_tiles: int, *,
               window: int = 0, whole_max_pixels: int = 0) -> ViewPlan:
    """The view policy.

    Fully convolutional models whose card asks for it (``window`` > 0, the default model): an
    image of at most ``whole_max_pixels`` is seen whole, in one pass at native resolution;
    a larger one as windows of ``window`` px (or its side, if smaller) covering it when at
    most ``max_tiles`` windows do, else ``max_tiles`` of them spread on a lattice
    (:func:`_window_views`).

    Otherwise (input-size tiles): an image of exactly the model's input size is fed
    unchanged; one whose short side is at least ``max(size, tile_min_side)`` is cut into
    input-size tiles at native resolution (see :func:`tile_grid`); anything else is resized
    on the short side and centre-cropped (EvalPreset); its CAM covers the cropped part."""
    if window > 0 and min(width, height) >= size:
        if width * height <= whole_max_pixels:
            return ViewPlan(tiles=[(0, 0)], regions=[(0.0, 0.0, float(width), float(height))], view=(width, height))
        return _window_views(width, height, min(window, width), min(window, height), max(1, max_tiles))
    if (width, height) != (size, size) and min(width, height) >= max(size, tile_min_side) and max_tiles > 1:
        return _grid(width, height, size, size, max_tiles)
    if (width, height) == (size, size):
        return ViewPlan(tiles=[], regions=[(0.0, 0.0, float(width), float(height))], view=(size, size))
    short, long_ = min(width, height), max(width, height)
    scale = size / short
    new_long = int(size * long_ / short)
    if width <= height:
        rw, rh = size, new_long
    else:
        rw, rh = new_long, size
    left, top = int(round((rw - size) / 2)), int(round((rh - size) / 2))
    region = (left / scale, top / scale, (left + size) / scale, (top + size) / scale)
    return ViewPlan(tiles=[], regions=[region], view=(size, size))


def cam_canvas_size(width: int, height: int, max_side: int = CAM_MAX_SIDE) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def seen_share(plan: ViewPlan, width: int, height: int) -> float:
    """The share of the image's pixels inside at least one view's region (1.0 for an image seen
    whole or covered; 0.17 for a 12 MP photo seen through 8 windows of 512 px), measured on the
    heatmap's canvas."""
    if plan.one_view_of_all(width, height):
        return 1.0
    cw, ch = cam_canvas_size(width, height)
    sx, sy = cw / width, ch / height
    mask = np.zeros((ch, cw), bool)
    for x0, y0, x1, y1 in plan.regions:
        mask[max(0, round(y0 * sy)) : max(1, round(y1 * sy)), max(0, round(x0 * sx)) : max(1, round(x1 * sx))] = True
    return float(mask.mean())


def stitch(cams: np.ndarray, plan: ViewPlan, width: int, height: int) -> np.ndarray:
    """Per-view raw CAMs (k, h, w) -> one float32 heatmap over the whole image (aspect
    kept, long side <= CAM_MAX_SIDE), normalised to [0, 1] over the image (so tiles keep
    their relative importance). Parts no view saw (outside a centre crop, between sampled
    windows) are NaN: not seen, which is not "least influence"."""
    cw, ch = cam_canvas_size(width, height)
    if plan.one_view_of_all(width, height):
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
    acc[cnt <= 0] = np.nan
    return normalise(acc)


BLEND_FLOOR = 0.05  # weight of a view's CAM at its border (never 0: a part only one view saw keeps its value)


def blend_window(h: int, w: int) -> np.ndarray:
    """Weights (h, w) of one view's CAM where views overlap: a separable raised sine, highest at
    the view's centre and BLEND_FLOOR at its border, so that overlapping tiles fade into each
    other instead of meeting at a hard seam (a weighted mean, as in overlap-tile segmentation)."""
    def axis(n: int) -> np.ndarray:
        return BLEND_FLOOR + (1 - BLEND_FLOOR) * np.sin(np.pi * (np.arange(n, dtype=np.float32) + 0.5) / n)

    return np.outer(axis(h), axis(w)).astype(np.float32)
