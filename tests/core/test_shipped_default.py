"""The shipped default, Detector v3: the fused model (frozen CLIP ViT-B/16 + the `fast` CNN, a
calibrated late-fusion head, the cascade). Its card says what it was fitted on and how it did on
every left-out source; it scores through both branches, the cascade and the small-image route; and
(with ../shared/data) its quality on the CNN's held-out pictures. The CNN alone: test_shipped_model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetect.cli import main
from aidetect.config import FAST_MODEL_DIR, SHIPPED_MODEL_DIR
from aidetect.inference import Detector
from aidetect.model import ModelCard
from aidetect.model.clip import WEIGHTS_PATH

pytestmark = pytest.mark.skipif(not WEIGHTS_PATH.is_file(), reason=f"no CLIP encoder at {WEIGHTS_PATH}")


def test_the_default_is_the_fused_model_with_its_measurement() -> None:
    card = ModelCard.load(SHIPPED_MODEL_DIR)
    assert card.architecture == "fused_clip_cnn"
    assert card.fusion["cnn"] == "fast" and card.fusion["clip"] == "clip_vit_b16"
    assert card.fusion["clip_views"] == "center" and card.fusion["clip_min_side"] == 224
    # the head scores CLIP's centre view at the size it was fitted on (160 px: docs/detector-v3.md)
    assert card.data["view"] == f"center{card.fusion['clip_size']}" and card.fusion["clip_size"] == 160
    m = card.metrics
    # fitted on the shared sets, the extra data and its format-normalised copies (training only)
    assert m["training_copies"] > 3000 and m["rows"] >= 5000
    assert set(card.data["datasets"]) >= {"coco_sd", "forrealscan", "camera", "extra", "extra_norm_crop:extra"}
    # calibration on left-out scores: confidently wrong at most 5 %, uncertain at most 30 %
    cal = m["calibration"]
    assert cal["loso_confidently_wrong"] <= 0.05 + 1e-6 and cal["loso_uncertain"] <= 0.30
    lo, hi = card.uncertain_band
    assert lo < 0.5 < hi and card.threshold == 0.5
    # every source was left out once and the CNN alone is reported beside it
    assert len(m["leave_one_source_out"]) >= 14 and set(m["cnn_alone"]) == set(m["leave_one_source_out"])
    # the cascade: chosen on those scores, costing no more than the slack in confidently wrong
    c = m["cascade"]
    assert card.fusion["cnn_firm"] == c["chosen"]
    if c["chosen"] is not None:
        chosen = c["candidates"][str(c["chosen"])]
        assert chosen["confidently_wrong"] <= c["fused"]["confidently_wrong"] + 0.002 and chosen["clip_skipped"] > 0


def _photo(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 90 * np.sin(xx / rng.uniform(20, 90) + c) * np.cos(yy / rng.uniform(20, 90) - c)
                     for c in (0.0, 1.0, 2.0)], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8))


def test_the_default_scores_through_its_branches(tmp_path: Path, mini_dir: Path) -> None:
    det = Detector(SHIPPED_MODEL_DIR, device="cpu", threads=2)
    fast = Detector(FAST_MODEL_DIR, device="cpu", threads=2)
    small = sorted((mini_dir / "ai").iterdir())[0]
    images = [_photo(512, 384, 0), _photo(640, 480, 1), small]
    verdicts = det.classify(images, explain=True, heatmap_dir=tmp_path)
    alone = fast.classify(images, explain=False)
    for v, c in zip(verdicts[:2], alone[:2], strict=True):
        assert v.ok and v.model_version == det.version and v.branches is not None
        if v.branches["clip"] is None:  # the cascade: the CNN was firm, its verdict stands
            assert v.branches["skipped"].startswith("cnn firm") and v.prob_ai == pytest.approx(c.prob_ai)
        else:
            b = v.branches
            assert b["cnn"]["logit"] == pytest.approx(np.log(c.prob_ai / (1 - c.prob_ai)), abs=1e-3)
            assert b["cnn"]["share"] + b["clip"]["share"] == pytest.approx(1.0, abs=1e-3)
        assert Path(v.overlay_path).is_file()
    tiny = verdicts[2]  # 32 px: the CNN branch's small-image model, no CLIP vote
    assert tiny.branches["clip"] is None and tiny.branches["skipped"] == "image under 224 px"
    assert tiny.scored_by == fast.small.version  # type: ignore[union-attr]


def test_the_default_on_held_out_pictures(shared_data: Path, tmp_path: Path) -> None:
    """The fused default on a stratified sample of the test part of --group-split 70,15,15 (the
    pictures and cameras the CNN never trained on; the head's probe did see them: in-source)."""
    rc = main(["evaluate", "--data", f"coco_sd={shared_data / 'coco_sd'}", "--data",
               f"forrealscan={shared_data / 'forrealscan'}", "--data", f"camera={shared_data / 'camera'}",
               "--group-split", "70,15,15", "--split", "test", "--no-robustness", "--limit", "120",
               "--out", str(tmp_path), "--threads", "2", "--quiet"])
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    g = m["per_group"]
    assert g["coco_sd"]["roc_auc"] > 0.95 and g["forrealscan"]["roc_auc"] > 0.90
    assert m["overall"]["confidently_wrong"] < 0.06
