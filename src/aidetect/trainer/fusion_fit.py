"""Fit the fusion head of Detector v3 (:mod:`aidetect.model.fusion`) on cached features
(:mod:`aidetect.trainer.feature_cache`) and write a fused model directory.

1. The probe: an L2-penalised logistic regression on the standardised, L2-normalised CLIP
   embeddings of every training image (class- and source-balanced weights: each class weighs
   half, each source the same within its class).
2. The fusion weights: a logistic regression on [the CNN's calibrated log-odds, the probe's
   *out-of-fold* logit] (stratified group k-fold: a group never on both sides).
3. The calibration (threshold, temperature, uncertain band) on **left-out** scores: for every
   source, steps 1-2 are refitted without it (and without any row sharing a group with it) and
   its rows scored; the pooled left-out scores fit the threshold (balanced accuracy), the
   temperature (log-loss) and the narrowest band that keeps confidently wrong at or under 5 %
   (:func:`aidetect.trainer.loso.calibrate`). The same left-out scores give the model card's
   leave-one-source-out table.

The frozen CLIP encoder and the CNN branch are not touched: retraining rewrites the head's 517
numbers only. Core only (numpy, scikit-learn, torch for the head).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aidetect.trainer.feature_cache import load_features
from aidetect.trainer.loso import (
    CW_TARGET,
    balanced_weights,
    calibrate,
    group_folds,
    source_units,
    unit_metrics,
    verdict_rates,
)


@dataclass
class Pooled:
    """Rows of every data set: labels (1 = ai), groups, sources, CLIP embeddings, CNN log-odds."""

    y: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    clip: np.ndarray
    cnn: np.ndarray
    generators: np.ndarray
    v2_split: np.ndarray  # shared sets: the split the v2 CNN was trained with ("" elsewhere)
    copy: np.ndarray  # bool: a training-only copy of another set's row (format-normalised), never scored
    ood: np.ndarray  # the CNN's out-of-distribution score (NaN where it has none)

    def subset(self, keep: np.ndarray) -> Pooled:
        return Pooled(*(getattr(self, f)[keep] for f in ("y", "groups", "sources", "clip", "cnn", "generators",
                                                         "v2_split", "copy", "ood")))

    def without_v2_test(self) -> Pooled:
        """The rows outside the v2 CNN's test split and outside every group that has a row in it:
        a head fitted on them can be scored on that split beside v2 (``aidetect evaluate``)."""
        held = set(self.groups[self.v2_split == "test"].tolist())
        return self.subset(~np.isin(self.groups, list(held)))


def pool(cache: Path, names: list[str], view: str, cnn_temperature: float) -> Pooled:
    """Rows of the cached data sets ``names`` (CLIP view ``view``); the cache's CNN score
    ``T * log-odds`` becomes the log-odds of the CNN's calibrated probability (what inference
    feeds the head). ``COPY:OF`` (e.g. ``extra_norm_crop:extra``) adds the set COPY as training-only
    copies of OF's rows: same sources and groups (left out together with them), never scored."""
    ys, gs, ss, es, cs, gens, splits, copies, oods = [], [], [], [], [], [], [], [], []
    for spec in names:
        name, _, of = spec.partition(":")
        items, feats = load_features(cache, name, kinds=(f"clip-{view}", "cnn", "cnn-ood"), optional=False)
        oods.append(feats["cnn-ood"])
        copies.append(np.full(len(items), bool(of)))
        ys.append(np.array([r["label"] == "ai" for r in items], int))
        gs.append(np.array([f"{of or name}|{r['group']}" for r in items]))
        ss.append(np.array([r.get("source") or name for r in items]))
        gens.append(np.array([r.get("generator") or "" for r in items]))
        splits.append(np.array([r.get("v2_split") or "" for r in items]))
        es.append(feats[f"clip-{view}"])
        cs.append(feats["cnn"] / cnn_temperature)
    e = np.concatenate(es).astype(np.float64)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return Pooled(np.concatenate(ys), np.concatenate(gs), np.concatenate(ss), e, np.concatenate(cs),
                  np.concatenate(gens), np.concatenate(splits), np.concatenate(copies), np.concatenate(oods))


@dataclass
class HeadFit:
    feat_mean: np.ndarray
    feat_std: np.ndarray
    probe_w: np.ndarray
    probe_b: float
    w_cnn: float
    w_clip: float
    bias: float

    def score(self, clip: np.ndarray, cnn: np.ndarray) -> np.ndarray:
        s = ((clip - self.feat_mean) / self.feat_std) @ self.probe_w + self.probe_b
        return self.w_cnn * cnn + self.w_clip * s + self.bias


def _probe(clip: np.ndarray, y: np.ndarray, w: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    mean = np.average(clip, axis=0, weights=w)
    std = np.sqrt(np.average((clip - mean) ** 2, axis=0, weights=w)) + 1e-8
    clf = LogisticRegression(C=C, max_iter=3000, tol=1e-5).fit((clip - mean) / std, y, sample_weight=w)
    return mean, std, clf.coef_[0].astype(np.float64), float(clf.intercept_[0])


def fit_head(d: Pooled, rows: np.ndarray, C: float = 0.5, folds: int = 5, seed: int = 0,
             oof: str = "source") -> HeadFit:
    """Steps 1-2 of the module doc on ``rows`` (bool mask). ``oof``: the probe logits the fusion
    weights are fitted on come from a probe that did not see the row's ``source`` (the default:
    the weights then say how far each branch carries to a source it has not seen; in-source
    folds made the probe look surer than it is across sources and it outvoted the CNN where it
    is blind, e.g. photoreal renders) or only not its ``group`` (stratified group k-fold)."""
    from sklearn.linear_model import LogisticRegression

    idx = np.flatnonzero(rows)
    y, w = d.y[idx], balanced_weights(d.y[idx], d.sources[idx])
    if oof == "source":
        names = sorted(set(d.sources[idx].tolist()))
        fold = np.array([names.index(s) for s in d.sources[idx].tolist()])
    else:
        fold = group_folds(y, d.groups[idx], k=folds, seed=seed)
    logits = np.zeros(len(idx))
    for f in np.unique(fold):
        tr, te = fold != f, fold == f
        mean, std, pw, pb = _probe(d.clip[idx][tr], y[tr], w[tr], C)
        logits[te] = ((d.clip[idx][te] - mean) / std) @ pw + pb
    fuse = LogisticRegression(C=1e4, max_iter=2000).fit(np.stack([d.cnn[idx], logits], 1), y, sample_weight=w)
    mean, std, pw, pb = _probe(d.clip[idx], y, w, C)
    return HeadFit(mean, std, pw, pb, float(fuse.coef_[0, 0]), float(fuse.coef_[0, 1]), float(fuse.intercept_[0]))


def leave_one_source_out(d: Pooled, C: float = 0.5, folds: int = 3, oof: str = "source",
                         progress: Any = None) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Each row's fused score from a head fitted without its source (and its groups); the units."""
    units = source_units(d.sources, d.groups)
    scores = np.full(len(d.y), np.nan)
    for u in units:
        head = fit_head(d, ~u.exclude, C=C, folds=folds, oof=oof)
        test = u.test & ~d.copy
        scores[test] = head.score(d.clip[test], d.cnn[test])
        if progress is not None:
            progress(u.name)
    return scores, [(u.name, u.test & ~d.copy) for u in units]


CASCADE_CANDIDATES = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995)
CASCADE_CW_SLACK = 0.002  # pooled confidently wrong may rise by at most this (and stay within CW_TARGET) ...
CASCADE_UNIT_CW_SLACK = 0.005  # ... and no left-out source's by more than this


def cascade_table(s: np.ndarray, d: Pooled, rows: np.ndarray, cal: Any, cnn_card: Any,
                  units: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """The cascade (:mod:`aidetect.inference.fused`) on left-out scores: for each candidate q, the
    rows where the CNN branch alone is firm (its calibrated P >= q or <= 1 - q, inside its band and
    training data) keep the CNN's verdict, the rest the fused one. Pooled (source-balanced)
    confidently wrong / uncertain, the share of images CLIP is skipped on, the worst per-source
    rise in confidently wrong; ``chosen``: the candidate skipping most that costs no accuracy
    (``CASCADE_*_SLACK``), None if none does."""
    p = 1 / (1 + np.exp(-d.cnn[rows]))
    lo, hi = cnn_card.uncertain_band
    ood_threshold = float((cnn_card.ood or {}).get("threshold", np.inf))
    cnn_pred = p >= float(cnn_card.threshold)
    cnn_unsure = ((p > lo) & (p < hi)) | (np.nan_to_num(d.ood[rows], nan=0.0) > ood_threshold)
    m = cal.margin(s[rows])
    y, w = d.y[rows], balanced_weights(d.y[rows], d.sources[rows])
    fused_pred, fused_unsure = m >= 0, np.abs(m) < cal.band

    def rates_(pred: np.ndarray, unsure: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
        mask = np.ones(len(y), bool) if mask is None else mask
        return verdict_rates(pred[mask], unsure[mask], y[mask], w[mask])

    base_cw, base_unc = rates_(fused_pred, fused_unsure)
    out: dict[str, Any] = {"fused": {"confidently_wrong": base_cw, "uncertain": base_unc}, "candidates": {}, "chosen": None}
    unit_masks = [(name, mask[rows]) for name, mask in units if mask[rows].any()]
    for q in CASCADE_CANDIDATES:
        firm = (np.maximum(p, 1 - p) >= q) & ~cnn_unsure
        pred, unsure = np.where(firm, cnn_pred, fused_pred), np.where(firm, False, fused_unsure)
        cw, unc = rates_(pred, unsure)
        rise = max(rates_(pred, unsure, um)[0] - rates_(fused_pred, fused_unsure, um)[0] for _, um in unit_masks)
        out["candidates"][str(q)] = {"confidently_wrong": cw, "uncertain": unc, "clip_skipped": float(firm.mean()),
                                     "worst_source_cw_rise": float(rise)}
        within = cw <= base_cw + CASCADE_CW_SLACK and (cw <= CW_TARGET or base_cw > CW_TARGET)
        if out["chosen"] is None and within and rise <= CASCADE_UNIT_CW_SLACK:
            out["chosen"] = q
    return out


def clip_view_card(view: str) -> dict[str, Any]:
    """The card's ``fusion`` keys for a cached CLIP view: ``center`` (224 px), ``center<S>``
    (``clip_size`` S); ``crops`` (a study view: the product has no crops-only rule) as it is."""
    from aidetect.trainer.feature_cache import view_size

    size = view_size(view)
    if size is None:
        raise ValueError(f"unknown CLIP view {view!r}")
    if view == "crops":
        return {"clip_views": view}
    return {"clip_views": "center", **({"clip_size": size} if view != "center" else {})}


def fit_fused_model(cache: Path, names: list[str], out_dir: Path, *, view: str = "center", C: float = 0.5,
                    cnn: str = "fast", clip: str = "clip_vit_b16", cnn_dir: Path | None = None,
                    hold_out_v2_test: bool = False, progress: Any = None) -> dict[str, Any]:
    """The whole recipe: pooled rows, left-out scores and calibration, the final head on every
    row, the model directory. Returns the report (also in the card's ``metrics``).
    ``hold_out_v2_test``: fit without the v2 CNN's test split (:meth:`Pooled.without_v2_test`), for
    scoring v2 and v3 side by side on it (robustness rows)."""
    import torch

    from aidetect.config import SHIPPED_MODEL_DIR
    from aidetect.model.card import ModelCard
    from aidetect.model.checkpoint import save_model_dir
    from aidetect.model.fusion import ARCHITECTURE, FusionHead

    t0 = time.time()
    cnn_card = ModelCard.load(cnn_dir or (SHIPPED_MODEL_DIR.parent / cnn))
    d = pool(cache, names, view, float(cnn_card.temperature or 1.0))
    if hold_out_v2_test:
        d = d.without_v2_test()
    s_loso, units = leave_one_source_out(d, C=C, progress=progress)
    orig = ~d.copy
    w_all = balanced_weights(d.y[orig], d.sources[orig])
    cal = calibrate(s_loso[orig], d.y[orig], w_all)
    cal_cnn = calibrate(d.cnn[orig], d.y[orig], w_all)  # the CNN branch alone, calibrated the same way
    cascade = cascade_table(s_loso, d, orig, cal, cnn_card, units)
    units = units + [(f"{src} [v2 test rows]", (d.sources == src) & (d.v2_split == "test") & orig)
                     for src in sorted(set(d.sources[d.v2_split != ""].tolist()))]
    per_unit = {name: unit_metrics(s_loso[m], d.y[m], cal) for name, m in units}
    per_unit_cnn = {name: unit_metrics(d.cnn[m], d.y[m], cal_cnn) for name, m in units}
    head = fit_head(d, np.ones(len(d.y), bool), C=C)
    module = FusionHead().set_from(feat_mean=head.feat_mean, feat_std=head.feat_std, probe_w=head.probe_w,
                                   probe_b=head.probe_b, w_cnn=head.w_cnn, w_clip=head.w_clip,
                                   bias=head.bias - cal.threshold)
    lo, hi = cal.p_band
    report = {
        "rows": int(orig.sum()), "ai": int(d.y[orig].sum()), "training_copies": int(d.copy.sum()), "sources": sorted(set(d.sources.tolist())),
        "weights": {"w_cnn": head.w_cnn, "w_clip": head.w_clip, "bias": head.bias - cal.threshold},
        "calibration": {"threshold_logit": cal.threshold, "temperature": cal.temperature, "band_margin": cal.band,
                        "loso_confidently_wrong": cal.oof_cw, "loso_uncertain": cal.oof_uncertain},
        "leave_one_source_out": per_unit, "cnn_alone": per_unit_cnn,
        "cnn_alone_calibration": {"loso_confidently_wrong": cal_cnn.oof_cw, "loso_uncertain": cal_cnn.oof_uncertain},
        "cascade": cascade, "fit_seconds": round(time.time() - t0, 1),
    }
    card = ModelCard(
        architecture=ARCHITECTURE, input_size=cnn_card.input_size, temperature=round(cal.temperature, 6),
        threshold=0.5, uncertain_band=[round(lo, 4), round(hi, 4)],
        fusion={"cnn": cnn, "clip": clip, **clip_view_card(view),
                "clip_min_side": int(cnn_card.domain.get("min_side", 0)), "cnn_firm": cascade["chosen"]},
        data={"cache": str(cache), "datasets": names, "view": view, "C": C, "hold_out_v2_test": hold_out_v2_test},
        metrics=report, training={"recipe": "aidetect.trainer.fusion_fit", "seconds": report["fit_seconds"],
                                  "torch": torch.__version__},
    )
    save_model_dir(module, card, out_dir)
    return report


def summary_line(metrics: dict[str, float]) -> str:
    def f(x: float) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    return " | ".join(f(metrics[k]) for k in ("auc", "recall_ai", "fpr_real", "confidently_wrong", "uncertain"))
