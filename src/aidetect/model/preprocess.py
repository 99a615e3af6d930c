"""Preprocessing: one definition shared by training and inference.

``load_image`` (:mod:`aidetect.model.decode`, torch-free) turns any file Pillow reads (path or
bytes) into an upright 8-bit RGB image; ``EvalPreset`` (a callable class, as in torchvision's references/classification) turns it into
a normalised tensor of the model's input size. Training decodes with the same ``load_image``
and augments batches in memory with :class:`aidetect.trainer.memory.BatchAugment`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2

from aidetect.model.card import IMAGENET_MEAN, IMAGENET_STD
from aidetect.model.decode import ImageSource, load_image, to_rgb

__all__ = ["EvalPreset", "ImageSource", "Normalisation", "load_image", "reencode", "to_rgb"]

def reencode(img: Image.Image, fmt: str, **options: int) -> Image.Image:
    """``img`` saved as ``fmt`` (JPEG, WEBP, ...) with Pillow's ``options`` and decoded again:
    what a re-upload does to a picture (training augmentation and evaluation rows)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


class EvalPreset:
    """PIL RGB image -> float tensor (3, S, S). An image already S x S is only normalised
    (no resampling, so the traces the model looks for survive); others are resized on the
    short side and centre-cropped. The inference engine tiles large images at native
    resolution instead of calling this on the whole picture."""

    def __init__(self, input_size: int, norm: Normalisation | None = None) -> None:
        norm = norm or Normalisation()
        self.input_size = input_size
        self.resize = v2.Compose(
            [
                v2.Resize(input_size, antialias=True),
                v2.CenterCrop(input_size),
            ]
        )
        self.normalise = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize(norm.mean, norm.std)]
        )

    def to_uint8(self, img: Image.Image) -> torch.Tensor:
        if img.width != img.height and min(img.size) > 0:
            # the centre square first, then the resize: the same view as resize + centre crop, at
            # a cost bounded by the square (a 32:1 strip is not resized whole)
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side))
        t = v2.functional.pil_to_tensor(img)
        if t.shape[-2:] != (self.input_size, self.input_size):
            t = self.resize(t)
        return t

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.normalise(self.to_uint8(img))
