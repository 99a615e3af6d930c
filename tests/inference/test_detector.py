"""Detector: verdicts, batching, one pass per batch, bad inputs, tiling."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aidetect.errors import AidetectError, ModelLoadError
from aidetect.inference import Detector, plan_views, tile_grid
from aidetect.model import AI_INDEX, load_image

MINI = Path(__file__).resolve().parents[1] / "data" / "cifake_mini"


def mini_files(n: int) -> list[Path]:
    files = sorted((MINI / "ai").glob("*")) + sorted((MINI / "real").glob("*"))
    return files[:: max(1, len(files) // n)][:n]


def test_verdict_fields_and_heatmap_range(detector: Detector) -> None:
    files = mini_files(4)
    verdicts = detector.classify(files)
    assert len(verdicts) == 4
    for f, v in zip(files, verdicts, strict=True):
        assert v.ok, v.error
        assert v.source == str(f)
        assert v.label in ("ai", "real") and 0.0 <= v.prob_ai <= 1.0
        assert v.label == detector.card.verdict(v.prob_ai)[0]
        assert v.model_version == detector.version
        assert (v.width, v.height, v.format, v.tiles) == (32, 32, "JPEG", 1)  # CIFAKE: 32 px JPEG
        assert len(v.sha256) == 64
        assert v.cam is not None and v.cam.dtype == np.float32 and v.cam.shape == (32, 32)
        assert v.cam.min() >= 0.0 and v.cam.max() <= 1.0 and v.cam.max() == pytest.approx(1.0)
        assert v.cam_class == v.label and v.cam_target == "predicted"
        assert {"decode", "preprocess", "model", "cam", "total"} <= set(v.timings)
    d = verdicts[0].as_result()
    assert d["path"] == str(files[0]) and "cam" not in d


def test_exact_size_image_equals_eval_preset(detector: Detector) -> None:
    """A 32 px image goes through unchanged: same probability as EvalPreset + the model."""
    f = mini_files(1)[0]
    x = detector.preset(load_image(f))[None]
    with torch.no_grad():
        logits = detector.model(x)
    expected = torch.softmax(logits / detector.card.temperature, 1)[0, AI_INDEX].item()
    (v,) = detector.classify([f], explain=False)
    assert v.prob_ai == pytest.approx(expected, abs=1e-6)
    (w,) = detector.classify([f], explain=True)
    assert w.prob_ai == pytest.approx(expected, abs=1e-5)


def test_batch_of_16_equals_16_single_calls(detector: Detector) -> None:
    files = mini_files(16)
    batch = detector.classify(files)
    for f, b in zip(files, batch, strict=True):
        (s,) = detector.classify([f])
        assert abs(s.prob_ai - b.prob_ai) <= 1e-5
        assert np.abs(s.cam - b.cam).max() <= 1e-4


def test_one_forward_per_batch_and_logits_from_it(detector: Detector) -> None:
    """explain=True: the model runs forward exactly once for the whole batch, so the
    reported probabilities come from the very pass the CAMs were computed on."""
    calls: list[int] = []
    h = detector.model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        verdicts = detector.classify(mini_files(8))
    finally:
        h.remove()
    assert calls == [8]
    assert all(v.ok and v.cam is not None for v in verdicts)


def test_bytes_and_pil_inputs(detector: Detector) -> None:
    f = mini_files(1)[0]
    data = f.read_bytes()
    a, b, c = detector.classify([f, data, Image.open(io.BytesIO(data))])
    assert a.prob_ai == pytest.approx(b.prob_ai, abs=1e-6)
    assert a.prob_ai == pytest.approx(c.prob_ai, abs=1e-6)
    assert a.sha256 == b.sha256 and c.sha256 and c.sha256 != a.sha256
    assert b.source == "<bytes #1>" and c.source == "<image #2>"


def test_bad_images_fail_alone(detector: Detector, tmp_path: Path) -> None:
    good = mini_files(2)
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, "PNG")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    missing = tmp_path / "missing.png"
    items = [good[0], zero, text, truncated, missing, b"\x89PNG\r\n", good[1]]
    verdicts = detector.classify(items)
    assert [v.ok for v in verdicts] == [True, False, False, False, False, False, True]
    for v in verdicts[1:-1]:
        assert v.error and "\n" not in v.error and v.label is None and v.cam is None
    assert "empty" in verdicts[1].error and "not found" in verdicts[4].error
    alone = detector.classify(good)
    assert [v.prob_ai for v in alone] == pytest.approx([verdicts[0].prob_ai, verdicts[-1].prob_ai], abs=1e-5)
    assert detector.classify([zero])[0].error  # a batch with nothing decodable


def test_missing_model_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        Detector(tmp_path / "nope")
    with pytest.raises(AidetectError):
        Detector(cam_method="nonsense")


def test_target_validation(detector: Detector) -> None:
    with pytest.raises(AidetectError):
        detector.classify(mini_files(1), target="both")  # type: ignore[arg-type]


# -- tiling ----------------------------------------------------------------------------
def test_tile_grid_policy() -> None:
    assert tile_grid(64, 64, 32, 16) == (2, 2)  # covering grid when it fits
    assert tile_grid(100, 70, 32, 16) == (4, 3)
    nx, ny = tile_grid(512, 512, 32, 16)
    assert (nx, ny) == (4, 4)
    nx, ny = tile_grid(3000, 1000, 32, 16)
    assert nx * ny <= 16 and nx > ny  # aspect kept
    assert plan_views(32, 32, 32, 96, 16).tiles == []  # exact size: unchanged
    assert plan_views(80, 80, 32, 96, 16).tiles == []  # small: resize + centre crop
    assert len(plan_views(96, 200, 32, 96, 16).tiles) <= 16
    for w, h in ((500, 300), (130, 100), (3000, 1000), (517, 389)):
        plan = plan_views(w, h, 32, 96, 16)
        # tiles sit on the 8 x 8 JPEG block grid, inside the image
        assert plan.tiles and all(x % 8 == 0 and y % 8 == 0 for x, y in plan.tiles)
        assert all(0 <= x <= w - 32 and 0 <= y <= h - 32 for x, y in plan.tiles)


def test_large_image_is_tiled_with_full_size_heatmap(detector: Detector, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arr = (rng.random((300, 500, 3)) * 255).astype(np.uint8)
    arr[:, :250] //= 4  # left half dark: the heatmap must still cover the whole image
    path = tmp_path / "big.png"
    Image.fromarray(arr).save(path)
    (v,) = detector.classify([path], heatmap_dir=tmp_path / "hm")
    s = detector.input_size
    nx, ny = tile_grid(500, 300, s, detector.max_tiles)
    assert v.ok and v.tiles == nx * ny and 1 < v.tiles <= detector.max_tiles and (v.width, v.height) == (500, 300)
    assert v.cam.shape == (154, 256)  # image aspect, long side 256
    seen = np.isfinite(v.cam)  # 16 tiles of 32 px sample the image: the parts between them are not seen (NaN)
    assert 0.05 < seen.mean() < 0.5
    assert np.nanmin(v.cam) >= 0 and np.nanmax(v.cam) == pytest.approx(1.0)
    assert seen[:, :100].any() and seen[:, -100:].any() and seen[:50].any() and seen[-50:].any()  # spread over it
    overlay = Image.open(v.overlay_path)
    assert overlay.size == (500, 300)
    # tile logits are averaged: the same as scoring the 16 tiles and averaging their logits
    plan = plan_views(500, 300, s, detector.tile_min_side, detector.max_tiles)
    tiles = torch.stack([torch.from_numpy(arr[y : y + s, x : x + s].copy()).permute(2, 0, 1) for x, y in plan.tiles])
    with torch.no_grad():
        logits = detector.model(detector.preset.normalise(tiles)).mean(0)
    expected = torch.softmax(logits / detector.card.temperature, 0)[AI_INDEX].item()
    assert v.prob_ai == pytest.approx(expected, abs=1e-5)


def test_tiling_can_be_turned_off(tmp_path: Path) -> None:
    from aidetect.config import FAST_MODEL_DIR

    det = Detector(FAST_MODEL_DIR, device="cpu", max_tiles=1)
    img = Image.fromarray((np.random.default_rng(2).random((200, 120, 3)) * 255).astype(np.uint8))
    (v,) = det.classify([img])
    assert v.ok and v.tiles == 1 and v.cam.shape == (200, 120)


def test_shared_between_threads(detector: Detector) -> None:
    """The GUI calls one Detector from worker threads: concurrent calls give the same
    answers as sequential ones."""
    from concurrent.futures import ThreadPoolExecutor

    files = mini_files(8)
    expected = [v.prob_ai for v in detector.classify(files)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda f: detector.classify([f])[0], files * 2))
    assert [r.prob_ai for r in results] == pytest.approx(expected * 2, abs=1e-5)
    assert all(r.cam is not None for r in results)
