#!/usr/bin/env python
"""Leave-one-source-out tables for Detector v3 from the feature cache (``aidetect data features``).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/loso_v3.py --cache /work/data/features --out reports/v3-loso
    ... --runs main          # only the main run (train raw, score raw + normalised copies)
    ... --runs augment,weights,sweep

Runs: ``main`` (train on raw extra, score the left-out unit raw and normalised), ``norm`` (train
on the crop-normalised extra copies, score raw and normalised), ``resize`` (the same with the
resize-normalised copies, CLIP centre view and CNN only), ``augment`` (train on the raw extra
files and their crop-normalised copies together; a fusion gated by the CNN's out-of-distribution
score), ``weights`` (class + source balanced
weights), ``sweep`` (the probe's C). Writes CSV + markdown per run under --out and prints the
summaries. See docs/detector-v3.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aidetect.trainer.feature_cache import load_features
from aidetect.trainer.loso import (
    CW_TARGET,
    Data,
    Spec,
    band_for_target,
    family_units,
    run_loso,
    source_units,
    summarise,
)

SHARED = ("coco_sd", "forrealscan", "camera")
EXTRA = "extra"
NORMALISED = {"norm": "extra_norm_crop", "resize": "extra_norm_resize"}
KINDS = ("clip-center", "clip-crops", "cnn", "cnn-ood")
SHORT = {
    "EliSchwartz/imagenet-sample-images": "imagenet (real)",
    "TeenBiscuits/RealOrAI": "RealOrAI (nano-banana-pro / unsplash)",
    "songguoxs/gpt4o-image-prompts": "songguoxs (nano banana pro + gpt-4o era)",
    "muset-ai/awesome-nano-banana-pro": "muset nano-banana",
    "jyoung105/yetter": "yetter (flux / kontext / qwen)",
    "openMVG/SfM_quality_evaluation": "openMVG (real, camera)",
    "joone-org/SentioNova": "SentioNova (midjourney 23-24)",
    "preangelleo/illustration-style-samples": "preangelleo (flux / nano / qwen)",
    "comfyanonymous/ComfyUI_examples": "ComfyUI (flux, sd3, ...)",
    "Pixmind-io/awesome-midjourney-v7-example-prompts": "Pixmind (midjourney v7)",
    "ianare/exif-samples": "exif-samples (real, camera)",
}
COMFY_FAMILY = {"flux": "flux/chroma", "flux2": "flux/chroma", "chroma": "flux/chroma", "sd3": "SD family",
                "sdxl": "SD family", "sdturbo": "SD family", "stable_cascade": "SD family", "qwen_image": "qwen"}


def load_data(cache: Path) -> tuple[Data, dict[str, np.ndarray]]:
    items: list[dict] = []
    raw: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    for name in (*SHARED, EXTRA):
        if not (cache / name / "items.csv").is_file():
            print(f"{name}: not in the cache, left out", flush=True)
            continue
        its, feats = load_features(cache, name, KINDS)
        for r in its:
            r["dataset"] = name
        items += its
        for k in KINDS:
            raw[k].append(feats.get(k))
    features: dict[str, dict[str, np.ndarray]] = {"raw": {k: np.concatenate(v) for k, v in raw.items()
                                                          if all(a is not None for a in v)}}
    if "cnn-ood" in features["raw"]:  # Mahalanobis distances: their log as the gate
        features["raw"]["cnn-ood"] = np.log(features["raw"]["cnn-ood"])
    extra_rows = np.array([r["dataset"] == EXTRA for r in items])
    if not extra_rows.any():
        NORMALISED.clear()
    sha_at = {r["sha256"]: i for i, r in enumerate(items) if r["dataset"] == EXTRA}
    for variant, name in NORMALISED.items():
        if not (cache / name / "items.csv").is_file():
            continue
        its, feats = load_features(cache, name, KINDS)
        where = np.array([sha_at[r["source_sha256"]] for r in its])
        if extra_rows.sum() != len(where):
            raise SystemExit(f"{name}: {len(where)} copies for {extra_rows.sum()} extra files")
        features[variant] = {}
        for k, a in feats.items():
            if k not in features["raw"]:
                continue
            full = features["raw"][k].copy()
            full[where] = np.log(a) if k == "cnn-ood" else a
            features[variant][k] = full
    y = np.array([r["label"] == "ai" for r in items], dtype=np.int64)
    meta = {
        "source": np.array([r["source"] if r["dataset"] == EXTRA else r["dataset"] for r in items]),
        "generator": np.array([r.get("generator") or "" for r in items]),
        "v2_split": np.array([r.get("v2_split") or "" for r in items]),
        "dataset": np.array([r["dataset"] for r in items]),
    }
    data = Data(y=y, groups=np.array([f'{r["dataset"]}|{r["group"]}' for r in items]), sources=meta["source"],
                features=features, in_sample=np.isin(meta["v2_split"], ["train", "validation"]), extra=meta)
    return data, meta


def families(meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    g, s = np.char.lower(meta["generator"].astype(str)), meta["source"]
    song = s == "songguoxs/gpt4o-image-prompts"
    return {
        "family: songguoxs nano banana pro": song & (g == "nano banana pro"),
        "family: songguoxs gpt-4o era": song & (g == "unnamed (gpt-4o era case)"),
        "family: nano banana, every repo": (np.char.find(g, "nano") >= 0) & (np.char.find(g, "banana") >= 0),
        "family: flux, every repo": np.char.find(g, "flux") >= 0,
        "family: qwen-image, every repo": np.char.find(g, "qwen") >= 0,
        "family: midjourney, every repo": np.char.find(g, "midjourney") >= 0,
    }


def subsets_of(meta: dict[str, np.ndarray]):  # noqa: ANN201
    g, s = meta["generator"], meta["source"]

    def subsets(unit) -> dict[str, np.ndarray]:  # noqa: ANN001
        name = unit.name
        if name in SHARED:
            return {f"{name} [v2 test rows]": (s == name) & (meta["v2_split"] == "test")}
        if name in ("jyoung105/yetter", "preangelleo/illustration-style-samples", "songguoxs/gpt4o-image-prompts"):
            gens = sorted({x for x in g[s == name].tolist()})
            return {f"{SHORT[name].split(' ')[0]}: {x}": (s == name) & (g == x) for x in gens
                    if ((s == name) & (g == x)).sum() >= 8}
        if name == "comfyanonymous/ComfyUI_examples":
            fam = np.array([COMFY_FAMILY.get(x, "other") for x in g.tolist()])
            return {f"ComfyUI: {f}": (s == name) & (fam == f) for f in ("flux/chroma", "SD family", "qwen", "other")}
        return {}

    return subsets


def specs_for(features: dict[str, np.ndarray], mlp: bool = True) -> list[Spec]:
    have = set(features)
    specs = [Spec("clip_center", ("clip-center",))]
    if "clip-crops" in have:
        specs += [Spec("clip_crops", ("clip-crops",)), Spec("clip_concat", ("clip-center", "clip-crops"))]
    specs += [Spec("cnn", ("cnn",), kind="score"), Spec("cnn_honest", ("cnn",), kind="score", honest=True),
              Spec("fusion_center", ("cnn",), kind="fusion", base="clip_center"),
              Spec("fusion_center_honest", ("cnn",), kind="fusion", base="clip_center", honest=True)]
    if "clip-crops" in have:
        specs += [Spec("fusion_concat", ("cnn",), kind="fusion", base="clip_concat"),
                  Spec("fusion_concat_honest", ("cnn",), kind="fusion", base="clip_concat", honest=True)]
    specs += [Spec("early_center_cnn", ("clip-center", "cnn"))]
    if mlp:
        specs += [Spec("mlp_center", ("clip-center",), kind="mlp")]
    return specs


def fmt(v: object) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3f}"
    return str(v)


UNIT_COLUMNS = ("unit", "kind", "n", "n_ai", "n_real", "auc", "recall_ai", "fpr_real", "confidently_wrong",
                "uncertain")


def write_tables(rows: list[dict], out: Path, tag: str) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    plain = [{k: v for k, v in r.items() if not isinstance(v, np.ndarray)} for r in rows]
    with (out / f"{tag}-units.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(plain[0]))
        w.writeheader()
        w.writerows(plain)
    summaries = []
    md = [f"# LOSO {tag}\n"]
    keys = sorted({(r["classifier"], r["train_on"], r["score_on"]) for r in rows}, key=lambda k: (k[1], k[2]))
    order = list(dict.fromkeys(r["classifier"] for r in rows))
    keys.sort(key=lambda k: (k[1], k[2], order.index(k[0])))
    for clf, tr, sc in keys:
        sel = [r for r in rows if (r["classifier"], r["train_on"], r["score_on"]) == (clf, tr, sc)]
        units = [r for r in sel if r["kind"] == "source"]
        fams = [r for r in sel if r["kind"] == "family"]
        summ = {"classifier": clf, "train_on": tr, "score_on": sc, **summarise(units)}
        if units:
            lo = band_for_target(units, CW_TARGET)
            lo_macro = band_for_target(units, CW_TARGET, macro=True)
            summ.update({f"lo_{k}": v for k, v in lo.items()})
            summ.update({f"lo_macro_{k}": v for k, v in lo_macro.items()})
        if fams:
            summ.update({f"family_{k}": v for k, v in summarise(fams).items()})
        summaries.append(summ)
        md.append(f"\n## {clf}: train {tr}, score {sc}\n")
        md.append("| " + " | ".join(UNIT_COLUMNS) + " |")
        md.append("|" + "---|" * len(UNIT_COLUMNS))
        for r in sel:
            name = SHORT.get(r["unit"], r["unit"])
            md.append("| " + " | ".join(fmt(r[c]) if c != "unit" else name for c in UNIT_COLUMNS) + " |")
    (out / f"{tag}-units.md").write_text("\n".join(md) + "\n")
    with (out / f"{tag}-summary.csv").open("w", newline="") as fh:
        cols = sorted({k for s in summaries for k in s}, key=lambda k: list(summaries[0]).index(k)
                      if k in summaries[0] else 999)
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(summaries)
    return summaries


SUMMARY_MD = (("auc_mean", "AUC mean"), ("auc_worst", "AUC min"), ("recall_ai_mean", "recall mean"),
              ("recall_ai_worst", "recall min"), ("fpr_real_mean", "FPR mean"), ("fpr_real_worst", "FPR max"),
              ("confidently_wrong_mean", "cw mean"), ("confidently_wrong_worst", "cw max"),
              ("uncertain_mean", "unc mean"), ("uncertain_worst", "unc max"),
              ("pooled_confidently_wrong", "cw pooled"), ("pooled_uncertain", "unc pooled"),
              ("lo_band", "band for cw 5% (pooled)"), ("lo_uncertain", "its unc"),
              ("lo_macro_band", "band (macro)"), ("lo_macro_uncertain", "its unc"),
              ("family_recall_ai_mean", "families: recall mean"), ("family_recall_ai_worst", "families: recall min"))


def summary_markdown(summaries: list[dict]) -> str:
    head = ["classifier", "train", "score"] + [t for _, t in SUMMARY_MD]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        lines.append("| " + " | ".join([s["classifier"], s["train_on"], s["score_on"]]
                                       + [fmt(s.get(k, float("nan"))) for k, _ in SUMMARY_MD]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/work/data/features"))
    ap.add_argument("--out", type=Path, default=Path("reports/v3-loso"))
    ap.add_argument("--runs", default="main,norm,resize")
    ap.add_argument("--no-mlp", action="store_true", help="Leave the MLP out (the slowest classifier).")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, meta = load_data(args.cache)
    units = source_units(data.sources, data.groups, [*SHARED, *sorted(set(data.sources.tolist()) - set(SHARED))])
    units += family_units(families(meta), data.groups)
    print(f"{len(data.y)} rows ({data.y.sum()} ai), {len(units)} units; variants "
          + ", ".join(f"{v}: {sorted(f)}" for v, f in data.features.items()), flush=True)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    all_summaries: dict[str, list[dict]] = {}
    timings: dict[str, float] = {}
    subsets = subsets_of(meta)
    for run in runs:
        t0 = time.perf_counter()
        if run == "main":
            specs = specs_for(data.features["raw"], mlp=not args.no_mlp)
            rows = run_loso(data, units, specs, "raw", [v for v in ("raw", "norm", "resize") if v in data.features],
                            subsets=subsets)
        elif run in ("norm", "resize"):
            if run not in data.features:
                print(f"{run}: no features cached, skipped")
                continue
            specs = specs_for(data.features[run], mlp=False)
            specs = [s for s in specs if all(k in data.features[run] for k in s.inputs)
                     and (s.base is None or any(b.name == s.base for b in specs))]
            rows = run_loso(data, units, specs, run, ["raw", run], subsets=subsets)
        elif run == "augment":  # train on the raw extra files and their normalised copies together
            specs = [Spec("clip_center", ("clip-center",)), Spec("cnn", ("cnn",), kind="score"),
                     Spec("fusion_center", ("cnn",), kind="fusion", base="clip_center"),
                     Spec("fusion_center_honest", ("cnn",), kind="fusion", base="clip_center", honest=True),
                     Spec("fusion_center_gated", ("cnn",), kind="fusion", base="clip_center", gate="cnn-ood")]
            rows = run_loso(data, units, specs, "raw+norm", ["raw", "norm"], subsets=subsets)
        elif run == "weights":
            specs = [s for s in specs_for(data.features["raw"], mlp=False)
                     if s.name in ("clip_center", "clip_concat", "cnn", "fusion_center", "fusion_concat")]
            rows = run_loso(data, units, specs, "raw", ["raw"], weights="class+source")
        elif run == "sweep":
            specs = [Spec(f"clip_center_C{c:g}", ("clip-center",), C=c) for c in (0.01, 0.05, 0.5, 5.0)]
            if "clip-crops" in data.features["raw"]:
                specs += [Spec(f"clip_concat_C{c:g}", ("clip-center", "clip-crops"), C=c) for c in (0.05, 0.5)]
            rows = run_loso(data, [u for u in units if u.kind == "source"], specs, "raw", ["raw"])
        else:
            raise SystemExit(f"unknown run {run!r}")
        timings[run] = time.perf_counter() - t0
        summaries = write_tables(rows, args.out, run)
        all_summaries[run] = summaries
        text = summary_markdown(summaries)
        (args.out / f"{run}-summary.md").write_text(text + "\n")
        print(f"\n## {run} ({timings[run]:.0f} s)\n{text}", flush=True)
    (args.out / "timings.json").write_text(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
