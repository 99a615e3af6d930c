"""View planning from 1 x 1 to 12000 x 9000 px and odd aspect ratios (input-size tiles, and the
default model's whole-image / window views), heatmap stitching without seams, and parts no view
saw marked as unseen."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aidetect.explain.overlay import cam_file_array, read_cam_png, render_overlay, write_image
from aidetect.inference import cam_canvas_size, plan_views, stitch
from aidetect.inference.views import JPEG_BLOCK, seen_share

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
        else:  # sampled: spread over the image, each drawn over itself only (the rest is unseen)
            for (x, y), (a, b, c, d) in zip(plan.tiles, plan.regions, strict=True):
                assert (a, b) == (x, y)  # the tile itself; extended only over the < 8 px to an edge
                assert c in (x + size, width) and d in (y + size, height) and c - x - size < JPEG_BLOCK > d - y - size
            xs = sorted({x for x, _ in plan.tiles})
            assert xs[0] < width / 2 < xs[-1] + size  # spread, not bunched in a corner
    else:  # one view: the whole image, or its centre crop, resized
        assert len(plan.regions) == 1
        a, b, c, d = plan.regions[0]
        assert 0 <= a < c <= width + 1e-6 and 0 <= b < d <= height + 1e-6
    cw, ch = cam_canvas_size(width, height)
    assert max(cw, ch) <= 256 and min(cw, ch) >= 1


WINDOW, WHOLE = 512, 1024 * 1024  # the shipped default's card ``views``


@pytest.mark.parametrize(("width", "height"), SIZES, ids=lambda v: str(v))
@pytest.mark.parametrize("max_windows", [8, 1])
def test_window_views_any_size(width: int, height: int, max_windows: int) -> None:
    """The default model's rule: the whole image when it has at most WHOLE pixels, else windows
    of 512 px (or the image's side) on the JPEG grid, at most ``max_windows``; images with a
    side under the input size are not this model's (routed to the small-image model) and get
    the input-size rule."""
    plan = plan_views(width, height, 224, 96, max_windows, window=WINDOW, whole_max_pixels=WHOLE)
    if min(width, height) < 224:
        assert plan.view == (224, 224) or plan.tiles
        return
    assert 1 <= len(plan.tiles) <= max_windows and len(plan.regions) == len(plan.tiles)
    vw, vh = plan.view
    if width * height <= WHOLE:
        assert plan.tiles == [(0, 0)] and plan.view == (width, height)
        assert plan.regions == [(0.0, 0.0, float(width), float(height))]
        return
    assert (vw, vh) == (min(WINDOW, width), min(WINDOW, height))
    for x, y in plan.tiles:
        assert 0 <= x <= width - vw and 0 <= y <= height - vh and x % JPEG_BLOCK == 0 and y % JPEG_BLOCK == 0
    assert len(set(plan.tiles)) == len(plan.tiles)


def test_whole_image_heatmap_is_one_cam_over_everything() -> None:
    plan = plan_views(1000, 700, 224, 96, 8, window=WINDOW, whole_max_pixels=WHOLE)
    cam = np.random.default_rng(0).random((1, 22, 32)).astype(np.float32)
    heat = stitch(cam, plan, 1000, 700)
    assert heat.shape == cam_canvas_size(1000, 700)[::-1]
    assert np.isfinite(heat).all() and heat.min() == 0 and heat.max() == pytest.approx(1.0)


def test_sampled_windows_leave_unseen_parts_marked(tmp_path) -> None:  # noqa: ANN001
    """A 12 MP photo is seen through 8 windows of 512 px: the heatmap is NaN ("not seen")
    between them, never "least influence"; the raw CAM file keeps that (alpha 0), and the
    overlay paints those parts gray and hatched, not in heat colours."""
    w, h = 4032, 3024
    plan = plan_views(w, h, 224, 96, 8, window=WINDOW, whole_max_pixels=WHOLE)
    assert len(plan.tiles) == 8 and plan.view == (512, 512)
    heat = stitch(np.ones((8, 16, 16), np.float32), plan, w, h)
    seen = np.isfinite(heat)
    share = seen.mean()
    assert 8 * 512 * 512 / (w * h) * 0.8 < share < 8 * 512 * 512 / (w * h) * 1.25  # what the windows cover
    assert (heat[seen] == 0).all()  # a flat map over the seen part; the rest stays NaN
    assert seen_share(plan, w, h) == pytest.approx(share, abs=0.01)  # what `predict` reports as "seen"
    whole = plan_views(1000, 700, 224, 96, 8, window=WINDOW, whole_max_pixels=WHOLE)
    assert seen_share(whole, 1000, 700) == 1.0
    path = tmp_path / "x.cam.png"
    write_image(path, cam_file_array(heat))
    back = read_cam_png(path)
    assert (np.isfinite(back) == seen).all()
    img = np.full((h // 8, w // 8, 3), 128, np.uint8)
    img[..., 0] = 250  # a red picture: unseen parts must come out gray
    over = render_overlay(img, heat, 1024, 0.45)  # BGR
    small_seen = cv2.resize(seen.astype(np.uint8), over.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    unseen_px = over[~small_seen].astype(int)
    assert (np.abs(unseen_px[:, 0] - unseen_px[:, 2]) <= 2).all()  # gray: B == R (no heat colour, no red)
    lines = (unseen_px[:, 0] >= 195).mean()
    assert 0.05 < lines < 0.35  # the hatching


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
    # every pixel (the <= 7 px at the far edges no tile on the JPEG grid reaches: drawn by the last tiles)
    assert np.isfinite(heat).all()


def test_passes_group_by_shape_within_a_pixel_budget() -> None:
    """make_passes: images whose views share a shape go together, in input order, split when a
    pass would exceed the pixel budget; an image over the budget alone is a pass of its own."""
    import torch

    from aidetect.inference.detector import Prepared, make_passes

    shapes = [(2, 32, 32), (1, 64, 48), (3, 32, 32), (1, 32, 32), (9, 32, 32), (1, 64, 48)]
    views = [torch.zeros((k, 3, h, w), dtype=torch.uint8) for k, h, w in shapes]
    decoded = list(range(len(views)))
    prep = Prepared([], decoded, [None] * len(views), views)  # type: ignore[arg-type, list-item]
    passes = make_passes(prep, max_pixels=6 * 32 * 32)
    assert [p.decoded for p in passes] == [[0, 2, 3], [4], [1, 5]]
    assert [p.rows for p in passes] == [[(0, 2), (2, 5), (5, 6)], [(0, 9)], [(0, 1), (1, 2)]]
    assert [tuple(p.batch.shape) for p in passes] == [(6, 3, 32, 32), (9, 3, 32, 32), (2, 3, 64, 48)]
    assert len(make_passes(prep)) == 2  # the default budget: one pass per shape


@pytest.mark.parametrize(("width", "height"), [(2048, 2048), (4032, 3024), (2048, 1536), (1200, 1200), (3000, 3000)])
def test_sampled_windows_leave_no_whole_band_unseen(width: int, height: int) -> None:
    """Windows that cannot cover the image are spread on a lattice: every row band and every
    column band of the image holds a window (8 windows of 512 px span 4096 px), and no two
    windows sit on one row or one column; a 2048 x 2048 render was seen as two rows of four,
    three full-width bands unseen."""
    plan = plan_views(width, height, 224, 96, 8, window=WINDOW, whole_max_pixels=WHOLE)
    assert len(plan.tiles) == 8
    rows = np.zeros(height, bool)
    cols = np.zeros(width, bool)
    for x0, y0, x1, y1 in plan.regions:
        cols[int(x0) : int(x1)] = True
        rows[int(y0) : int(y1)] = True
    assert cols.all() and rows.all()
    assert len({x for x, _ in plan.tiles}) == 8 and len({y for _, y in plan.tiles}) == 8
    xs, ys = np.array(plan.tiles, float).T  # spread in two dimensions: not along one diagonal
    assert abs(np.corrcoef(xs, ys)[0, 1]) < 0.5


def test_covering_windows_overlap_where_the_budget_allows() -> None:
    """A 1500 x 1000 photo is covered by 8 windows whose neighbours overlap (>= 64 px), so the
    seams between their CAMs fall where the CAMs are blended."""
    plan = plan_views(1500, 1000, 224, 96, 8, window=WINDOW, whole_max_pixels=WHOLE)
    assert seen_share(plan, 1500, 1000) == 1.0
    xs, ys = sorted({x for x, _ in plan.tiles}), sorted({y for _, y in plan.tiles})
    assert all(WINDOW - (b - a) >= 64 for a, b in zip(xs, xs[1:], strict=False))
    assert all(WINDOW - (b - a) >= 0 for a, b in zip(ys, ys[1:], strict=False))
    heat = stitch(np.stack([np.full((16, 16), float(i % 2), np.float32) for i in range(len(plan.tiles))]),
                  plan, 1500, 1000)
    row = heat[heat.shape[0] // 4]  # across the overlapping columns of the first row of windows
    assert np.nanmax(np.abs(np.diff(row))) < 0.35  # faded, not a 0 -> 1 step at a window's edge
