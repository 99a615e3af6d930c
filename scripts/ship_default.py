"""Install a trained CNN model directory as the shipped ``fast`` model (Detector v2; the CNN branch of
the fused default, Detector v3), routing small images to a shipped model.

    .venv/bin/python scripts/ship_default.py build/models/v2 [--small cifake]

Copies ``model.safetensors``, ``card.json`` and ``ood.safetensors`` (when there) into
``src/aidetect/shipped_models/fast`` and writes into the card the routing rule of the Detector:
``domain.min_side`` = the model's input size (it only ever sees native-resolution crops of that
size) and ``small_images.model`` = the shipped model (``src/aidetect/shipped_models/<name>``) that scores
images with a shorter side; with ``--window PX`` (default 512) the view rule of a fully
convolutional model: the whole image up to ``--whole-max-pixels``, else up to ``--max-windows``
windows of PX (card ``views``, docs/inference.md). The weights, and so the version, are unchanged.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from aidetect.model import ModelCard
from aidetect.model.card import CARD_FILE, WEIGHTS_FILE
from aidetect.model.ood import OOD_FILE

MODELS = Path(__file__).resolve().parents[1] / "src" / "aidetect" / "shipped_models"


def ship(src: Path, small: str | None, views: dict[str, int] | None = None) -> Path:
    card = ModelCard.load(src)
    if views:
        card.views = views
    dest = MODELS / "fast"
    if small is not None:
        if not (MODELS / small / CARD_FILE).is_file():
            raise SystemExit(f"error: no shipped model {small!r} under {MODELS}")
        card.small_images = {"model": small}
        card.domain = {**card.domain, "min_side": int(card.input_size)}
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(src / WEIGHTS_FILE, dest / WEIGHTS_FILE)
    if (src / OOD_FILE).is_file():
        shutil.copy2(src / OOD_FILE, dest / OOD_FILE)
    card.save(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--small", default="cifake", help="shipped model for images under the input size ('' = none)")
    ap.add_argument("--window", type=int, default=512, help="view windows of PX (0 = input-size tiles)")
    ap.add_argument("--whole-max-pixels", type=int, default=1024 * 1024, help="images up to this many pixels are seen whole")
    ap.add_argument("--max-windows", type=int, default=8, help="windows per larger image, at most")
    args = ap.parse_args(argv)
    views = ({"window": args.window, "whole_max_pixels": args.whole_max_pixels, "max_windows": args.max_windows}
             if args.window > 0 else None)
    dest = ship(args.model_dir, args.small or None, views)
    print(f"shipped {args.model_dir} as {dest} ({ModelCard.load(dest).version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
