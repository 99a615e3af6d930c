"""Calibration fitted on the validation split: temperature, threshold, uncertain band.

- Temperature scaling (Guo et al., 2017): one scalar T > 0 dividing the logits, fitted by
  minimising the negative log-likelihood of the validation labels.
- Threshold: the calibrated P(ai) cut that maximises balanced accuracy on validation
  (ties: the one closest to 0.5).
- Uncertain band ``[lo, hi]``: the images whose calibrated probability of the *predicted*
  class is below a confidence level c, i.e. ``[min(1 - c, threshold), max(c, threshold)]``,
  with the lowest c such that the validation images *outside* it are classified with accuracy
  >= ``target_accuracy``, capped at ``max_uncertain`` of the validation images inside it.
  Defined on confidence rather than on distance from the threshold, a 98% "ai" is never
  called uncertain just because the threshold sits off 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    logits = logits.detach().double()
    labels = labels.detach().long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return t if math.isfinite(t) and 0.01 < t < 100 else 1.0


def prob_ai(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(logits.detach().float() / temperature, dim=1)[:, 1].numpy()


def fit_threshold(p: np.ndarray, y: np.ndarray) -> float:
    cands = np.unique(np.concatenate([np.linspace(0.05, 0.95, 91), [0.5]]))
    best, best_score = 0.5, -1.0
    pos, neg = max(1, int((y == 1).sum())), max(1, int((y == 0).sum()))
    for t in cands:
        pred = p >= t
        bacc = 0.5 * ((pred & (y == 1)).sum() / pos + (~pred & (y == 0)).sum() / neg)
        if bacc > best_score + 1e-12 or (abs(bacc - best_score) <= 1e-12 and abs(t - 0.5) < abs(best - 0.5)):
            best, best_score = float(t), float(bacc)
    return round(best, 4)


def fit_band(
    p: np.ndarray, y: np.ndarray, threshold: float, target_accuracy: float = 0.99, max_uncertain: float = 0.2
) -> tuple[list[float], dict[str, float]]:
    correct = (p >= threshold) == (y == 1)
    lo, hi = threshold, threshold
    for c in np.linspace(0.5, 0.995, 100):
        c_lo, c_hi = min(1.0 - float(c), threshold), max(float(c), threshold)
        inside = (p >= c_lo) & (p <= c_hi)
        if inside.mean() > max_uncertain:
            break
        lo, hi = c_lo, c_hi
        outside = ~inside
        if outside.sum() == 0 or correct[outside].mean() >= target_accuracy:
            break
    inside = (p >= lo) & (p <= hi)
    stats = {
        "uncertain_fraction": float(inside.mean()),
        "accuracy_outside_band": float(correct[~inside].mean()) if (~inside).any() else float("nan"),
        "target_accuracy": target_accuracy,
    }
    return [round(lo, 4), round(hi, 4)], stats
