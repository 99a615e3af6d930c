"""Calibration (temperature, threshold, band), metrics, and the batched augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aidetect.trainer import calibration
from aidetect.trainer.memory import BatchAugment, MemoryImages
from aidetect.trainer.metrics import classification_metrics, ece


def _synthetic(n: int = 4000, true_t: float = 2.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from softmax(z); the model reports z * true_t (over-confident)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 1, generator=g) * 2
    logits = torch.cat([torch.zeros(n, 1), z], dim=1)
    y = torch.bernoulli(torch.softmax(logits, 1)[:, 1], generator=g).long()
    return logits * true_t, y


def test_temperature_recovers_overconfidence_and_lowers_ece() -> None:
    logits, y = _synthetic()
    t = calibration.fit_temperature(logits, y)
    assert 2.1 < t < 2.9
    before = ece(calibration.prob_ai(logits), y.numpy())[0]
    after = ece(calibration.prob_ai(logits, t), y.numpy())[0]
    assert after < before / 2 and after < 0.03


def test_threshold_and_band() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 500)
    p = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.15, 1000), 0, 1)
    thr = calibration.fit_threshold(p, y)
    assert 0.4 <= thr <= 0.6
    band, stats = calibration.fit_band(p, y, thr, target_accuracy=0.95, max_uncertain=0.5)
    lo, hi = band
    assert lo < thr < hi
    inside = (p >= lo) & (p <= hi)
    assert abs(stats["uncertain_fraction"] - inside.mean()) < 1e-9
    assert ((p >= thr) == (y == 1))[~inside].mean() >= 0.95
    # a shifted score distribution moves the threshold
    assert calibration.fit_threshold(np.clip(p + 0.2, 0, 1), y) > thr



def test_band_is_about_confidence_not_distance_from_threshold() -> None:
    """With the threshold off 0.5 the band is [1 - c, c] (confidence of the predicted class
    below c), not a window centred on the threshold that would reach up to ~1.0."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 2000)
    p = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.2, 4000), 0, 1)
    (lo, hi), stats = calibration.fit_band(p, y, 0.62, target_accuracy=0.99, max_uncertain=0.5)
    assert lo < 0.62 < hi
    assert abs(lo - (1 - hi)) < 1e-3  # symmetric in confidence
    assert hi < 0.95  # a confident "ai" stays outside the band
    assert stats["accuracy_outside_band"] >= 0.99


def test_metrics_by_hand() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.7, 0.8, 0.9, 0.4])
    m = classification_metrics(p, y)
    assert m["confusion_matrix"]["rows_true_cols_pred"] == [[2, 1], [1, 2]]
    assert abs(m["accuracy"] - 4 / 6) < 1e-12
    assert abs(m["per_class"]["ai"]["precision"] - 2 / 3) < 1e-12
    assert abs(m["roc_auc"] - 8 / 9) < 1e-12  # 8 of 9 (real, ai) pairs ranked right
    perfect = classification_metrics(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 1]))
    assert perfect["ece"] == 0 and perfect["accuracy"] == 1 and perfect["roc_auc"] == 1


def _mem(n: int = 64, size: int = 32) -> MemoryImages:
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    pad = size // 8
    padded = torch.nn.functional.pad(imgs.float(), (pad,) * 4, mode="reflect").to(torch.uint8)
    return MemoryImages(size, pad, torch.zeros(n, dtype=torch.long), padded, None, ["g"] * n, [])


def test_batch_augment_shapes_seeded_and_eval_crop_is_identity() -> None:
    mem = _mem()
    idx = torch.arange(32)
    a = BatchAugment(32, jpeg_p=0.5, blur_p=0.5, grayscale_p=0.5, seed=1)
    x1 = a(mem, idx)
    assert x1.shape == (32, 3, 32, 32) and x1.dtype == torch.float32
    x2 = BatchAugment(32, jpeg_p=0.5, blur_p=0.5, grayscale_p=0.5, seed=1)(mem, idx)
    torch.testing.assert_close(x1, x2)  # seeded: the same batch again
    x3 = BatchAugment(32, jpeg_p=0.5, blur_p=0.5, grayscale_p=0.5, seed=2)(mem, idx)
    assert not torch.equal(x1, x3)
    # the un-augmented view is exactly the stored image, normalised like EvalPreset
    from torchvision.transforms import v2

    from aidetect.model import EvalPreset

    raw = mem.eval_batch(idx)
    pil = v2.functional.to_pil_image(raw[0])
    torch.testing.assert_close(a.normalise(raw)[0], EvalPreset(32)(pil))


def test_variable_size_images_are_cropped_not_resized() -> None:
    big = torch.randint(0, 256, (3, 80, 100), dtype=torch.uint8)
    mem = MemoryImages(32, 4, torch.zeros(1, dtype=torch.long), None, [big], ["g"], [])
    a = BatchAugment(32, jpeg_p=0, blur_p=0, seed=0)
    crop = a.crops(mem, torch.tensor([0]))[0]
    # the crop (maybe flipped later) is a window of the original pixels
    found = any(
        torch.equal(crop, big[:, y : y + 32, x : x + 32]) for y in range(80 - 31) for x in range(100 - 31)
    )
    assert found
    assert mem.eval_batch(torch.tensor([0]))[0].shape == (3, 32, 32)


def test_small_crops_come_from_the_image_not_its_padding() -> None:
    """Progressive resizing: crops smaller than the input size are windows of the stored
    image itself (reflected padding only exists to let full-size crops move)."""
    mem = _mem(n=8)
    a = BatchAugment(32, jpeg_p=0, blur_p=0, seed=3)
    p = mem.pad
    for _ in range(20):
        crops = a.crops(mem, torch.arange(8), size=24)
        assert crops.shape == (8, 3, 24, 24)
        for i, c in enumerate(crops):
            inner = mem.stacked[i, :, p : p + 32, p : p + 32]
            assert any(torch.equal(c, inner[:, y : y + 24, x : x + 24]) for y in range(9) for x in range(9))
    assert a(mem, torch.arange(8), 24).shape == (8, 3, 24, 24)
    assert a(mem, torch.arange(8)).shape == (8, 3, 32, 32)


def test_grid_crops_keep_the_jpeg_block_grid() -> None:
    """crop_grid=8: crops start at multiples of 8 inside the image, so the 8 x 8 JPEG blocks
    stay where the encoder put them (as at inference); a full-size crop is the image."""
    mem = _mem(n=4)
    p = mem.pad
    a = BatchAugment(32, jpeg_p=0, blur_p=0, seed=5, crop_grid=8)
    seen = set()
    for _ in range(30):
        crops = a.crops(mem, torch.arange(4), size=24)
        for i, c in enumerate(crops):
            inner = mem.stacked[i, :, p : p + 32, p : p + 32]
            where = [(y, x) for y in range(9) for x in range(9) if torch.equal(c, inner[:, y : y + 24, x : x + 24])]
            assert where and all(y % 8 == 0 and x % 8 == 0 for y, x in where)
            seen.update(where)
    assert seen == {(0, 0), (0, 8), (8, 0), (8, 8)}
    torch.testing.assert_close(a.crops(mem, torch.arange(4)), mem.eval_batch(torch.arange(4)), rtol=0, atol=0)
    big = torch.randint(0, 256, (3, 80, 100), dtype=torch.uint8)
    big_mem = MemoryImages(32, 4, torch.zeros(1, dtype=torch.long), None, [big], ["g"], [])
    for _ in range(10):
        c = a.crops(big_mem, torch.tensor([0]))[0]
        where = [(y, x) for y in range(0, 49, 8) for x in range(0, 69, 8) if torch.equal(c, big[:, y : y + 32, x : x + 32])]
        assert where


def test_grid_pad_moves_full_size_crops_on_the_grid_over_mirrored_blocks() -> None:
    """grid_pad=8: a full-size crop of a model-size image moves by multiples of 8 over the
    image mirrored by 8 px; each 8 x 8 block of the crop is a block of the image, or that block
    mirrored, whose DCT coefficients have the same magnitudes (a block JPEG could have written)."""
    from scipy.fft import dctn

    mem = _mem(n=4)
    p = mem.pad
    a = BatchAugment(32, jpeg_p=0, blur_p=0, seed=7, crop_grid=8, grid_pad=8)
    offsets = set()
    for _ in range(40):
        crops = a.crops(mem, torch.arange(4))
        assert crops.shape == (4, 3, 32, 32)
        for i, c in enumerate(crops):
            img = mem.stacked[i, :, p : p + 32, p : p + 32]
            blocks = {img[:, y : y + 8, x : x + 8].flip(dims).numpy().tobytes()
                      for y in range(0, 32, 8) for x in range(0, 32, 8) for dims in ((), (-1,), (-2,), (-2, -1))}
            assert all(c[:, y : y + 8, x : x + 8].numpy().tobytes() in blocks for y in range(0, 32, 8) for x in range(0, 32, 8))
            # where the crop overlaps the image, it is the image shifted by a multiple of 8
            shifts = [(dy, dx) for dy in (-8, 0, 8) for dx in (-8, 0, 8)
                      if torch.equal(c[:, max(0, -dy) : 32 - max(0, dy), max(0, -dx) : 32 - max(0, dx)],
                                     img[:, max(0, dy) : 32 - max(0, -dy), max(0, dx) : 32 - max(0, -dx)])]
            assert shifts
            offsets.update(shifts)
    assert offsets == {(dy, dx) for dy in (-8, 0, 8) for dx in (-8, 0, 8)}
    block = mem.stacked[0, 0, p : p + 8, p : p + 8].float().numpy()
    for mirrored in (block[::-1], block[:, ::-1], block[::-1, ::-1]):
        np.testing.assert_allclose(np.abs(dctn(mirrored, norm="ortho")), np.abs(dctn(block, norm="ortho")), atol=1e-3)
    with pytest.raises(ValueError, match="multiple of crop_grid"):
        BatchAugment(32, crop_grid=8, grid_pad=4)
