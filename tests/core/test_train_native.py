"""A tiny train -> evaluate -> predict run with the EfficientNet-Lite architecture on native-
resolution images split by source picture: the card carries the per-source metrics and the
out-of-distribution statistics, and every verdict says why it is uncertain."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aidetect.cli import main
from aidetect.model import ModelCard
from aidetect.model.ood import OOD_FILE, OODStats, flat_share, load_ood


@pytest.fixture(scope="module")
def native_folder(mini_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 px versions of 48 shipped images per class, two crops' worth (names) per picture."""
    root = tmp_path_factory.mktemp("native") / "native"
    rows = []
    for cls in ("ai", "real"):
        (root / cls).mkdir(parents=True)
        for k, f in enumerate(sorted((mini_dir / cls).iterdir())[:48]):
            img = Image.open(f).convert("RGB").resize((96, 96), Image.Resampling.BICUBIC)
            for j in range(2):
                name = f"{cls}/{f.stem}_{j}.jpg"
                img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / name, quality=90) if j else img.save(
                    root / name, quality=90)
                rows.append({"path": name, "source_path": f"{cls}-{k}.png"})
    with (root / "MANIFEST.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "source_path"])
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def trained(native_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "lite"
    rc = main(["train", "--data", f"native={native_folder}", "--group-split", "60,20,20", "--balance",
               "--out", str(out), "--arch", "efficientnet_lite", "--arch-kw", 'variant="lite0"',
               "--input-size", "64", "--epochs", "1", "--batch-size", "32", "--lr", "1e-3",
               "--jpeg-p", "0.5", "--jpeg-quality", "30-100", "--jpeg-chroma", "--webp-p", "0.2", "--noise-p", "0.2",
               "--downscale-p", "0.5", "--threads", "2", "--quiet"])
    assert rc == 0
    return out


def test_card_has_per_source_metrics_and_ood(trained: Path) -> None:
    card = ModelCard.load(trained)
    assert card.architecture == "efficientnet_lite" and card.input_size == 64
    assert card.data["train"]["n"] + card.data["validation"]["n"] < 192  # the test pictures held out
    assert "by source image" in card.data["sources"][0]["split"]
    assert set(card.metrics["test_per_source"]) == {"native"}
    assert card.metrics["test"]["n"] == card.metrics["test_per_source"]["native"]["n"] > 0
    assert card.ood is not None and card.ood["dim"] == 320 and card.ood["threshold"] > 0  # 2 x (16+24+40+80)
    assert set(card.ood["synthetic_probes_flagged"]) == {"noise", "flat", "text", "diagram"}
    assert 0 <= card.ood["validation_flagged"] <= 0.2
    stats = load_ood(trained, card.ood)
    assert stats is not None and stats.precision.shape == (320, 320) and stats.means.shape == (1, 320)
    assert (trained / OOD_FILE).is_file()


def test_evaluate_on_the_held_out_pictures(trained: Path, native_folder: Path, tmp_path: Path, capsys) -> None:
    rc = main(["evaluate", "--model", str(trained), "--data", f"native={native_folder}", "--group-split", "60,20,20",
               "--out", str(tmp_path / "rep"), "--no-robustness", "--json", "--threads", "2"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == ModelCard.load(trained).metrics["test"]["n"]  # the same test pictures as in training


def test_predict_says_why_it_is_uncertain(trained: Path, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    noise, flat = tmp_path / "noise.png", tmp_path / "flat.png"
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(noise)
    Image.new("RGB", (128, 128), (90, 140, 200)).save(flat)
    assert main(["predict", "--model", str(trained), "--json", str(noise), str(flat)]) == 0
    rows = json.loads(capsys.readouterr().out)
    for r in rows:
        assert r["ood_score"] is not None and r["ood_score"] > 0
        assert r["uncertain_reason"] in (None, "low confidence", "outside training data")
        assert r["uncertain"] == (r["uncertain_reason"] is not None)


def test_ood_score_is_the_distance_to_the_nearest_class_mean() -> None:
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    stats = OODStats(means, torch.eye(2) * 4.0, threshold=3.0, flat_max=0.85)  # precision 4: distances doubled
    d = stats.score(torch.tensor([[1.0, 0.0], [9.0, 0.0], [5.0, 3.0]]))
    np.testing.assert_allclose(d, [2.0, 2.0, 2.0 * np.hypot(5.0, 3.0)], rtol=1e-6)
    flagged = stats.outside(d, np.array([0.0, 0.9, 0.0]))
    assert flagged.tolist() == [False, True, True]  # within the distance; flat; far


def test_flat_share_tells_graphics_from_photos() -> None:
    g = torch.Generator().manual_seed(0)
    photo_like = (torch.rand(1, 3, 64, 64, generator=g) * 255).round()
    flat = torch.full((1, 3, 64, 64), 128.0)
    half = photo_like.clone()
    half[..., :, :40] = 255.0
    share = flat_share(torch.cat([photo_like, flat, half]))
    assert float(share[0]) < 0.01 and float(share[1]) == 1.0 and 0.5 < float(share[2]) < 0.7


def test_flat_share_is_the_same_for_uint8_float_and_either_layout() -> None:
    """The uint8 path compares channel sums in int16 (means within 0.5 <=> sums within 1); it must
    give exactly what the float definition gives, on neighbours one or two gray steps apart."""
    g = torch.Generator().manual_seed(1)
    # 4 x 4 blocks of one gray level (100 or 101), and 0-2 added to the red channel alone: in a
    # block, neighbours' channel sums differ by 0, 1 (near: means 1/3 apart) or 2 (not: 2/3)
    base = torch.randint(100, 102, (2, 1, 12, 10), generator=g).repeat_interleave(4, 2).repeat_interleave(4, 3)
    views = base.repeat(1, 3, 1, 1)
    views[:, 0] += torch.randint(0, 3, (2, 48, 40), generator=g)
    views = views.to(torch.uint8)

    def by_definition(v: torch.Tensor) -> torch.Tensor:
        m = v.float().mean(dim=1)
        c = m[:, 1:-1, 1:-1]
        near = [(c - m[:, :-2, 1:-1]).abs() < 0.5, (c - m[:, 2:, 1:-1]).abs() < 0.5,
                (c - m[:, 1:-1, :-2]).abs() < 0.5, (c - m[:, 1:-1, 2:]).abs() < 0.5]
        return (near[0] & near[1] & near[2] & near[3]).float().mean(dim=(1, 2))

    want = by_definition(views)
    assert float(want.min()) > 0.05 and float(want.max()) < 0.95  # a mix of flat and not
    for v in (views, views.contiguous(memory_format=torch.channels_last), views.float(),
              views.float().contiguous(memory_format=torch.channels_last)):
        assert torch.equal(flat_share(v), want)
