"""The shipped CNN (`fast`: Detector v2, the CNN branch of the fused default): complete card, routing of small images to the CIFAKE model, the
out-of-distribution flag, and (with ../shared/data) its measured quality on CIFAKE test and on
the held-out pictures of coco_sd, forrealscan and camera."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetect.cli import main
from aidetect.config import FAST_MODEL_DIR
from aidetect.inference import Detector
from aidetect.model import load_model_dir
from aidetect.trainer.probes import diagram, text_screenshot

CIFAKE_DIR = FAST_MODEL_DIR.parent / "cifake"


def test_shipped_model_card_is_complete() -> None:
    model, card = load_model_dir(FAST_MODEL_DIR)
    assert card.architecture == "efficientnet_lite" and card.input_size == 224
    assert card.small_images == {"model": "cifake"} and card.domain["min_side"] == 224
    assert card.temperature > 0 and 0 < card.threshold < 1
    assert card.uncertain_band[0] < card.threshold < card.uncertain_band[1]
    assert card.data["split_hash"] and card.data["sampling"].startswith("balanced")
    assert {s["name"] for s in card.data["sources"]} == {"coco_sd", "forrealscan", "camera"}
    assert set(card.metrics["test_per_source"]) == {"coco_sd", "forrealscan", "camera"}
    assert card.training["init_from"]["dir"].endswith("efficientnet_lite0")  # the ImageNet weights
    assert card.training["parameters"] == sum(p.numel() for p in model.parameters())
    assert card.ood and card.ood["threshold"] > 0 and card.ood["validation_flagged"] < 0.05
    for kind in ("noise", "flat", "text", "diagram"):
        assert card.ood["synthetic_probes_flagged"][kind]["either"] == 1.0
    small, small_card = load_model_dir(CIFAKE_DIR)
    assert small_card.architecture == "npr_resnet" and small_card.input_size == 32
    assert small_card.data["train"]["n"] == 40000 and small_card.domain == {"min_side": 32, "max_side": 64}


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(FAST_MODEL_DIR, device="cpu", threads=2)


def test_small_images_are_scored_by_the_cifake_model(detector: Detector, mini_dir: Path) -> None:
    files = sorted((mini_dir / "ai").iterdir())[:4]
    direct = Detector(CIFAKE_DIR, device="cpu").classify(files, explain=False)
    routed = detector.classify(files, explain=False)
    for d, r in zip(direct, routed, strict=True):
        assert r.model_version == detector.version  # stored under the default (exactly-once keys)
        assert r.scored_by == d.model_version == detector.small.version  # type: ignore[union-attr]
        assert r.prob_ai == pytest.approx(d.prob_ai) and r.sha256 == d.sha256
    # under 32 px, or much larger than 32 px but under the default's 224: said to be outside
    tiny, mid = Image.new("RGB", (16, 16), (10, 200, 30)), Image.open(files[0]).resize((150, 150))
    for v in detector.classify([tiny, mid], explain=False):
        assert v.uncertain and v.uncertain_reason == "outside training data", v


def test_off_domain_images_come_out_uncertain(detector: Detector) -> None:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)),
              Image.new("RGB", (640, 480), (200, 30, 30)), Image.new("RGB", (300, 300), (255, 255, 255)),
              text_screenshot(512, random.Random(5)), diagram(512, random.Random(6))]
    for v in detector.classify(images, explain=False):
        assert v.uncertain and v.uncertain_reason == "outside training data", v.as_result()
        assert v.ood_score is not None


def test_shipped_model_on_cifake_test_sample(shared_data: Path, tmp_path: Path, capsys) -> None:
    """32 px images go to the CIFAKE model: its measured quality holds through the default."""
    rc = main(["evaluate", "--data", str(shared_data / "cifake" / "test.parquet"), "--limit", "1000",
               "--no-robustness", "--out", str(tmp_path), "--json", "--threads", "2"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 1000
    # measured on all 5,000: accuracy 0.9702, AUC 0.9957, ECE 0.0056 (docs/detector.md)
    assert m["accuracy"] > 0.95 and m["roc_auc"] > 0.99 and m["ece"] < 0.04


def test_shipped_model_on_held_out_pictures(shared_data: Path, tmp_path: Path) -> None:
    """The test part of --group-split 70,15,15 (pictures and cameras never trained on)."""
    rc = main(["evaluate", "--model", str(FAST_MODEL_DIR), "--data", f"coco_sd={shared_data / 'coco_sd'}", "--data",
               f"forrealscan={shared_data / 'forrealscan'}", "--data", f"camera={shared_data / 'camera'}",
               "--group-split", "70,15,15", "--split", "test", "--no-robustness", "--out", str(tmp_path),
               "--threads", "2", "--quiet"])
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    g = m["per_group"]
    # measured (docs/detector.md): AUC 0.974 / 0.919, camera recall 0.971, confidently wrong 0.038
    assert g["coco_sd"]["roc_auc"] > 0.96 and g["forrealscan"]["roc_auc"] > 0.90
    assert g["camera"]["per_class"]["real"]["recall"] > 0.9
    assert m["overall"]["confidently_wrong"] < 0.06 and m["overall"]["uncertain_rate"] < 0.3


def _photo_like(width: int, height: int, seed: int) -> Image.Image:
    """Smooth shapes plus mild sensor-like noise: a stand-in photograph (no shared data needed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 90 * np.sin(xx / rng.uniform(20, 90) + c) * np.cos(yy / rng.uniform(20, 90) - c)
                     for c in (0.0, 1.0, 2.0)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8))


def test_default_sees_an_image_whole_and_large_ones_through_windows(detector: Detector) -> None:
    """The card's view rule: up to 1 MP one view of the whole image at native resolution (its
    logit is the network's on the whole image); above, windows of 512 px, at most max_windows."""
    import torch

    img = _photo_like(640, 480, 1)
    (v,) = detector.classify([img], explain=False)
    assert v.tiles == 1
    x = detector.preset.normalise(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None])
    autocast = torch.autocast("cpu", dtype=detector.amp_dtype, enabled=detector.amp_dtype is not None)
    with torch.inference_mode(), autocast:
        logits = detector.model(x.contiguous(memory_format=torch.channels_last))
    expected = torch.softmax(logits.float() / detector.card.temperature, 1)[0, 1].item()
    assert v.prob_ai == pytest.approx(expected, abs=1e-4)
    big = _photo_like(2400, 1600, 2)
    (w,) = detector.classify([big])
    assert w.tiles == detector.card.views["max_windows"] == 8
    assert np.isnan(w.cam).any() and np.isfinite(w.cam).mean() > 0.3  # parts between the windows: not seen
    assert w.seen == pytest.approx(np.isfinite(w.cam).mean(), abs=0.01) and v.seen == 1.0
    assert w.as_result()["seen"] == w.seen


def test_passes_group_images_by_view_shape(detector: Detector) -> None:
    """Images whose views share a shape are scored in one forward; others in their own."""
    calls: list[tuple[int, ...]] = []
    h = detector.model.register_forward_pre_hook(lambda m, a: calls.append(tuple(a[0].shape)))
    try:
        vs = detector.classify([_photo_like(512, 512, 3), _photo_like(640, 480, 4), _photo_like(512, 512, 5)])
    finally:
        h.remove()
    assert all(v.ok for v in vs)
    assert sorted(calls) == [(1, 3, 480, 640), (2, 3, 512, 512)]


def test_bf16_verdicts_match_fp32() -> None:
    """Inference in bf16 (the default where the CPU has it) gives the fp32 verdicts: probabilities
    within 0.02 and the same label (measured on the held-out pictures in docs/detector.md)."""
    images = [_photo_like(512, 512, s) for s in range(4)] + [_photo_like(700, 400, 9)]
    fp32 = Detector(FAST_MODEL_DIR, device="cpu", threads=2, precision="fp32").classify(images, explain=False)
    bf16 = Detector(FAST_MODEL_DIR, device="cpu", threads=2, precision="bf16").classify(images, explain=False)
    for a, b in zip(fp32, bf16, strict=True):
        assert abs(a.prob_ai - b.prob_ai) < 0.02 and a.label == b.label
        assert abs(a.ood_score - b.ood_score) < 0.05 * a.ood_score


def test_folded_batchnorm_and_fused_activation_are_the_same_function() -> None:
    """BatchNorm folded into the convolutions, conv + activation in one oneDNN call on the CPU:
    the network's function in fp32; in bf16 the logits stay within bf16 rounding; with grad
    (training, or a backward through these layers) the eager path runs."""
    import torch

    from aidetect.model.onednn import ConvAct, fused_ops_available

    model, _ = load_model_dir(FAST_MODEL_DIR)
    x = torch.randn(2, 3, 256, 320)
    with torch.inference_mode():
        before = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            before16 = model(x)
    assert model.fuse_for_inference() == 49  # outside inference mode, as the Detector does it
    with torch.inference_mode():
        after = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            after16 = model(x)
    assert torch.allclose(before, after, atol=1e-4)
    assert (after16 - before16).abs().max() < 0.15 * before16.abs().max() + 0.05
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    fused = [m for m in model.modules() if isinstance(m, ConvAct)]
    assert len(fused) == 49
    assert all(m.fused is not None for m in fused) == fused_ops_available()
    xg = x[:1].clone().requires_grad_(True)
    model(xg).sum().backward()  # with grad the eager path runs: gradients reach the input
    assert xg.grad is not None and xg.grad.abs().sum() > 0
