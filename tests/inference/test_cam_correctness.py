"""Does the heatmap point at the evidence? A tiny model trained here (conftest) to spot a
checkerboard patch must put its Grad-CAM mass where the patch is."""

from __future__ import annotations

import numpy as np
import pytest

from aidetect.explain.cam import CAM_METHODS
from aidetect.inference import Detector
from aidetect.trainer.faithfulness import deletion_test, faithfulness_markdown


def quadrant_mass(cam: np.ndarray, q: tuple[int, int]) -> float:
    h, w = cam.shape
    part = cam[q[0] * h // 2 : (q[0] + 1) * h // 2, q[1] * w // 2 : (q[1] + 1) * w // 2]
    return float(part.sum() / max(cam.sum(), 1e-9))


@pytest.fixture(scope="module")
def patched(quad_images) -> list:  # type: ignore[no-untyped-def]
    return quad_images(np.ones(24, bool), 123)


def test_tiny_model_learned_the_pattern(quad_detector: Detector, quad_images) -> None:  # type: ignore[no-untyped-def]
    flags = np.array([1] * 32 + [0] * 32, bool)
    verdicts = quad_detector.classify(quad_images(flags, 7), explain=False)
    acc = np.mean([(v.label == "ai") == f for v, f in zip(verdicts, flags, strict=True)])
    assert acc >= 0.9


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "gradcam++"])
def test_cam_mass_in_the_patched_quadrant(quad_detector: Detector, patched: list, method: str) -> None:
    det = Detector(quad_detector.model_dir, device="cpu", cam_method=method, threads=1)
    verdicts = [v for v in det.classify(patched) if v.label == "ai"]
    assert len(verdicts) >= 20
    masses = np.array([quadrant_mass(v.cam, (0, 0)) for v in verdicts])
    assert masses.mean() > 0.7, masses  # uniform would be 0.25
    assert (masses > 0.5).mean() >= 0.9


def test_cam_follows_the_patch_to_another_quadrant(quad_detector: Detector, quad_images) -> None:  # type: ignore[no-untyped-def]
    imgs = quad_images(np.ones(16, bool), 5, quadrant=(1, 1))
    verdicts = [v for v in quad_detector.classify(imgs) if v.label == "ai"]
    assert len(verdicts) >= 12
    assert np.mean([quadrant_mass(v.cam, (1, 1)) for v in verdicts]) > 0.7


def test_cam_targets_the_predicted_class_and_other_differs(quad_detector: Detector, patched: list) -> None:
    pred = quad_detector.classify(patched[:8])
    other = quad_detector.classify(patched[:8], target="other")
    for p, o in zip(pred, other, strict=True):
        assert p.prob_ai == pytest.approx(o.prob_ai, abs=1e-6)  # same verdict either way
        assert p.cam_class == p.label and o.cam_class != p.label
        assert np.abs(p.cam - o.cam).mean() > 0.05
    assert np.mean([quadrant_mass(o.cam, (0, 0)) for o in other]) < np.mean(
        [quadrant_mass(p.cam, (0, 0)) for p in pred]
    )


def test_gradcam_equals_hirescam_on_a_gap_network(quad_detector: Detector, patched: list) -> None:
    """Why gradcam is the default: with global average pooling + a linear head (our models),
    the gradient is the same at every position, so Grad-CAM equals HiResCAM (provably
    faithful there) and the original CAM, at the lowest cost."""
    a = quad_detector.classify(patched[:4])
    b = Detector(quad_detector.model_dir, device="cpu", cam_method="hirescam", threads=1,
                 precision="fp32").classify(patched[:4])
    for x, y in zip(a, b, strict=True):
        assert np.abs(x.cam - y.cam).max() < 1e-4


def test_deletion_test_says_the_heatmap_matters(quad_detector: Detector, patched: list) -> None:
    result = deletion_test(quad_detector, patched[:12], fractions=(0.1, 0.2, 0.4), seed=0, mode="remove")
    assert result["n"] == 12 and not result["errors"]
    rows = {r["fraction"]: r for r in result["per_fraction"]}
    assert rows[0.2]["cam_drop"] > rows[0.2]["random_drop"] + 0.2
    assert rows[0.2]["cam_wins"] >= 0.75
    md = faithfulness_markdown(result)
    assert "| top 20% |" in md and "random" in md
    again = deletion_test(quad_detector, patched[:12], fractions=(0.1, 0.2, 0.4), seed=0, mode="remove")
    assert again["per_fraction"] == result["per_fraction"]  # seeded
    blur = deletion_test(quad_detector, patched[:4], fractions=(0.2,), mode="blur")
    assert blur["per_fraction"][0]["cam_drop"] is not None


def test_methods_listed() -> None:
    assert {"gradcam", "hirescam", "gradcam++"} <= set(CAM_METHODS)
