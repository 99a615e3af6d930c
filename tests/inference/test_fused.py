"""Fused models (Detector v3): the CNN branch's Detector + the CLIP branch + the fusion head.
Verdicts carry each branch's logit, contribution and share; the fused logit is their sum; the
heatmap of a fused verdict is the branches' heatmaps weighted by their shares; small images are
the CNN branch's alone. Needs the converted CLIP encoder (skips with the reason without it)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetect.config import FAST_MODEL_DIR
from aidetect.model.clip import WEIGHTS_PATH

pytestmark = pytest.mark.skipif(not WEIGHTS_PATH.is_file(),
                                reason=f"no CLIP encoder at {WEIGHTS_PATH} (scripts/convert_clip_onnx.py makes it)")


def fused_model_dir(folder: Path, *, w_cnn: float, w_clip: float, bias: float = 0.0, seed: int = 0,
                    views: str = "center", temperature: float = 1.0, cnn_firm: float | None = None,
                    clip_size: int | None = None) -> Path:
    from aidetect.model.card import ModelCard
    from aidetect.model.checkpoint import save_model_dir
    from aidetect.model.fusion import FusionHead

    rng = np.random.default_rng(seed)
    head = FusionHead().set_from(feat_mean=np.zeros(512), feat_std=np.full(512, 0.05),
                                 probe_w=rng.normal(size=512) * 0.02, probe_b=0.1, w_cnn=w_cnn, w_clip=w_clip, bias=bias)
    card = ModelCard(architecture="fused_clip_cnn", input_size=224, temperature=temperature, threshold=0.5,
                     uncertain_band=[0.3, 0.7], fusion={"cnn": "fast", "clip": "clip_vit_b16", "clip_views": views,
                                                                     "cnn_firm": cnn_firm,
                                                                     **({"clip_size": clip_size} if clip_size else {})})
    return save_model_dir(head, card, folder)


def photo(path: Path, size: tuple[int, int] = (320, 256), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
    img.save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("fused")
    mini = Path(__file__).resolve().parents[1] / "data" / "cifake_mini" / "ai" / "ai_000.jpg"
    return [photo(d / "a.jpg"), photo(d / "b.jpg", (600, 480), seed=1), mini]


def test_fused_verdicts_carry_each_branch_and_add_up(tmp_path: Path, images: list[Path]) -> None:
    from aidetect.inference import Detector

    model = fused_model_dir(tmp_path / "m", w_cnn=0.8, w_clip=1.5, bias=-0.2, temperature=1.3)
    det = Detector(model)
    big, bigger, small = det.classify(images, explain=True, heatmap_dir=tmp_path / "hm")
    for v in (big, bigger):
        b = v.branches
        assert v.error is None and set(b) == {"cnn", "clip", "skipped"} and b["skipped"] is None
        assert b["cnn"]["contribution"] == pytest.approx(0.8 * b["cnn"]["logit"], abs=1e-3)
        assert b["clip"]["contribution"] == pytest.approx(1.5 * b["clip"]["logit"], abs=1e-3)
        assert b["cnn"]["share"] + b["clip"]["share"] == pytest.approx(1.0, abs=1e-3)
        fused = b["cnn"]["contribution"] + b["clip"]["contribution"] - 0.2
        assert v.prob_ai == pytest.approx(1 / (1 + math.exp(-fused / 1.3)), abs=1e-3)
        assert v.cam is not None and Path(v.overlay_path).is_file() and v.model_version == det.version
        assert v.scored_by == det.version  # the fused model, not its CNN branch ("small image" in the GUI)
    # a 32 px image: the CNN branch's small-image model alone, and the verdict says so
    assert small.branches == {"cnn": {"logit": pytest.approx(small.branches["cnn"]["logit"]),
                                      "contribution": pytest.approx(small.branches["cnn"]["logit"]), "share": 1.0},
                              "clip": None, "skipped": "image under 224 px"}
    assert small.scored_by != det.version and small.label in ("ai", "real")


def test_the_cascade_runs_clip_only_where_the_cnn_is_not_firm(tmp_path: Path, images: list[Path]) -> None:
    """``fusion.cnn_firm`` q: an image whose CNN verdict is firm (P >= q or <= 1 - q) keeps the CNN's
    own verdict and heatmap, CLIP not run (and said so); the others are fused as without it."""
    from aidetect.inference import Detector

    # fp32: in bf16 an embedding moves with its batch mates (~1 % of its norm; measured in
    # docs/detector-v3.md), and the cascade sends one image to CLIP where the reference sends two
    plain = Detector(FAST_MODEL_DIR, precision="fp32").classify(images[:2], explain=True)
    firmness = [max(v.prob_ai, 1 - v.prob_ai) for v in plain]
    q = (firmness[0] + firmness[1]) / 2  # between the two: exactly one image is firm
    assert abs(firmness[0] - firmness[1]) > 1e-3, firmness
    cascade = Detector(fused_model_dir(tmp_path / "q", w_cnn=0.8, w_clip=1.5, cnn_firm=q), precision="fp32")
    fused = Detector(fused_model_dir(tmp_path / "f", w_cnn=0.8, w_clip=1.5), precision="fp32")
    got = cascade.classify(images[:2], explain=True)
    ref = fused.classify(images[:2], explain=True)
    for v, r, cnn, firm in zip(got, ref, plain, firmness, strict=True):
        if firm >= q:
            assert v.branches["clip"] is None and v.branches["skipped"].startswith("cnn firm")
            assert v.prob_ai == pytest.approx(cnn.prob_ai) and v.label == cnn.label and "clip" not in v.timings
            assert np.allclose(v.cam, cnn.cam, atol=1e-5, equal_nan=True)
        else:
            assert v.branches == r.branches and v.prob_ai == pytest.approx(r.prob_ai)


def test_a_smaller_clip_view_is_what_the_branch_scores(tmp_path: Path, images: list[Path]) -> None:
    """``fusion.clip_size`` 112: the CLIP branch scores the 112 px centre view with the position
    embeddings resampled to 7 x 7 patches (the same numbers as the feature cache's ``center112``),
    and its Grad-CAM has that grid; a size the encoder cannot take is one line at load."""
    import torch

    from aidetect.errors import ModelLoadError
    from aidetect.inference import Detector
    from aidetect.model.clip import clip_resize_crop
    from aidetect.trainer.feature_cache import ClipFeatures

    det = Detector(fused_model_dir(tmp_path / "m", w_cnn=0.5, w_clip=1.0, clip_size=112), precision="fp32")
    scorer = det.fused
    assert scorer.clip.size == 112 and scorer.clip.patches == 7
    big, _bigger, _small = det.classify(images, explain=True, heatmap_dir=tmp_path / "hm")
    img = Image.open(images[0]).convert("RGB")
    emb = ClipFeatures(dtype="fp32").embed(clip_resize_crop(img, 112)[None])
    with torch.no_grad():
        want = float(scorer.head.clip_logit(torch.from_numpy(emb))[0])
    assert big.branches["clip"]["logit"] == pytest.approx(want, abs=1e-3)
    logits, cams = scorer.clip.score([scorer.clip.views(img)], explain=True)
    assert cams is not None and cams[0].shape[-2:] == (7, 7) and logits[0] == pytest.approx(want, abs=1e-3)
    assert big.cam is not None and np.isfinite(big.cam).any()
    with pytest.raises(ModelLoadError, match="clip_size"):
        Detector(fused_model_dir(tmp_path / "bad", w_cnn=0.5, w_clip=1.0, clip_size=120))


def test_fused_heatmap_follows_the_branch_shares(tmp_path: Path, images: list[Path]) -> None:
    """A head that gives the CLIP branch no weight draws the CNN's heatmap; one that gives the
    CNN none draws CLIP's, over CLIP's centre view: the rest of the picture, which only the CNN
    looked at, weighs nothing in that decision (0, not "not seen": the CNN did look)."""
    from aidetect.inference import Detector

    cnn_only = Detector(fused_model_dir(tmp_path / "c", w_cnn=1.0, w_clip=0.0))
    clip_only = Detector(fused_model_dir(tmp_path / "s", w_cnn=0.0, w_clip=1.0))
    plain = Detector(FAST_MODEL_DIR)
    a = cnn_only.classify([images[1]], explain=True)[0]
    b = clip_only.classify([images[1]], explain=True)[0]
    ref = plain.classify([images[1]], explain=True)[0]
    assert a.branches["cnn"]["share"] == 1.0 and b.branches["clip"]["share"] == 1.0
    assert np.allclose(a.cam, ref.cam, atol=1e-5, equal_nan=True)
    assert np.isfinite(b.cam).all()
    h, w = b.cam.shape  # 600 x 480: CLIP's centre square is the middle 480 x 480 (columns 60..540)
    left, right = int(w * 60 / 600), int(w * 540 / 600)
    assert (b.cam[:, : left - 1] == 0).all() and (b.cam[:, right + 1 :] == 0).all()
    assert b.cam[:, left + 1 : right - 1].max() == pytest.approx(1.0)
    assert not np.allclose(b.cam, ref.cam, atol=0.05)


@pytest.mark.parametrize("patches", [14, 7])  # 224 px and 112 px CLIP views
def test_fused_heatmap_has_no_seam_at_the_clip_square(patches: int) -> None:
    """A wide picture: the CNN saw all of it (flat map), CLIP its centre square (hot everywhere).
    With equal shares the sum rises into the square over one CLIP patch instead of jumping there;
    where both branches saw everything, nothing fades (the picture's own edges are no border)."""
    from aidetect.inference.fused import fused_heatmap

    h, w = 140, 280
    patch = h // patches
    cnn = np.full((h, w), 0.5, np.float32)
    clip = np.full((h, w), np.nan, np.float32)
    clip[:, 70:210] = 1.0
    out = fused_heatmap(cnn, clip, np.array([0.5, 0.5]), patches)
    row = out[h // 2]
    assert row[:70].max() == 0.0 and row[70 + patch:210 - patch].min() == pytest.approx(1.0)  # inside, past one patch
    assert row[70 + patch // 2] < 0.75  # still fading half a patch in
    assert np.abs(np.diff(row)).max() <= 1.5 / patch  # a ramp, not a step (was 1.0 in one pixel)
    full = fused_heatmap(cnn, np.ones((h, w), np.float32), np.array([0.5, 0.5]), patches)
    assert np.allclose(full, 0.0)  # constant sum -> flat map (normalise), no fade at the picture's edges
    rnd = np.random.default_rng(0).random((h, w)).astype(np.float32)
    both = fused_heatmap(cnn, rnd, np.array([0.3, 0.7]), patches)
    from aidetect.explain.cam import normalise
    assert np.allclose(both, normalise(0.3 * cnn + 0.7 * rnd), atol=1e-6)


def test_predict_json_of_a_fused_model(tmp_path: Path, images: list[Path]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
    from result_schema import assert_results

    model = fused_model_dir(tmp_path / "m", w_cnn=1.0, w_clip=1.0, views="center+crops")
    run = subprocess.run([sys.executable, "-m", "aidetect.cli", "predict", "--json", "--model", str(model),
                          "--heatmap", str(tmp_path / "hm"), *map(str, images)],
                         capture_output=True, text=True, timeout=300,
                         env={"AIDETECT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert_results(rows)
    assert [r["branches"]["clip"] is None for r in rows] == [False, False, True]
    assert all(Path(r["overlay_path"]).is_file() for r in rows)


def test_tiny_train_evaluate_predict_of_the_fused_architecture(tmp_path: Path) -> None:
    """The v3 recipe end to end on 48 small pictures in 4 sources: features cached (frozen CLIP
    centre view + the v2 CNN's logit), the head fitted with leave-one-source-out calibration,
    the model directory evaluated with `aidetect evaluate` and used by `aidetect predict`."""
    from aidetect.cli import main
    from aidetect.trainer.feature_cache import cache_dataset
    from aidetect.trainer.fusion_fit import fit_fused_model

    mini = Path(__file__).resolve().parents[1] / "data" / "cifake_mini"
    names = []
    for s in range(4):
        for label in ("ai", "real"):
            folder = tmp_path / "data" / f"src{s}" / label
            folder.mkdir(parents=True)
            for i in range(6):
                img = Image.open(mini / label / f"{label}_{s * 6 + i:03d}.jpg").convert("RGB")
                img.resize((256, 256), Image.Resampling.BICUBIC).save(folder / f"{label}{i}.png")
        cache_dataset(f"src{s}", tmp_path / "data" / f"src{s}", tmp_path / "cache", views=("center",), progress=False)
        names.append(f"src{s}")
    report = fit_fused_model(tmp_path / "cache", names, tmp_path / "model")
    assert set(report["leave_one_source_out"]) == set(names)
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["architecture"] == "fused_clip_cnn" and card["fusion"]["clip_views"] == "center"
    lo, hi = card["uncertain_band"]
    assert 0 < lo <= 0.5 <= hi < 1 and card["temperature"] > 0
    assert main(["evaluate", "--data", str(tmp_path / "data" / "src0"), "--model", str(tmp_path / "model"),
                 "--out", str(tmp_path / "report"), "--no-robustness", "--json"]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics  # evaluated through Detector.classify, as any model
    from aidetect.inference import Detector

    v = Detector(tmp_path / "model").classify([tmp_path / "data" / "src1" / "ai" / "ai0.png"], explain=True)[0]
    assert v.error is None and v.branches["clip"] is not None and v.cam is not None
