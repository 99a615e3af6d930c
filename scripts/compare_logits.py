"""Argmax accuracy and ROC AUC of model directories on the CIFAKE validation and test splits,
alone, with horizontal-flip averaging, and with their logits averaged: the figures behind
docs/detector.md's "not shipped" lines (test-time flips, averaging two seeds).

    .venv/bin/python scripts/compare_logits.py src/aidetect/shipped_models/default build/models/hires-s1

Argmax (threshold 0.5 on uncalibrated logits), so below the fitted-threshold accuracies in the
model cards. Reads ../shared/data/cifake (or $AIDETECT_SHARED_DATA/cifake).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from aidetect.model import AI_INDEX, load_model_dir
from aidetect.model.preprocess import EvalPreset, Normalisation
from aidetect.trainer.memory import decode_selection
from aidetect.trainer.sources import SourceData, eval_selection, load_sources

REPO = Path(__file__).resolve().parents[1]
CIFAKE = Path(os.environ.get("AIDETECT_SHARED_DATA", REPO.parent / "shared" / "data")) / "cifake"
CIFAKE_SIZE = 32


def load_split(sources: list[SourceData], split: str) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 images (N, 3, 32, 32) and labels (1 = ai), read and mapped as the trainer does."""
    sel, _ = eval_selection(sources, split)
    mem = decode_selection(sel, CIFAKE_SIZE, progress=False)
    return mem.eval_batch(torch.arange(len(mem))), mem.labels.numpy()


@torch.no_grad()
def margins(model_dir: Path, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """ai-minus-real logit margin per image, plain and horizontally flipped."""
    model, card = load_model_dir(model_dir)
    model.eval()
    normalise = EvalPreset(card.input_size, Normalisation(tuple(card.mean), tuple(card.std))).normalise
    plain, flipped = [], []
    for batch in images.split(500):
        x = normalise(batch)
        for out, view in ((plain, x), (flipped, x.flip(-1))):
            logits = model(view)
            out.append((logits[:, AI_INDEX] - logits[:, 1 - AI_INDEX]).numpy())
    return np.concatenate(plain), np.concatenate(flipped)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'split':10} {'scores':40} {'accuracy':>8} {'AUC':>7}")
    sources = load_sources([str(CIFAKE)])
    for split in ("validation", "test"):
        images, is_ai = load_split(sources, split)
        rows: list[tuple[str, np.ndarray]] = []
        per_model = {m: margins(m, images) for m in args.models}
        for m, (plain, flipped) in per_model.items():
            rows += [(m.name, plain), (f"{m.name} + flip", (plain + flipped) / 2)]
        if len(args.models) > 1:
            rows.append(("average of all", np.mean([p for p, _ in per_model.values()], axis=0)))
        for name, margin in rows:
            acc = float(((margin > 0).astype(int) == is_ai).mean())
            print(f"{split:10} {name:40} {acc:8.4f} {roc_auc_score(is_ai, margin):7.4f}")


if __name__ == "__main__":
    main()
