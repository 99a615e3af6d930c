"""The shipped default model: complete card, routing of small images to the CIFAKE model, the
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
from aidetect.config import SHIPPED_MODEL_DIR
from aidetect.inference import Detector
from aidetect.model import load_model_dir
from aidetect.trainer.probes import diagram, text_screenshot

CIFAKE_DIR = SHIPPED_MODEL_DIR.parent / "cifake"


def test_shipped_model_card_is_complete() -> None:
    model, card = load_model_dir(SHIPPED_MODEL_DIR)
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
    return Detector(SHIPPED_MODEL_DIR, device="cpu", threads=2)


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
    rc = main(["evaluate", "--data", f"coco_sd={shared_data / 'coco_sd'}", "--data",
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
