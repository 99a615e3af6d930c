"""Refit the out-of-distribution checks of a trained model directory, on the data it was trained on.

    .venv/bin/python scripts/refit_ood.py build/models/v2

Reads the sources, split and augmentation from the card (``data`` and ``training.config``),
decodes the training and validation images again, and rewrites ``ood.safetensors`` and the
card's ``ood`` record; the weights and the version are unchanged. ``aidetect train`` does the
same at the end of every run; this is for a model trained before the checks changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aidetect.model import Normalisation, load_model_dir
from aidetect.model.ood import save_ood
from aidetect.trainer.config import TrainConfig
from aidetect.trainer.loop import build_augment
from aidetect.trainer.memory import decode_selection
from aidetect.trainer.ood import fit_ood
from aidetect.trainer.sources import load_sources, parse_label_map, train_val_split


def refit(model_dir: Path, threads: int) -> dict:
    torch.set_num_threads(threads)
    model, card = load_model_dir(model_dir)
    cfg = card.training["config"]
    split = cfg.get("group_split")
    sources = load_sources(cfg["data"], parse_label_map(cfg.get("label_map", [])), tuple(split) if split else None)
    train, val, record = train_val_split(sources, cfg["val_fraction"], cfg["seed"], cfg.get("max_train"))
    if record["split_hash"] != card.data["split_hash"]:
        raise SystemExit(f"error: the data's split {record['split_hash']} is not the card's {card.data['split_hash']}")
    size = int(card.input_size)
    train_mem, val_mem = decode_selection(train, size, True, "decode train"), decode_selection(val, size, True, "decode val")
    known = {k: v for k, v in cfg.items() if k in TrainConfig.__dataclass_fields__}
    aug = build_augment(TrainConfig(out=model_dir, **known), Normalisation(tuple(card.mean), tuple(card.std)))  # type: ignore[arg-type]
    stats, ood = fit_ood(model, train_mem, val_mem, aug, cfg["seed"])
    save_ood(stats, model_dir)
    card.ood = ood
    card.save(model_dir)
    return ood


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    ood = refit(args.model_dir, args.threads)
    print(f"refitted {args.model_dir}: threshold {ood['threshold']}, validation flagged {ood['validation_flagged']:.3f}, "
          f"probes flagged {ood['synthetic_probes_flagged']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
