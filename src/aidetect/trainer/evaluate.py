"""``aidetect evaluate``: score a data source the way the product does, compute metrics,
per-group breakdown and a robustness table, and write metrics JSON, a markdown report and
PNG plots."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from aidetect.errors import AidetectError, ImageLoadError
from aidetect.jsonutil import clean_json, json_default
from aidetect.model.preprocess import load_image, reencode
from aidetect.trainer.metrics import classification_metrics, short
from aidetect.trainer.probes import default_font
from aidetect.trainer.sources import Selection, eval_selection, load_sources, parse_label_map


def _jpeg(q: int) -> Callable[[Image.Image], Image.Image]:
    return lambda img: reencode(img, "JPEG", quality=q)


def _webp(q: int) -> Callable[[Image.Image], Image.Image]:
    return lambda img: reencode(img, "WEBP", quality=q)


def _downscale(img: Image.Image) -> Image.Image:
    return img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.BICUBIC, reducing_gap=None)


def _blur(img: Image.Image) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=1.0))


def _gray(img: Image.Image) -> Image.Image:
    return img.convert("L").convert("RGB")


def _social(img: Image.Image) -> Image.Image:
    """What a social network does to an upload: long side to at most 1080 px (0.75x for smaller
    images), then JPEG quality 80 with 4:2:0 chroma."""
    scale = min(0.75, 1080 / max(img.size))
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    return reencode(small, "JPEG", quality=80, subsampling=2)


def _screenshot(img: Image.Image) -> Image.Image:
    """A screenshot of the picture shown in an app: displayed at 0.8x (bilinear, as a browser
    scales), inside a window with a title bar, a caption line and margins of flat UI colour,
    saved losslessly (PNG keeps every pixel: nothing to decode again)."""
    w, h = max(1, round(img.width * 0.8)), max(1, round(img.height * 0.8))
    shown = img.resize((w, h), Image.Resampling.BILINEAR)
    bar, margin = max(3, h // 10), max(2, w // 20)
    canvas = Image.new("RGB", (w + 2 * margin, h + 2 * bar + margin), (246, 246, 248))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, canvas.width, bar - 1), fill=(52, 58, 70))
    font = default_font(max(8, bar // 2))
    draw.text((margin, bar // 4), "photo.jpg - Viewer", fill=(235, 235, 235), font=font)
    canvas.paste(shown, (margin, bar))
    draw.text((margin, bar + h + bar // 4), "Shared 2 hours ago  ·  Like  ·  Reply", fill=(90, 90, 90), font=font)
    return canvas


def _meme(img: Image.Image) -> Image.Image:
    """A meme: white capitals with a black outline at the top and bottom of the picture, then
    JPEG q85 (4:2:0) as a meme generator saves it."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    font = default_font(max(8, out.height // 9))
    stroke = max(1, out.height // 120)
    for text, y in (("WHEN THE MODEL", out.height // 30), ("SAYS IT IS REAL", out.height - out.height // 7)):
        draw.text((out.width // 2, y), text, fill="white", font=font, anchor="ma", stroke_width=stroke, stroke_fill="black")
    return reencode(out, "JPEG", quality=85, subsampling=2)


# The original project's stated weak spots, applied to the same images.
ROBUSTNESS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg_q90": _jpeg(90),
    "jpeg_q75": _jpeg(75),
    "jpeg_q50": _jpeg(50),
    "downscale_0.5x": _downscale,
    "blur_r1": _blur,
    "grayscale": _gray,
    "webp_q75": _webp(75),
    "social_1080_q80": _social,
    "screenshot": _screenshot,
    "meme": _meme,
}


@dataclass
class EvalConfig:
    data: list[str]
    label_map: list[str] = field(default_factory=list)
    split: str | None = None
    group_split: tuple[float, float, float] | None = None
    model_dir: Path | None = None
    out: Path | None = None
    robustness: bool = True
    limit: int | None = None
    explain: int = 0
    batch_size: int = 256
    threads: int | None = None
    progress: bool = True
    engine: str = "auto"  # auto | detector | direct


class EvalScorer:
    """Calibrated P(ai) for PIL images. Uses :class:`aidetect.inference.Detector` (what
    ``predict``, the workers and the GUI use: tiling of large images included) when it is
    available; otherwise the model with :class:`EvalPreset`, which gives the same numbers
    for images already at the model's input size."""

    def __init__(self, model_dir: Path | None, engine: str = "auto") -> None:
        from aidetect.config import get_settings
        from aidetect.model import load_model_dir

        self.model_dir = Path(model_dir) if model_dir else get_settings().model
        self.model, self.card = load_model_dir(self.model_dir)
        self.detector = None
        if engine in ("auto", "detector"):
            from aidetect.inference import Detector

            self.detector = Detector(model_dir=self.model_dir, device="cpu")
        self.engine = "detector" if self.detector is not None else "direct"

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Calibrated P(ai) per image; the verdicts' uncertain reasons are kept in ``last_reasons``
        ("" for a firm verdict)."""
        if self.detector is not None:
            verdicts = self.detector.classify(list(images), explain=False)
            bad = [v for v in verdicts if v.error]
            if bad:
                raise AidetectError(f"scoring failed: {bad[0].error}")
            self.last_reasons = [(v.uncertain_reason or ("uncertain" if v.uncertain else "")) for v in verdicts]
            self.last_labels = [1 if v.label == "ai" else 0 for v in verdicts]
            return np.array([v.prob_ai for v in verdicts], dtype=float)
        self.last_reasons, self.last_labels = [], []
        import torch

        from aidetect.config import get_settings
        from aidetect.model import EvalPreset
        from aidetect.model.precision import pick_precision
        from aidetect.model.preprocess import Normalisation

        pre = EvalPreset(self.card.input_size, Normalisation(tuple(self.card.mean), tuple(self.card.std)))
        x = torch.stack([pre(im) for im in images]).contiguous(memory_format=torch.channels_last)
        amp = pick_precision(get_settings().precision, torch.device("cpu"))  # the Detector's precision
        with torch.inference_mode(), torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            logits = self.model(x).float() / self.card.temperature
        return torch.softmax(logits, dim=1)[:, 1].numpy().astype(float)


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    out: Path

    def summary(self) -> dict[str, Any]:
        m = self.metrics
        keys = ("accuracy", "balanced_accuracy", "roc_auc", "average_precision", "ece", "n")
        return {
            **{k: m["overall"][k] for k in keys},
            "model_version": m["model"]["version"],
            "per_group": {g: short(v) for g, v in m.get("per_group", {}).items()},
            "robustness": {c: short(v) for c, v in m.get("robustness", {}).items()},
            "report": str(self.out / "report.md"),
            "metrics_json": str(self.out / "metrics.json"),
        }

    def console_text(self) -> str:
        o = self.metrics["overall"]
        lines = [
            f"model {self.metrics['model']['version']} on {o['n']} images ({self.metrics['engine']} engine)",
            f"accuracy {o['accuracy']:.4f}  balanced {o['balanced_accuracy']:.4f}  ROC AUC {o['roc_auc']:.4f}  "
            f"AP {o['average_precision']:.4f}  ECE {o['ece']:.4f}",
        ]
        for c, v in self.metrics.get("robustness", {}).items():
            trust = (f"  uncertain {v['uncertain_rate']:.3f}  confidently wrong {v['confidently_wrong']:.3f}"
                     if "uncertain_rate" in v else "")
            lines.append(f"  {c:<15} accuracy {v['accuracy']:.4f}  AUC {v['roc_auc']:.4f}  ECE {v['ece']:.4f}{trust}")
        lines.append(f"report: {self.out / 'report.md'}")
        return "\n".join(lines)


def _stratified_limit(sel: Selection, limit: int, seed: int = 0) -> Selection:
    rng = np.random.default_rng(seed)
    idx = []
    for c in (0, 1):
        cidx = np.flatnonzero(sel.labels == c)
        rng.shuffle(cidx)
        share = round(limit * len(cidx) / len(sel))
        idx.append(cidx[:share])
    keep = np.sort(np.concatenate(idx))
    return Selection(sel.sources, [sel.items[k] for k in keep], sel.labels[keep], [sel.groups[k] for k in keep])


def _decode(sel: Selection, progress: bool) -> tuple[list[Image.Image], np.ndarray, list[str], list[str]]:
    from tqdm import tqdm

    images: list[Image.Image | None] = [None] * len(sel)
    failed = []
    for i, data, path in tqdm(sel.iter_images(), total=len(sel), desc="decode", disable=not progress, leave=False):
        try:
            images[i] = load_image(data if data else path, name=path)  # type: ignore[arg-type]
        except ImageLoadError as exc:
            failed.append(f"{path}: {exc}")
    keep = [i for i, im in enumerate(images) if im is not None]
    return [images[i] for i in keep], sel.labels[keep], [sel.groups[i] for i in keep], failed  # type: ignore[misc]


def run_evaluation(cfg: EvalConfig) -> EvalResult:
    import torch
    from tqdm import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    sources = load_sources(cfg.data, parse_label_map(cfg.label_map), cfg.group_split)  # data errors first, before the model
    scorer = EvalScorer(cfg.model_dir, cfg.engine)
    card = scorer.card
    sel, data_record = eval_selection(sources, cfg.split)
    if cfg.limit and len(sel) > cfg.limit:
        sel = _stratified_limit(sel, cfg.limit)
        data_record.update({"limit": cfg.limit, "n": len(sel), "hash": sel.digest()})
    images, y, groups, failed = _decode(sel, cfg.progress)
    if not images:
        raise AidetectError("no decodable images to evaluate")
    conditions: dict[str, Callable[[Image.Image], Image.Image] | None] = {"clean": None}
    if cfg.robustness:
        conditions.update(ROBUSTNESS)
    probs: dict[str, np.ndarray] = {}
    reasons: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    timings: dict[str, float] = {}
    for name, fn in conditions.items():
        t0 = time.perf_counter()
        out = []
        reasons[name], labels[name] = [], []
        for s in tqdm(range(0, len(images), cfg.batch_size), desc=f"score {name}", disable=not cfg.progress, leave=False):
            batch = images[s : s + cfg.batch_size]
            if fn is not None:
                batch = [fn(im) for im in batch]
            out.append(scorer(batch))
            reasons[name].extend(scorer.last_reasons)
            labels[name].extend(scorer.last_labels)
        probs[name] = np.concatenate(out)
        timings[name] = round(time.perf_counter() - t0, 2)
    thr = card.threshold
    # the labels the product gave (images routed to the small-image model use its threshold)
    preds = {c: np.array(labels[c]) if len(labels[c]) == len(y) else (probs[c] >= thr).astype(int) for c in conditions}
    overall = classification_metrics(probs["clean"], y, thr, preds["clean"])
    lo, hi = card.uncertain_band
    p = probs["clean"]
    inside = (p >= lo) & (p <= hi)
    overall["uncertain_fraction"] = float(inside.mean())
    overall["accuracy_outside_band"] = float((preds["clean"] == y)[~inside].mean()) if (~inside).any() else None
    if len(reasons["clean"]) == len(y):  # the product's own uncertain flags (band and out-of-distribution)
        overall.update(trust_metrics(preds["clean"], y, reasons["clean"]))
    metrics: dict[str, Any] = {
        "model": {
            "dir": str(scorer.model_dir),
            "version": card.version,
            "architecture": card.architecture,
            "temperature": card.temperature,
            "threshold": card.threshold,
            "uncertain_band": card.uncertain_band,
        },
        "engine": scorer.engine,
        "data": {**data_record, "undecodable": len(failed), "undecodable_examples": failed[:5]},
        "overall": overall,
    }
    uniq = sorted(set(groups))
    if len(uniq) > 1:
        g_arr = np.array(groups)
        metrics["per_group"] = {g: classification_metrics(p[g_arr == g], y[g_arr == g], thr, preds["clean"][g_arr == g])
                                for g in uniq}
        if len(reasons["clean"]) == len(y):
            for g in uniq:
                m = g_arr == g
                kept = [r for r, k in zip(reasons["clean"], m, strict=True) if k]
                metrics["per_group"][g].update(trust_metrics(preds["clean"][m], y[m], kept))
    if cfg.robustness:
        metrics["robustness"] = {
            c: {**short(classification_metrics(probs[c], y, thr, preds[c])),
                **(trust_metrics(preds[c], y, reasons[c]) if len(reasons[c]) == len(y) else {}),
                "seconds": timings[c]}
            for c in conditions
        }
    metrics["shortcuts"] = shortcut_probe(images, y, groups)
    metrics["seconds"] = timings
    out = cfg.out or Path("reports") / f"{card.version}-{_data_name(cfg.data)}"
    out.mkdir(parents=True, exist_ok=True)
    if cfg.explain:
        metrics["faithfulness"], faith_md = _faithfulness(scorer, images, cfg.explain)
    else:
        faith_md = ""
    metrics["total_seconds"] = round(time.perf_counter() - t_start, 1)
    from aidetect.trainer.report import write_plots, write_report

    plots = write_plots(out, card, probs["clean"], y, overall)
    metrics["plots"] = plots
    (out / "metrics.json").write_text(json.dumps(clean_json(metrics), indent=2, default=json_default) + "\n", encoding="utf-8")
    write_report(out, metrics, card, faith_md)
    return EvalResult(metrics, out)


def trust_metrics(pred: np.ndarray, y: np.ndarray, reasons: list[str]) -> dict[str, Any]:
    """What a user meets: the share of verdicts flagged uncertain (by reason), and the share that
    are wrong without being flagged ("confidently wrong")."""
    flagged = np.array([bool(r) for r in reasons])
    wrong = pred != y
    by_reason: dict[str, float] = {}
    for r in sorted(set(reasons) - {""}):
        by_reason[r] = float(np.mean([x == r for x in reasons]))
    return {
        "uncertain_rate": float(flagged.mean()) if len(y) else float("nan"),
        "uncertain_by_reason": by_reason,
        "confidently_wrong": float((wrong & ~flagged).mean()) if len(y) else float("nan"),
        "accuracy_when_decided": float((~wrong)[~flagged].mean()) if (~flagged).any() else float("nan"),
    }


def shortcut_probe(images: list[Image.Image], y: np.ndarray, groups: list[str]) -> dict[str, Any]:
    """How well the image size alone (pixel count, aspect ratio) would tell the classes apart
    (ROC AUC, 0.5 = not at all; folded so that 1.0 = perfectly, whichever way round): a detector
    may rank by size when the data lets it."""
    from sklearn.metrics import roc_auc_score

    px = np.array([im.width * im.height for im in images], dtype=float)
    aspect = np.array([max(im.size) / max(1, min(im.size)) for im in images], dtype=float)

    def auc(v: np.ndarray, t: np.ndarray) -> float | None:
        if len(np.unique(t)) < 2 or len(np.unique(v)) < 2:
            return None
        a = float(roc_auc_score(t, v))
        return max(a, 1.0 - a)

    out: dict[str, Any] = {"pixels_auc": auc(px, y), "aspect_auc": auc(aspect, y)}
    g_arr = np.array(groups)
    for g in sorted(set(groups)):
        m = g_arr == g
        out[g] = {"pixels_auc": auc(px[m], y[m]), "aspect_auc": auc(aspect[m], y[m])}
    return out


def _faithfulness(scorer: EvalScorer, images: list[Image.Image], n: int) -> tuple[dict[str, Any], str]:
    from aidetect.trainer.faithfulness import deletion_test, faithfulness_markdown

    det = scorer.detector
    if det is None:
        from aidetect.inference import Detector

        det = Detector(model_dir=scorer.model_dir, device="cpu")
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(images), size=min(n, len(images)), replace=False).tolist())
    result = deletion_test(det, [images[i] for i in pick], seed=0)
    return result, faithfulness_markdown(result)


def _data_name(data: list[str]) -> str:
    if not data:
        return "hemg"
    names = []
    for d in data:
        name = d.split("=", 1)[0] if "=" in d and not Path(d).exists() else Path(d.rstrip("/")).stem
        names.append(name.replace("/", "_"))
    return "+".join(names)[:60]
