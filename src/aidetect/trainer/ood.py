"""Fitting the out-of-distribution checks (:mod:`aidetect.model.ood`) at the end of training."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from aidetect.model.ood import OOD_FILE, FeatureTap, OODStats, flat_share
from aidetect.trainer.memory import BatchAugment, MemoryImages
from aidetect.trainer.probes import synthetic_probes

VAL_QUANTILE = 0.99  # share of validation images the feature score lets through
FLAT_MAX = 0.85  # more flat pixels than this: synthetic graphics, not a photograph
TRAIN_VIEWS = 2  # augmented crops per training image the statistics are fitted on


@torch.inference_mode()
def tap_features(model: nn.Module, batches: list[torch.Tensor]) -> torch.Tensor:
    """The early-block statistics of every image of ``batches`` (normalised model input)."""
    model.eval()
    out = []
    with FeatureTap(list(model.ood_layers)) as tap:  # type: ignore[attr-defined]
        for x in batches:
            model(x.contiguous(memory_format=torch.channels_last))
            out.append(tap.features())
    return torch.cat(out)


def _uint8(aug: BatchAugment, x: torch.Tensor) -> torch.Tensor:
    """Normalised batch -> 0-255 (to measure flat pixels on what the model saw)."""
    return ((x * aug.std + aug.mean) * 255.0).round()


def fit_ood(
    model: nn.Module, train: MemoryImages, val: MemoryImages, aug: BatchAugment, seed: int, batch: int = 64
) -> tuple[OODStats, dict[str, Any]]:
    """Fit the mean and shared covariance of the early-block statistics on ``TRAIN_VIEWS``
    augmented crops of every training image, set the threshold at the ``VAL_QUANTILE`` quantile
    of the validation images' centre crops, and measure what the two checks flag on validation
    and on synthetic off-domain probes (noise, flat colour, text, diagrams)."""
    from sklearn.covariance import LedoitWolf

    aug.rng.seed(seed + 7)
    feats = []
    for _ in range(TRAIN_VIEWS):
        for s in range(0, len(train), batch):
            feats.append(tap_features(model, [aug(train, torch.arange(s, min(s + batch, len(train))))]))
    f = torch.cat(feats).double().numpy()
    lw = LedoitWolf().fit(f)
    stats = OODStats(torch.from_numpy(lw.location_).float()[None], torch.from_numpy(lw.precision_).float(), 0.0,
                     FLAT_MAX)
    val_x = [aug.normalise(val.eval_batch(torch.arange(s, min(s + batch, len(val))))) for s in range(0, len(val), batch)]
    val_scores = stats.score(tap_features(model, val_x))
    val_flat = torch.cat([flat_share(_uint8(aug, x)) for x in val_x]).numpy()
    stats.threshold = float(np.quantile(val_scores, VAL_QUANTILE))
    probes = synthetic_probes(aug.size, per_kind=16, seed=seed)
    flagged: dict[str, dict[str, float]] = {}
    for kind, images in probes.items():
        x = aug.normalise(torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]))
        sc, fl = stats.score(tap_features(model, [x])), flat_share(_uint8(aug, x)).numpy()
        flagged[kind] = {"features": float((sc > stats.threshold).mean()), "flat": float((fl > FLAT_MAX).mean()),
                         "either": float(stats.outside(sc, fl).mean())}
    record = {
        "method": "Mahalanobis distance of the early blocks' per-channel mean and std (Ledoit-Wolf covariance), "
                  "or more than flat_max flat pixels",
        "file": OOD_FILE,
        "layers": len(list(model.ood_layers)),  # type: ignore[attr-defined]
        "dim": int(f.shape[1]),
        "fitted_on": f"{TRAIN_VIEWS} augmented crops of each of {len(train)} training images",
        "shrinkage": round(float(lw.shrinkage_), 6),
        "threshold": round(stats.threshold, 4),
        "threshold_rule": f"quantile {VAL_QUANTILE} of the validation images' scores (one centre crop each)",
        "flat_max": FLAT_MAX,
        "validation_flagged": float(stats.outside(val_scores, val_flat).mean()),
        "validation_flagged_features": float((val_scores > stats.threshold).mean()),
        "validation_flagged_flat": float((val_flat > FLAT_MAX).mean()),
        "validation_score_median": round(float(np.median(val_scores)), 4),
        "synthetic_probes_flagged": flagged,
    }
    return stats, record
