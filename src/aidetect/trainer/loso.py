"""Leave-one-source-out (LOSO) evaluation of classifiers on cached features (Detector v3).

For every *unit* (a source: a shared set or an extra repository; or a generator family) the
classifier is fitted on every row outside the unit, less any row that shares a group with it
(same prompt, case, scene or near-copy), and scored on the unit. Everything that decides a
verdict is fitted on the training rows only, from their out-of-fold scores (group k-fold):

* the threshold (the cut of the classifier's score that maximises class-balanced accuracy);
* the temperature ``T`` of ``p = sigmoid((score - threshold) / T)`` (weighted log-loss);
* the uncertain band: ``|score - threshold| / T < w`` with the smallest ``w`` that keeps the
  out-of-fold *confidently wrong* rate (wrong and outside the band) at or under a target.

Per unit: ROC AUC (where it has both classes), recall of AI, false-positive rate of real,
confidently wrong and uncertain. Classifiers (:class:`Spec`): a logistic probe on CLIP
features (standardised, L2-normalised blocks), the CNN logit alone (a 1-d logistic, i.e. its
threshold and temperature), late fusion (a logistic on the CLIP probe's *out-of-fold* logit and
the CNN logit), early fusion (features + CNN logit in one probe), a small MLP.

Core only: numpy, scikit-learn, scipy; the features come from :mod:`feature_cache`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

CW_TARGET = 0.05


# -- units ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """Rows left out together (``test``) and rows that may not train (``exclude``: the test
    rows and every row sharing a group with them)."""

    name: str
    kind: str  # source | family
    test: np.ndarray  # bool
    exclude: np.ndarray  # bool

    @classmethod
    def of(cls, name: str, kind: str, test: np.ndarray, groups: np.ndarray) -> Unit:
        held = set(groups[test].tolist())
        return cls(name, kind, test, test | np.isin(groups, list(held)))


def source_units(sources: np.ndarray, groups: np.ndarray, order: Sequence[str] | None = None) -> list[Unit]:
    names = list(order) if order is not None else sorted(set(sources.tolist()))
    return [Unit.of(s, "source", sources == s, groups) for s in names if (sources == s).any()]


def family_units(masks: dict[str, np.ndarray], groups: np.ndarray) -> list[Unit]:
    return [Unit.of(name, "family", m, groups) for name, m in masks.items() if m.any()]


# -- weights, folds -------------------------------------------------------------------------
def balanced_weights(y: np.ndarray, sources: np.ndarray | None = None) -> np.ndarray:
    """Each class weighs half; with ``sources``, each source weighs the same within its class."""
    w = np.zeros(len(y), dtype=np.float64)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        if not len(idx):
            continue
        if sources is None:
            w[idx] = 1.0 / len(idx)
        else:
            srcs = sources[idx]
            names, counts = np.unique(srcs, return_counts=True)
            per = dict(zip(names.tolist(), counts.tolist(), strict=True))
            w[idx] = [1.0 / (len(names) * per[s]) for s in srcs.tolist()]
    return w * len(y) / w.sum()


def group_folds(y: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number of every row: stratified group k-fold (every group in one fold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.full(len(y), -1)
    k = max(2, min(k, len(set(groups.tolist()))))
    for f, (_, te) in enumerate(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(y, y, groups)):
        fold[te] = f
    return fold


# -- classifiers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """A classifier over feature kinds. ``kind``: ``logistic`` (L2-normalised embedding blocks
    and raw scalar columns, standardised, L2-penalised logistic regression with strength
    ``C``), ``mlp`` (one hidden layer), ``fusion`` (a logistic on the out-of-fold logit of
    ``base`` and the scalar ``inputs``), ``score`` (the single scalar input, calibrated only).
    ``honest``: the fusion weights and the calibration skip rows flagged ``in_sample`` (rows
    a frozen input was trained on). ``gate``: see :func:`_fusion_columns`."""

    name: str
    inputs: tuple[str, ...]
    kind: str = "logistic"
    C: float = 0.5
    base: str | None = None
    honest: bool = False
    hidden: int = 256
    gate: str | None = None  # fusion only: a scalar that may modulate each branch's weight


class _Model:
    """Fitted transform + classifier; ``score`` gives the logit."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int = 0) -> _Model:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(X, sample_weight=w)
        Z = self.scaler.transform(X)
        if self.spec.kind == "mlp":
            self.clf = _fit_mlp(Z, y, w, self.spec.hidden, seed)
        else:
            c = self.spec.C if self.spec.kind == "logistic" else 1e4
            self.clf = LogisticRegression(C=c, max_iter=2000, tol=1e-5).fit(Z, y, sample_weight=w)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        Z = self.scaler.transform(X)
        if self.spec.kind == "mlp":
            return _mlp_logit(self.clf, Z)
        return self.clf.decision_function(Z)


def _fit_mlp(Z: np.ndarray, y: np.ndarray, w: np.ndarray, hidden: int, seed: int):  # noqa: ANN202 - torch module
    """A 1-hidden-layer MLP (dropout 0.5, weight decay 1e-3, 20 epochs of AdamW, batch 256), weighted BCE."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(Z.shape[1], hidden), torch.nn.GELU(),
                              torch.nn.Dropout(0.5), torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    X, Y, W = (torch.as_tensor(a, dtype=torch.float32) for a in (Z, y, w))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(20):
        for idx in torch.randperm(len(X), generator=gen).split(256):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(X[idx])[:, 0], Y[idx], weight=W[idx])
            loss.backward()
            opt.step()
    return net.eval()


def _mlp_logit(net, Z: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    with torch.inference_mode():
        return net(torch.as_tensor(Z, dtype=torch.float32))[:, 0].double().numpy()


def design(features: dict[str, np.ndarray], inputs: Iterable[str], rows: np.ndarray) -> np.ndarray:
    """Columns of ``inputs`` for ``rows``: embeddings (2-d) L2-normalised, scalars (1-d) as is."""
    cols = []
    for kind in inputs:
        a = np.asarray(features[kind][rows], dtype=np.float64)
        if a.ndim == 1:
            cols.append(a[:, None])
        else:
            cols.append(a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12))
    return np.concatenate(cols, axis=1)


# -- calibration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    threshold: float  # on the raw score (logit)
    temperature: float
    band: float  # uncertain where |margin| < band; margin = (score - threshold) / temperature
    oof_cw: float = float("nan")
    oof_uncertain: float = float("nan")

    def margin(self, s: np.ndarray) -> np.ndarray:
        return (np.asarray(s, dtype=np.float64) - self.threshold) / self.temperature

    @property
    def p_band(self) -> tuple[float, float]:
        """The band as calibrated P(ai): [sigmoid(-band), sigmoid(band)]."""
        return (1 / (1 + math.exp(self.band)), 1 / (1 + math.exp(-self.band)))


def fit_threshold(s: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """The cut maximising weighted balanced accuracy (each class's weights sum to one half)."""
    wb = balanced_weights(y) * w
    wb = wb / wb.sum()
    order = np.argsort(s)
    s_sorted, y_sorted, w_sorted = s[order], y[order], wb[order]
    # predicting ai for scores >= cut: accuracy = (real weight below) + (ai weight at or above)
    real_below = np.concatenate([[0.0], np.cumsum(w_sorted * (y_sorted == 0))])
    ai_above = np.concatenate([np.cumsum((w_sorted * (y_sorted == 1))[::-1])[::-1], [0.0]])
    acc = real_below + ai_above
    cuts = np.concatenate([[s_sorted[0] - 1.0], (s_sorted[:-1] + s_sorted[1:]) / 2, [s_sorted[-1] + 1.0]])
    valid = np.concatenate([[True], s_sorted[:-1] < s_sorted[1:], [True]])
    acc = np.where(valid, acc, -1)
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    return float(cuts[best[np.argmin(np.abs(cuts[best]))]])  # ties: the cut nearest 0


def fit_temperature(m: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """T minimising the weighted log-loss of sigmoid(m / T)."""
    from scipy.optimize import minimize_scalar

    sign = np.where(y == 1, 1.0, -1.0)

    def loss(log_t: float) -> float:
        return float(np.sum(w * np.logaddexp(0.0, -sign * m / math.exp(log_t))) / w.sum())

    res = minimize_scalar(loss, bounds=(math.log(1e-3), math.log(1e3)), method="bounded")
    return float(math.exp(res.x))


def fit_band(margin: np.ndarray, y: np.ndarray, w: np.ndarray, cw_target: float = CW_TARGET) -> float:
    """The smallest band ``b`` with weighted confidently-wrong rate (wrong and |margin| >= b)
    at or under ``cw_target``."""
    wrong = (margin >= 0) != (y == 1)
    a = np.abs(margin)
    order = np.argsort(a)
    a_sorted, wrong_w = a[order], (w * wrong)[order] / w.sum()
    # cw(b) for b just above a_sorted[i] = weight of wrong rows with |m| > a_sorted[i]
    tail = np.concatenate([np.cumsum(wrong_w[::-1])[::-1], [0.0]])  # tail[i] = wrong weight from i on
    if tail[0] <= cw_target:
        return 0.0
    i = int(np.argmax(tail <= cw_target + 1e-12))  # first index whose tail fits
    return float(a_sorted[i - 1] + 1e-9) if i > 0 else 0.0


def calibrate(s: np.ndarray, y: np.ndarray, w: np.ndarray, cw_target: float = CW_TARGET) -> Calibration:
    t = fit_threshold(s, y, w)
    temp = fit_temperature(s - t, y, balanced_weights(y) * w)
    m = (s - t) / temp
    wb = balanced_weights(y) * w
    band = fit_band(m, y, wb, cw_target)
    cw, unc = rates(m, y, band, wb)
    return Calibration(t, temp, band, cw, unc)


# -- metrics --------------------------------------------------------------------------------
def rates(margin: np.ndarray, y: np.ndarray, band: float, w: np.ndarray | None = None) -> tuple[float, float]:
    """(confidently wrong, uncertain) as fractions of the rows (weighted with ``w``) of the verdicts
    of calibrated margins: ai where ``margin >= 0``, uncertain where ``|margin| < band``."""
    return verdict_rates(margin >= 0, np.abs(margin) < band, y, w)


def verdict_rates(pred_ai: np.ndarray, unsure: np.ndarray, y: np.ndarray,
                  w: np.ndarray | None = None) -> tuple[float, float]:
    """(confidently wrong, uncertain) of verdicts given as (says ai, uncertain) per row."""
    if not len(y):
        return float("nan"), float("nan")
    wrong = (pred_ai != (y == 1)) & ~unsure
    return float(np.average(wrong, weights=w)), float(np.average(unsure, weights=w))


def auc(s: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def unit_metrics(s: np.ndarray, y: np.ndarray, cal: Calibration) -> dict[str, float]:
    m = cal.margin(s)
    pred = m >= 0
    cw, unc = rates(m, y, cal.band)
    n_ai, n_real = int(y.sum()), int((y == 0).sum())
    return {
        "n": len(y), "n_ai": n_ai, "n_real": n_real, "auc": auc(s, y),
        "recall_ai": float(pred[y == 1].mean()) if n_ai else float("nan"),
        "fpr_real": float(pred[y == 0].mean()) if n_real else float("nan"),
        "accuracy": float((pred == (y == 1)).mean()) if len(y) else float("nan"),
        "confidently_wrong": cw, "uncertain": unc,
        "threshold": cal.threshold, "temperature": cal.temperature, "band": cal.band,
        "oof_cw": cal.oof_cw, "oof_uncertain": cal.oof_uncertain,
    }


# -- the evaluation -------------------------------------------------------------------------
@dataclass
class Data:
    """Rows of the pooled data and their features per variant (``raw``, ``normalised``, ...):
    ``features[variant][kind]`` has one row per data row (for rows a variant does not change,
    the same values)."""

    y: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    features: dict[str, dict[str, np.ndarray]]
    in_sample: np.ndarray | None = None  # rows a frozen input (the CNN) was trained on
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. generator, v2_split


@dataclass
class Scored:
    """Scores of one classifier for one unit: calibration from the out-of-fold training scores,
    the unit's scores per scoring variant."""

    unit: str
    calibration: Calibration
    test_scores: dict[str, np.ndarray]
    oof: np.ndarray
    train_rows: np.ndarray


def evaluate_unit(data: Data, unit: Unit, specs: Sequence[Spec], train_variant: str,
                  score_variants: Sequence[str], *, folds: int = 5, seed: int = 0, weights: str = "class",
                  cw_target: float = CW_TARGET) -> dict[str, Scored]:
    """Every spec (bases before the fusions that read them) for one left-out unit.
    ``train_variant`` may join variants with ``+`` (``raw+norm``): every training row then
    appears once per variant (its copies in one fold), as augmentation."""
    train = np.flatnonzero(~unit.exclude)
    test = np.flatnonzero(unit.test)
    tv = train_variant.split("+")
    k = len(tv)
    y_tr = np.tile(data.y[train], k)
    w_tr = np.tile(balanced_weights(data.y[train], data.sources[train] if weights == "class+source" else None), k)
    fold = np.tile(group_folds(data.y[train], data.groups[train], folds, seed), k)
    honest_rows = np.tile(~data.in_sample[train] if data.in_sample is not None else np.ones(len(train), bool), k)

    def train_design(inputs: Iterable[str]) -> np.ndarray:
        return np.vstack([design(data.features[v], inputs, train) for v in tv])

    out: dict[str, Scored] = {}
    for spec in specs:
        # a scoring variant without one of the inputs (e.g. no crops of the normalised copies) is skipped
        extra_inputs = (*spec.inputs, *((spec.gate,) if spec.gate else ()))
        variants = [v for v in score_variants if all(i in data.features[v] for i in extra_inputs)]
        if spec.kind == "fusion":
            base = out[spec.base]  # type: ignore[index]
            variants = [v for v in variants if v in base.test_scores]
            X_tr = _fusion_columns(base.oof, train_design(spec.inputs),
                                   train_design((spec.gate,)) if spec.gate else None)
            X_te = {v: _fusion_columns(base.test_scores[v], design(data.features[v], spec.inputs, test),
                                       design(data.features[v], (spec.gate,), test) if spec.gate else None)
                    for v in variants}
        else:
            X_tr = train_design(spec.inputs)
            X_te = {v: design(data.features[v], spec.inputs, test) for v in variants}
        use = honest_rows if spec.honest else np.ones(len(y_tr), bool)
        if len(np.unique(y_tr[use])) < 2:  # too few honest rows: every training row
            use = np.ones(len(y_tr), bool)
        oof = np.full(len(y_tr), np.nan)
        for f in range(fold.max() + 1):
            fit_rows, pred_rows = (fold != f) & use, fold == f
            if len(np.unique(y_tr[fit_rows])) < 2:
                continue
            oof[pred_rows] = _Model(spec).fit(X_tr[fit_rows], y_tr[fit_rows], w_tr[fit_rows], seed).score(X_tr[pred_rows])
        model = _Model(spec).fit(X_tr[use], y_tr[use], w_tr[use], seed)
        ok = use & np.isfinite(oof)
        cal = calibrate(oof[ok], y_tr[ok], w_tr[ok], cw_target)
        out[spec.name] = Scored(unit.name, cal, {v: model.score(X) for v, X in X_te.items()}, oof, train)
    return out


def _fusion_columns(base: np.ndarray, others: np.ndarray, gate: np.ndarray | None) -> np.ndarray:
    """[base logit, other scores] and, with a gate g, [g, base * g, other * g] (the weight of
    each branch may then depend on g, e.g. how far the image is from the CNN's training data)."""
    cols = np.column_stack([base, others])
    if gate is None:
        return cols
    return np.column_stack([cols, gate, cols * gate])


def run_loso(data: Data, units: Sequence[Unit], specs: Sequence[Spec], train_variant: str,
             score_variants: Sequence[str], *, subsets: Callable[[Unit], dict[str, np.ndarray]] | None = None,
             progress: bool | None = None, **kw: object) -> list[dict]:
    """One row per (unit or subset of it, spec, scoring variant): :func:`unit_metrics` plus
    ``unit``, ``kind``, ``classifier``, ``train_on``, ``score_on``; also returns, in the
    rows' ``scores`` and ``y`` entries, the unit's scores (for pooled analyses)."""
    from tqdm import tqdm

    rows: list[dict] = []
    for unit in tqdm(units, desc=f"LOSO train={train_variant}", disable=progress is False, leave=False):
        scored = evaluate_unit(data, unit, specs, train_variant, score_variants, **kw)  # type: ignore[arg-type]
        test = np.flatnonzero(unit.test)
        parts = {unit.name: np.ones(len(test), bool)}
        if subsets is not None:
            parts.update({k: m[test] for k, m in subsets(unit).items() if m[test].any()})
        for spec in specs:
            sc = scored[spec.name]
            for v in (v for v in score_variants if v in sc.test_scores):
                for part, mask in parts.items():
                    s, y = sc.test_scores[v][mask], data.y[test][mask]
                    rows.append({"unit": part, "kind": unit.kind if part == unit.name else "subset",
                                 "classifier": spec.name, "train_on": train_variant, "score_on": v,
                                 **unit_metrics(s, y, sc.calibration), "scores": s, "y": y,
                                 "margin": sc.calibration.margin(s), "test_index": test[mask]})
    return rows


# -- summaries ------------------------------------------------------------------------------
SUMMARY_METRICS = (("auc", "min"), ("recall_ai", "min"), ("fpr_real", "max"), ("confidently_wrong", "max"),
                   ("uncertain", "max"))


def summarise(rows: Sequence[dict]) -> dict[str, float]:
    """Mean and worst (min AUC / recall, max FPR / confidently wrong / uncertain) over units,
    plus the pooled confidently-wrong and uncertain rates over all their rows."""
    out: dict[str, float] = {"units": len(rows)}
    for key, worst in SUMMARY_METRICS:
        vals = np.array([r[key] for r in rows], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[f"{key}_mean"] = float(vals.mean()) if len(vals) else float("nan")
        out[f"{key}_worst"] = float(vals.min() if worst == "min" else vals.max()) if len(vals) else float("nan")
    n = sum(r["n"] for r in rows)
    out["pooled_confidently_wrong"] = sum(r["confidently_wrong"] * r["n"] for r in rows) / n if n else float("nan")
    out["pooled_uncertain"] = sum(r["uncertain"] * r["n"] for r in rows) / n if n else float("nan")
    return out


def band_for_target(rows: Sequence[dict], cw_target: float = CW_TARGET, macro: bool = False) -> dict[str, float]:
    """The band (on each unit's calibrated margin) that brings the left-out confidently-wrong
    rate to ``cw_target``, pooled over rows (or averaged over units with ``macro``), and the
    uncertain rate it costs; also the temperature that fits the pooled left-out margins."""
    m = np.concatenate([r["margin"] for r in rows])
    y = np.concatenate([r["y"] for r in rows])
    if macro:
        w = np.concatenate([np.full(len(r["y"]), 1.0 / max(1, len(r["y"]))) for r in rows])
    else:
        w = np.ones(len(y))
    band = fit_band(m, y, w, cw_target)
    unsure = np.abs(m) < band
    wrong = (m >= 0) != (y == 1)
    cw = float(np.sum(w * (wrong & ~unsure)) / w.sum())
    unc = float(np.sum(w * unsure) / w.sum())
    return {"band": band, "p_lo": 1 / (1 + math.exp(band)), "p_hi": 1 / (1 + math.exp(-band)),
            "confidently_wrong": cw, "uncertain": unc, "extra_temperature": fit_temperature(m, y, w)}
