"""Preprocessing: one definition shared by training and inference.

``load_image`` turns any file Pillow reads (path or bytes) into an upright 8-bit RGB image;
``EvalPreset`` (a callable class, as in torchvision's references/classification) turns it into
a normalised tensor of the model's input size. Training decodes with the same ``load_image``
and augments batches in memory with :class:`aidetect.trainer.memory.BatchAugment`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import v2

from aidetect.errors import ImageLoadError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageSource = str | Path | bytes


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = Image.fromarray(((arr - lo) * scale).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Decode ``source`` to an upright RGB image.

    Raises :class:`ImageLoadError` with a one-line reason for anything that is not a whole,
    decodable image (missing, unreadable, empty, truncated, not an image, decompression bomb).
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) stays on; its warning is
    treated as an error too.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageLoadError(f"{label}: empty file (0 bytes)")
            fh: io.BytesIO | Path = io.BytesIO(source)
        else:
            fh = Path(source)
            if fh.is_file() and fh.stat().st_size == 0:
                raise ImageLoadError(f"{label}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{label}: refused as a possible decompression bomb ({exc})") from exc
    except FileNotFoundError as exc:
        raise ImageLoadError(f"{label}: file not found") from exc
    except PermissionError as exc:
        raise ImageLoadError(f"{label}: permission denied") from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(f"{label}: is a directory") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{label}: not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{label}: corrupted or truncated image ({exc})") from exc


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
        t = v2.functional.pil_to_tensor(img)
        if t.shape[-2:] != (self.input_size, self.input_size):
            t = self.resize(t)
        return t

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.normalise(self.to_uint8(img))
