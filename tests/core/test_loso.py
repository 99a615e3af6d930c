"""Leave-one-source-out evaluation on synthetic features (trainer.loso): fast, no model files."""

from __future__ import annotations

import numpy as np
import pytest

from aidetect.trainer.loso import (
    Calibration,
    Data,
    Spec,
    Unit,
    balanced_weights,
    band_for_target,
    calibrate,
    fit_band,
    fit_threshold,
    run_loso,
    source_units,
    summarise,
)


def _data(seed: int = 0) -> Data:
    """Three sources: two with both classes, one AI only; a 16-d 'embedding' whose first axis
    carries the label, and a scalar 'cnn' logit that is informative but noisy."""
    rng = np.random.default_rng(seed)
    y_parts, src, grp = [], [], []
    for name, n_ai, n_real in (("a", 60, 60), ("b", 40, 50), ("c", 45, 0)):
        y_parts.append(np.r_[np.ones(n_ai, int), np.zeros(n_real, int)])
        src += [name] * (n_ai + n_real)
        grp += [f"{name}:{i // 2}" for i in range(n_ai + n_real)]  # pairs share a group
    y = np.concatenate(y_parts)
    emb = rng.normal(size=(len(y), 16))
    emb[:, 0] += 2.5 * (2 * y - 1)
    cnn = 1.5 * (2 * y - 1) + rng.normal(scale=1.5, size=len(y))
    ood = rng.normal(3.0, 0.3, size=len(y))
    feats = {"clip-center": emb, "cnn": cnn, "cnn-ood": ood}
    shifted = {"clip-center": emb + 0.1, "cnn": cnn, "cnn-ood": ood}
    return Data(y=y, groups=np.array(grp), sources=np.array(src), features={"raw": feats, "norm": shifted},
                in_sample=np.array(src) == "a")


def test_loso_rows_and_metrics() -> None:
    data = _data()
    units = source_units(data.sources, data.groups)
    assert [u.name for u in units] == ["a", "b", "c"]
    specs = [Spec("clip", ("clip-center",)), Spec("cnn", ("cnn",), kind="score"),
             Spec("fusion", ("cnn",), kind="fusion", base="clip"),
             Spec("fusion_honest", ("cnn",), kind="fusion", base="clip", honest=True)]
    rows = run_loso(data, units, specs, "raw", ["raw", "norm"], folds=3, progress=False)
    assert len(rows) == len(units) * len(specs) * 2
    for r in rows:
        assert r["n"] == {"a": 120, "b": 90, "c": 45}[r["unit"]]
        for key in ("recall_ai", "confidently_wrong", "uncertain"):
            assert 0.0 <= r[key] <= 1.0
        assert r["temperature"] > 0 and r["band"] >= 0
        if r["unit"] == "c":  # AI only: no AUC, no false-positive rate
            assert np.isnan(r["auc"]) and np.isnan(r["fpr_real"])
        else:
            assert 0.0 <= r["fpr_real"] <= 1.0
    clip_a = next(r for r in rows if r["unit"] == "a" and r["classifier"] == "clip" and r["score_on"] == "raw")
    assert clip_a["auc"] > 0.95 and clip_a["recall_ai"] > 0.8 and clip_a["fpr_real"] < 0.2
    s = summarise([r for r in rows if r["classifier"] == "fusion" and r["score_on"] == "raw"])
    assert s["units"] == 3 and s["auc_worst"] <= s["auc_mean"] <= 1.0
    assert s["recall_ai_worst"] <= s["recall_ai_mean"]
    lo = band_for_target([r for r in rows if r["classifier"] == "clip" and r["score_on"] == "raw"], 0.05)
    assert lo["confidently_wrong"] <= 0.05 + 1e-9 and 0.0 <= lo["uncertain"] <= 1.0


def test_augmented_training_and_gated_fusion() -> None:
    data = _data(1)
    units = source_units(data.sources, data.groups)
    specs = [Spec("clip", ("clip-center",)), Spec("gated", ("cnn",), kind="fusion", base="clip", gate="cnn-ood")]
    rows = run_loso(data, units, specs, "raw+norm", ["raw", "norm"], folds=3, progress=False)
    assert len(rows) == len(units) * len(specs) * 2
    assert {r["train_on"] for r in rows} == {"raw+norm"}
    gated_a = next(r for r in rows if r["unit"] == "a" and r["classifier"] == "gated" and r["score_on"] == "raw")
    assert gated_a["auc"] > 0.9


def test_unit_excludes_shared_groups() -> None:
    groups = np.array(["g1", "g1", "g2", "g3"])
    u = Unit.of("x", "family", np.array([True, False, False, False]), groups)
    assert u.exclude.tolist() == [True, True, False, False]


def test_weights_threshold_band() -> None:
    y = np.array([1, 1, 1, 0])
    w = balanced_weights(y)
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())
    ws = balanced_weights(np.array([1, 1, 1, 0]), np.array(["a", "a", "b", "c"]))
    assert ws[2] == pytest.approx(ws[0] + ws[1])  # each source weighs the same within its class
    s = np.array([-3.0, -1.0, 1.0, 3.0])
    assert -1.0 < fit_threshold(s, np.array([0, 0, 1, 1]), np.ones(4)) < 1.0
    m = np.array([-2.0, -0.5, 0.4, 2.0])
    yy = np.array([0, 1, 0, 1])  # two wrong, near the threshold
    assert fit_band(m, yy, np.ones(4), 0.0) == pytest.approx(0.5, abs=1e-6)
    cal = calibrate(np.r_[np.linspace(-4, 1, 50), np.linspace(-1, 4, 50)], np.r_[np.zeros(50), np.ones(50)].astype(int),
                    np.ones(100))
    assert isinstance(cal, Calibration) and cal.oof_cw <= 0.05 + 1e-9
    lo, hi = cal.p_band
    assert 0.0 < lo <= 0.5 <= hi < 1.0
