"""Classification metrics on calibrated P(ai): accuracy, balanced accuracy, ROC AUC,
average precision, expected calibration error, confusion matrix, per-class P/R."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ECE_BINS = 15


def ece(p_ai: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error over the confidence of the predicted class (equal-width
    bins, as in Guo et al. 2017), and the reliability table."""
    pred = (p_ai >= 0.5).astype(int)
    conf = np.where(pred == 1, p_ai, 1.0 - p_ai)
    correct = (pred == y).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1) if bins else np.array([0.5, 1.0])
    total, table = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi) if lo > 0.5 else (conf >= lo) & (conf <= hi)
        if not m.any():
            continue
        acc, cf = float(correct[m].mean()), float(conf[m].mean())
        total += m.mean() * abs(acc - cf)
        table.append({"lo": float(lo), "hi": float(hi), "n": int(m.sum()), "accuracy": acc, "confidence": cf})
    return float(total), table


def _safe(fn: Any, *args: Any) -> float:
    try:
        v = float(fn(*args))
    except ValueError:
        return float("nan")
    return v if math.isfinite(v) else float("nan")


def classification_metrics(
    p_ai: np.ndarray, y: np.ndarray, threshold: float = 0.5, pred: np.ndarray | None = None
) -> dict[str, Any]:
    """``pred`` (1 = ai) overrides ``p_ai >= threshold``: the labels the product gave, when
    images were routed to models with different thresholds."""
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

    p_ai = np.asarray(p_ai, dtype=float)
    y = np.asarray(y, dtype=int)
    pred = (p_ai >= threshold).astype(int) if pred is None else np.asarray(pred, dtype=int)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    rec_real = tn / (tn + fp) if tn + fp else float("nan")
    rec_ai = tp / (tp + fn) if tp + fn else float("nan")
    both = len(np.unique(y)) == 2
    e, table = ece(p_ai, y)
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "balanced_accuracy": float(np.nanmean([rec_real, rec_ai])) if len(y) else float("nan"),
        "roc_auc": _safe(roc_auc_score, y, p_ai) if both else float("nan"),
        "average_precision": _safe(average_precision_score, y, p_ai) if both else float("nan"),
        "ece": e,
        "threshold": float(threshold),
        "confusion_matrix": {"labels": ["real", "ai"], "rows_true_cols_pred": cm.tolist()},
        "per_class": {
            "real": {
                "precision": tn / (tn + fn) if tn + fn else float("nan"),
                "recall": rec_real,
                "support": tn + fp,
            },
            "ai": {
                "precision": tp / (tp + fp) if tp + fp else float("nan"),
                "recall": rec_ai,
                "support": tp + fn,
            },
        },
        "reliability": table,
    }


def short(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "accuracy", "balanced_accuracy", "roc_auc", "average_precision", "ece")
    return {k: m[k] for k in keys if k in m}
