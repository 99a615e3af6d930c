#!/usr/bin/env python
"""Detector v3: fit the fusion head on cached features and write the fused model directory.

    # 1. features (frozen CLIP centre view + the v2 CNN's logit), resumable; docs/detector-v3.md
    .venv/bin/aidetect data features coco_sd=../shared/data/coco_sd forrealscan=../shared/data/forrealscan \\
        camera=../shared/data/camera extra=/work/data/extra --cache /work/data/features --views center160
    # 2. the head (leave-one-source-out calibration), a few minutes on 2 cores
    .venv/bin/python scripts/train_v3.py --cache /work/data/features --out runs/v3

Prints the leave-one-source-out table (AUC, recall, FPR, confidently wrong, uncertain per left-out
source; and the CNN branch alone, calibrated the same way) that the card's ``metrics`` keep too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aidetect.trainer.fusion_fit import fit_fused_model, summary_line

# extra_norm_crop:extra = format-normalised copies of every extra file, training-only (left out with
# their originals, never scored): docs/detector-v3.md, "raw + normalised"
DATASETS = ["coco_sd", "forrealscan", "camera", "extra", "extra_norm_crop:extra"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--view", default="center160",
                    help="the cached CLIP view: center (224 px), crops, center<S> (e.g. center160, the shipped default's)")
    ap.add_argument("--C", type=float, default=0.5, help="the probe's inverse L2 strength")
    ap.add_argument("--cnn", default="fast", help="the CNN branch: a shipped model's name (or a folder)")
    ap.add_argument("--hold-out-v2-test", action="store_true",
                    help="fit without the v2 CNN's test split (to score v2 and v3 side by side on it)")
    args = ap.parse_args()
    if not args.cache.is_dir():
        print(f"error: {args.cache}: no feature cache (aidetect data features)", file=sys.stderr)
        return 2
    report = fit_fused_model(args.cache, args.datasets.split(","), args.out, view=args.view, C=args.C,
                             cnn=args.cnn, hold_out_v2_test=args.hold_out_v2_test, progress=lambda name: print(f"  left out: {name}", file=sys.stderr))
    print("| left-out source | v3: AUC | recall | FPR | confidently wrong | uncertain "
          "| CNN alone: AUC | recall | FPR | confidently wrong | uncertain |")
    print("| --- |" + " ---: |" * 10)
    for name, m in report["leave_one_source_out"].items():
        print(f"| {name} | {summary_line(m)} | {summary_line(report['cnn_alone'][name])} |")
    print(report["weights"], report["calibration"], f"{report['fit_seconds']} s")
    c = report["cascade"]
    print(f"cascade (left-out scores; fused alone: confidently wrong {c['fused']['confidently_wrong']:.4f}, "
          f"uncertain {c['fused']['uncertain']:.4f}):")
    for q, r in c["candidates"].items():
        print(f"  q={q}: CLIP skipped on {r['clip_skipped']:.3f}, confidently wrong {r['confidently_wrong']:.4f}, "
              f"uncertain {r['uncertain']:.4f}, worst source cw rise {r['worst_source_cw_rise']:+.4f}")
    print(f"  chosen: {c['chosen']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
