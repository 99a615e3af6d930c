"""What the window layout and more windows buy on photos above 1 MP (the default model's windows).

Over the images above 1 MP of an image list (default: the built extra set's index.csv,
``aidetect data build-extra``; a sample of at most --n per class), the shipped default scores each
image, in the same run, with:

  rows-8       the layout before 2026-12-04: an even grid of 8 windows (2048 x 2048: two rows of four)
  lattice-8    the current layout: 8 windows on a rank-1 lattice (every row and column band holds one)
  lattice-16   16 windows (a covering grid where 16 suffice)
  lattice-32   32 windows

and prints per layout: AUC, accuracy and false-positive / recall at the card's threshold, the mean
share of pixels seen, and seconds per image (one torch thread; explain off). The classes come from
different repositories, so the AUC is a proxy that compares layouts, not a claim about the model.

    python benchmarks/bench_windows.py [--index /work/data/extra/index.csv] [--n 120]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LAYOUTS = (("rows-8", 8, True), ("lattice-8", 8, False), ("lattice-16", 16, False), ("lattice-32", 32, False))


def pick(index: Path, n: int, seed: int = 0) -> list[tuple[Path, int]]:
    rows = list(csv.DictReader(index.open()))
    big = [r for r in rows if int(r["width"]) * int(r["height"]) > 1024 * 1024]
    out = []
    rng = random.Random(seed)
    for label in ("real", "ai"):
        members = [r for r in big if r["label"] == label]
        rng.shuffle(members)
        out += [(index.parent / r["path"], int(label == "ai")) for r in members[:n]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, default=Path("/work/data/extra/index.csv"))
    ap.add_argument("--n", type=int, default=120, help="images per class at most")
    args = ap.parse_args()
    if not args.index.is_file():
        raise SystemExit(f"no {args.index}: build it with `aidetect data build-extra` (docs/data.md)")
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from aidetect.inference import Detector, views

    torch.set_num_threads(1)
    items = pick(args.index, args.n)
    labels = np.array([y for _, y in items])
    print(f"{len(items)} images above 1 MP: {labels.sum()} ai, {len(labels) - labels.sum()} real", flush=True)
    det = Detector(threads=1)
    print(f"{'layout':<12} {'AUC':>6} {'acc':>6} {'FPR':>6} {'recall':>7} {'seen':>6} {'s/img':>7}")
    for name, k, rows_layout in LAYOUTS:
        det.max_windows = k
        original = views._window_views
        if rows_layout:  # the layout before: the even grid of tile_grid (rows of windows)
            views._window_views = views._grid  # type: ignore[assignment]
        try:
            t0 = time.perf_counter()
            verdicts = []
            for i in range(0, len(items), 4):
                verdicts += det.classify([p for p, _ in items[i : i + 4]], explain=False)
            per = (time.perf_counter() - t0) / len(items)
        finally:
            views._window_views = original
        ok = [v.error is None for v in verdicts]
        p = np.array([v.prob_ai if v.error is None else np.nan for v in verdicts])
        y, p = labels[ok], p[ok]
        pred = p >= det.card.threshold
        seen = np.mean([v.seen for v in verdicts if v.seen is not None])
        print(f"{name:<12} {roc_auc_score(y, p):>6.3f} {np.mean(pred == y):>6.3f} {pred[y == 0].mean():>6.3f} "
              f"{pred[y == 1].mean():>7.3f} {seen:>6.3f} {per:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
