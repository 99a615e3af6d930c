"""View planning from 1 x 1 to 12000 x 9000 px and odd aspect ratios, and heatmap stitching
without seams."""

from __future__ import annotations

import numpy as np
import pytest

from aidetect.inference import cam_canvas_size, plan_views, stitch
from aidetect.inference.views import JPEG_BLOCK

SIZES = [(1, 1), (7, 3), (31, 32), (224, 224), (225, 224), (1, 5000), (5000, 1), (300, 4000), (512, 512),
         (640, 480), (1024, 1536), (4032, 3024), (12000, 9000), (9000, 12000), (20000, 230)]


@pytest.mark.parametrize(("width", "height"), SIZES, ids=lambda v: str(v))
@pytest.mark.parametrize(("size", "max_tiles"), [(224, 16), (32, 16), (224, 1)])
def test_plan_views_any_size(width: int, height: int, size: int, max_tiles: int) -> None:
    plan = plan_views(width, height, size, 96, max_tiles)
    assert len(plan.tiles) <= max_tiles
    if plan.tiles:
        assert len(plan.regions) == len(plan.tiles)
        for x, y in plan.tiles:  # every tile inside the image, at native resolution, on the JPEG grid
            assert 0 <= x <= width - size and 0 <= y <= height - size
            assert x % JPEG_BLOCK == 0 and y % JPEG_BLOCK == 0
        if -(-width // size) * -(-height // size) <= max_tiles:  # the covering grid fits: tiles cover the image
            xs = sorted({x for x, _ in plan.tiles})
            ys = sorted({y for _, y in plan.tiles})
            assert xs[0] == 0 and ys[0] == 0
            assert width - (xs[-1] + size) < JPEG_BLOCK and height - (ys[-1] + size) < JPEG_BLOCK
            assert all(b - a <= size for a, b in zip(xs, xs[1:], strict=False))
            assert all(b - a <= size for a, b in zip(ys, ys[1:], strict=False))
        else:  # sampled: spread over the whole image, each drawn over its own cell
            x0 = min(r[0] for r in plan.regions)
            x1 = max(r[2] for r in plan.regions)
            assert x0 == 0 and x1 == pytest.approx(width)
    else:  # one view: the whole image, or its centre crop, resized
        assert len(plan.regions) == 1
        a, b, c, d = plan.regions[0]
        assert 0 <= a < c <= width + 1e-6 and 0 <= b < d <= height + 1e-6
    cw, ch = cam_canvas_size(width, height)
    assert max(cw, ch) <= 256 and min(cw, ch) >= 1


def test_stitched_heatmap_has_no_tile_seams() -> None:
    """Overlapping tiles whose CAMs disagree (one flat high, the next flat low) fade into each
    other: the largest step between neighbouring heatmap pixels is a fraction of the jump a
    plain average leaves at a tile's edge."""
    width, height, size = 512, 224, 224
    plan = plan_views(width, height, size, 96, 16)
    assert len(plan.tiles) == 3  # tiles at x = 0, 144, 288: overlaps of 80 px
    cams = np.stack([np.full((7, 7), v, np.float32) for v in (1.0, 0.0, 1.0)])
    heat = stitch(cams, plan, width, height)
    row = heat[heat.shape[0] // 2]
    steps = np.abs(np.diff(row))
    assert steps.max() < 0.15, steps.max()  # a hard seam would be a step of 0.5 (mean of 1 and 0)
    assert row[0] == pytest.approx(1.0) and row.min() < 0.2  # the tiles' own values survive where alone


def test_stitch_covers_the_whole_image() -> None:
    plan = plan_views(1000, 700, 224, 96, 64)
    cams = np.ones((len(plan.tiles), 7, 7), np.float32)
    heat = stitch(cams, plan, 1000, 700)
    cw, ch = cam_canvas_size(1000, 700)
    assert heat.shape == (ch, cw)
    # every pixel but the at most 7 px at the far edges that no tile on the JPEG grid reaches
    inner = heat[: int(ch * (1 - 8 / 700)), : int(cw * (1 - 8 / 1000))]
    assert (inner > 0).all()
