"""The feature cache (trainer.feature_cache): window geometry always; CLIP + CNN features of three
tiny images where the converted CLIP weights are present."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aidetect.trainer import feature_cache as fc


def test_crop_boxes_on_grid_and_inside() -> None:
    assert fc.crop_boxes(200, 500) == []  # a side under 224: no native window
    assert fc.crop_boxes(300, 230) == [(32, 0)]  # one, centred, on the 8 px grid
    assert len(fc.crop_boxes(512, 512)) == 4
    assert [y for _, y in fc.crop_boxes(1000, 224)] == [0] * 4  # a strip: four side by side
    for w, h in ((512, 512), (640, 480), (3072, 2048), (1000, 224), (449, 2000)):
        boxes = fc.crop_boxes(w, h)
        assert 1 <= len(boxes) <= fc.MAX_CROPS
        assert len(set(boxes)) == len(boxes)
        for x, y in boxes:
            assert x % 8 == 0 and y % 8 == 0 and 0 <= x <= w - 224 and 0 <= y <= h - 224


def test_feature_file_roundtrip(tmp_path) -> None:
    f = fc.FeatureFile.open(tmp_path / "x.npz")
    f.add(["aa", "bb"], logit=np.array([1.0, 2.0]))
    f.save()
    g = fc.FeatureFile.open(tmp_path / "x.npz")
    assert g.keys == {"aa", "bb"}
    assert g.lookup(["bb", "aa"], "logit").tolist() == [2.0, 1.0]
    with pytest.raises(KeyError):
        g.lookup(["cc"], "logit")


@pytest.fixture(scope="module")
def clip() -> fc.ClipFeatures:
    from aidetect.model.clip import WEIGHTS_PATH

    if not WEIGHTS_PATH.is_file():
        pytest.skip(f"{WEIGHTS_PATH.name} not converted here (scripts/convert_clip_onnx.py; not committed yet)")
    return fc.ClipFeatures()


def test_cache_three_images(tmp_path, clip) -> None:
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for label, name, size in (("ai", "a.png", (240, 200)), ("ai", "b.jpg", (480, 480)), ("real", "c.jpg", (300, 260))):
        (data / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(data / label / name)
    cache = tmp_path / "cache"
    rep = fc.cache_dataset("tiny", data, cache, clip=clip, cnn=True, progress=False)
    assert rep.files == 3 and all(n == 3 for n in rep.computed.values())
    assert rep.crop_counts == {1: 2, 4: 1}  # 240x200 resized (one view), 300x260 one window, 480x480 four
    items, feats = fc.load_features(cache, "tiny")
    assert [r["label"] for r in items] == ["ai", "ai", "real"]
    assert feats["clip-center"].shape == (3, 512) and feats["clip-crops"].shape == (3, 512)
    assert feats["cnn"].shape == (3,) and np.isfinite(feats["cnn"]).all()
    crops = fc.FeatureFile.open(fc.find_feature_file(cache / "tiny", "clip-crops"))
    by_sha = dict(zip(crops.arrays["sha256"].tolist(), crops.arrays["n"].tolist(), strict=True))
    assert sorted(by_sha.values()) == [1, 1, 4]
    assert clip.encoder_hash[:12] in crops.path.name
    # auto dtype: bf16 only where the CPU computes in it (an AVX2-only CPU emulates it, 7x slower)
    assert clip.dtype == ("bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32")
    assert crops.path.name.endswith(f"-{clip.dtype}.npz")
    again = fc.cache_dataset("tiny", data, cache, clip=clip, cnn=True, progress=False)  # resumable: nothing new
    assert all(n == 0 for n in again.computed.values())
