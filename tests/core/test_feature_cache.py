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


def test_a_smaller_centre_view_is_its_own_cache_file(tmp_path, clip) -> None:
    """``center112``: CLIP's centre view at 112 px (position embeddings resampled to 7 x 7), in a
    file of its own that ``clip-center`` never picks up; a size the encoder cannot take is refused."""
    import torch

    from aidetect.model.clip import clip_resize_crop
    from aidetect.trainer.fusion_fit import clip_view_card

    torch.set_num_threads(1)
    assert [fc.view_size(v) for v in ("center", "crops", "center112", "center64", "center120", "center240", "middle")] == [
        224, 224, 112, 64, None, None, None]
    assert clip_view_card("center112") == {"clip_views": "center", "clip_size": 112}
    assert clip_view_card("center") == {"clip_views": "center"}
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (260, 300, 3), dtype=np.uint8))
    img.save(data / "real" / "c.png")
    cache = tmp_path / "cache"
    fc.cache_dataset("tiny", data, cache, views=["center", "center112"], clip=clip, cnn=False, progress=False)
    _items, feats = fc.load_features(cache, "tiny", kinds=("clip-center", "clip-center112"), optional=False)
    want = clip.at_size(112)(clip_resize_crop(img, 112)[None]).detach().float().numpy()
    assert np.allclose(feats["clip-center112"], want, atol=1e-4)
    assert not np.allclose(feats["clip-center"], feats["clip-center112"], atol=1e-2)
    assert clip.at_size(224) is clip.encoder and clip.encoder.input_size == 224  # the copy is resized, not it
    with pytest.raises(ValueError, match="center120"):
        fc.cache_dataset("tiny", data, cache, views=["center120"], clip=clip, cnn=False, progress=False)
