"""Native-resolution training data: splits by source picture (or camera model) that keep every
crop of one picture on one side, one-class folders, balanced sampling, and the augmentations
that remove format and scale shortcuts."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aidetect.errors import DataSourceError
from aidetect.trainer.loop import balanced_weights
from aidetect.trainer.memory import BatchAugment, MemoryImages
from aidetect.trainer.sources import group_keys, load_sources, parse_group_split, train_val_split


def _write_manifest(root: Path, rows: list[dict[str, str]]) -> Path:
    with (root / "MANIFEST.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "source_path", "note"])
        w.writeheader()
        w.writerows(rows)
    return root


def _crops_folder(mini_dir: Path, root: Path, per_source: int = 2) -> Path:
    """ai/ and real/ with ``per_source`` crops (copies) of each of 40 source pictures per class,
    and a MANIFEST.csv naming each crop's source picture."""
    rows = []
    for cls in ("ai", "real"):
        (root / cls).mkdir(parents=True)
        for k, f in enumerate(sorted((mini_dir / cls).iterdir())[:40]):
            for j in range(per_source):
                name = f"{cls}/{f.stem}_crop{j}.jpg"
                shutil.copy(f, root / name)
                rows.append({"path": name, "label": cls, "source_path": f"{cls}_source_{k}.jpg", "note": ""})
    return _write_manifest(root, rows)


def _camera_folder(mini_dir: Path, root: Path) -> Path:
    """real/ only, 8 camera models with 4 photos each, the camera in the manifest's note."""
    (root / "real").mkdir(parents=True)
    rows = []
    for k, f in enumerate(sorted((mini_dir / "real").iterdir())[40:72]):
        name = f"real/cam{k % 8}_{f.name}"
        shutil.copy(f, root / name)
        rows.append({"path": name, "label": "real", "source_path": f"Make/Model{k % 8}/{f.name}",
                     "note": f"camera=Make|Model{k % 8}"})
    return _write_manifest(root, rows)


def test_group_split_keeps_crops_of_one_picture_together(mini_dir: Path, tmp_path: Path) -> None:
    folder = _crops_folder(mini_dir, tmp_path / "crops")
    cams = _camera_folder(mini_dir, tmp_path / "camera")
    specs = [f"crops={folder}", f"camera={cams}"]
    crops, camera = load_sources(specs, group_split=(0.6, 0.2, 0.2))
    assert set(crops.splits) == {"train", "validation", "test"}
    side: dict[str, str] = {}
    for split in crops.splits:
        for key in group_keys(crops, split):
            assert side.setdefault(key, split) == split, f"{key} on two sides"
    assert len(side) == 80 and sum(len(d) for d in crops.splits.values()) == 160
    # a camera model is one group: its photos are all on one side
    cam_side: dict[str, str] = {}
    for split in camera.splits:
        for key in group_keys(camera, split):
            assert key.startswith("camera=") and cam_side.setdefault(key, split) == split
    assert set(camera.value_to_class.values()) == {"real"}  # the one-class folder names its class
    # the same pictures land on the same side in a second load (train and evaluate agree)
    again, _ = load_sources(specs, group_split=(0.6, 0.2, 0.2))
    assert {s: len(d) for s, d in again.splits.items()} == {s: len(d) for s, d in crops.splits.items()}
    assert group_keys(again, "test") == group_keys(crops, "test")
    # training uses the split: validation is the source's validation part, never test
    train, val, rec = train_val_split([crops, camera])
    assert len(train) == len(crops.splits["train"]) + len(camera.splits["train"])
    assert "by source image" in rec["sources"][0]["split"]


def test_one_class_source_needs_a_partner(mini_dir: Path, tmp_path: Path) -> None:
    cams = _camera_folder(mini_dir, tmp_path / "camera")
    with pytest.raises(DataSourceError, match="both real and ai"):
        load_sources([str(cams)])


def test_parse_group_split() -> None:
    assert parse_group_split("70,15,15") == pytest.approx((0.7, 0.15, 0.15))
    for bad in ("70,30", "a,b,c", "0,50,50", "70,0,30", "-1,50,50"):
        with pytest.raises(DataSourceError):
            parse_group_split(bad)


def test_balanced_weights_give_each_class_half_and_each_source_a_share() -> None:
    labels = torch.tensor([1] * 60 + [1] * 20 + [0] * 10 + [0] * 50)
    groups = ["a"] * 60 + ["b"] * 20 + ["a"] * 10 + ["cam/x"] * 50
    w = balanced_weights(labels, groups)
    assert float(w.sum()) == pytest.approx(1.0)
    assert float(w[:60].sum()) == pytest.approx(0.25) and float(w[60:80].sum()) == pytest.approx(0.25)
    assert float(w[80:90].sum()) == pytest.approx(0.25) and float(w[90:].sum()) == pytest.approx(0.25)


def _memory(images: list[torch.Tensor]) -> MemoryImages:
    return MemoryImages(64, 8, torch.zeros(len(images), dtype=torch.long), None, images, ["s"] * len(images), [])


def test_downscaled_crops_are_model_size_and_smoother() -> None:
    g = torch.Generator().manual_seed(0)
    img = (torch.rand(3, 400, 300, generator=g) * 255).to(torch.uint8)  # white noise: downscaling averages it
    mem = _memory([img] * 8)
    plain = BatchAugment(64, blur_p=0, jpeg_p=0, seed=1)
    scaled = BatchAugment(64, blur_p=0, jpeg_p=0, seed=1, downscale_p=1.0, downscale_min=0.25)
    a = plain.crops(mem, torch.arange(8))
    b = scaled.crops(mem, torch.arange(8))
    assert a.shape == b.shape == (8, 3, 64, 64)
    assert float(b.float().std()) < 0.8 * float(a.float().std())  # resampled, not native pixels
    with pytest.raises(ValueError):
        BatchAugment(64, downscale_min=0.0)


def test_jpeg_chroma_and_webp_recoding_change_the_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 64, 64, generator=g) * 255).to(torch.uint8)
    for fmt, opts in (("JPEG", {"quality": 40, "subsampling": 2}), ("JPEG", {"quality": 95, "subsampling": 0}),
                      ("WEBP", {"quality": 50})):
        y = BatchAugment._recode(x, fmt, **opts)
        assert y.shape == x.shape and y.dtype == torch.uint8
        assert 0 < float((y.float() - x.float()).abs().mean()) < 80
    aug = BatchAugment(64, blur_p=0, jpeg_p=0.5, jpeg_quality=(30, 100), jpeg_chroma=True, webp_p=0.3, noise_p=0.5,
                       seed=0)
    mem = _memory([x] * 16)
    out = aug(mem, torch.arange(16))
    assert out.shape == (16, 3, 64, 64) and torch.isfinite(out).all()
    same = BatchAugment(64, blur_p=0, jpeg_p=0.5, jpeg_quality=(30, 100), jpeg_chroma=True, webp_p=0.3, noise_p=0.5,
                        seed=0)
    np.testing.assert_array_equal(out.numpy(), same(mem, torch.arange(16)).numpy())  # seeded
