"""Decode a selection once into uint8 tensors in memory, and augment batches cheaply.

Training on 2 CPU cores cannot afford decoding JPEGs and running per-image transform
pipelines every epoch. Images are decoded once (the same ``load_image`` as inference);
each epoch then works on uint8 tensors: random crops (reflect padding at the model's size,
native-resolution crops of larger images, never a resize that would erase generator
traces), horizontal flips, Gaussian blur and JPEG recompression on random subsets, optional
grayscale; for native-resolution training also crops taken as if the image were downscaled
first, Gaussian noise, JPEG at a random chroma subsampling and WebP (Pillow) — the one
definition of the training augmentations (:class:`BatchAugment`), applied per sample but batched.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms.v2 import functional as TF

from aidetect.errors import ImageLoadError
from aidetect.model.preprocess import Normalisation, load_image, reencode
from aidetect.trainer.sources import Selection

MAX_STORE_FACTOR = 4  # larger images keep a native-resolution centre crop of 4x the input size


@dataclass
class MemoryImages:
    """Decoded images: ``stacked`` (N, 3, S+2p, S+2p) when every image is S x S (pre-padded
    for random crops), else ``items`` (list of (3, h, w) uint8 tensors, each >= S)."""

    size: int
    pad: int
    labels: torch.Tensor
    stacked: torch.Tensor | None
    items: list[torch.Tensor] | None
    groups: list[str]
    failed: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def eval_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Centre S x S crops (no augmentation), uint8."""
        s, p = self.size, self.pad
        if self.stacked is not None:
            return self.stacked[idx, :, p : p + s, p : p + s]
        out = []
        for i in idx.tolist():
            t = self.items[i]  # type: ignore[index]
            h, w = t.shape[-2:]
            y, x = (h - s) // 2, (w - s) // 2
            out.append(t[:, y : y + s, x : x + s])
        return torch.stack(out)


def _fit(t: torch.Tensor, size: int) -> torch.Tensor:
    """Store a (3, h, w) image: images smaller than ``size`` are resized up (nothing else
    can be done); larger ones keep a centre crop at native resolution."""
    h, w = t.shape[-2:]
    if min(h, w) < size:
        t = TF.resize(t, size, antialias=True)
        h, w = t.shape[-2:]
    cap = size * MAX_STORE_FACTOR
    if h > cap or w > cap:
        ch, cw = min(h, cap), min(w, cap)
        y, x = (h - ch) // 2, (w - cw) // 2
        t = t[:, y : y + ch, x : x + cw]
    return t.contiguous()


def decode_selection(sel: Selection, size: int, progress: bool = True, desc: str = "decode") -> MemoryImages:
    """Decode every image of ``sel``. Undecodable images are skipped and reported."""
    from tqdm import tqdm

    pad = size // 8
    tensors: list[torch.Tensor | None] = [None] * len(sel)
    failed: list[str] = []
    bar = tqdm(total=len(sel), desc=desc, unit="img", disable=not progress, leave=False)
    for i, data, path in sel.iter_images():
        try:
            img = load_image(data if data else path, name=path)  # type: ignore[arg-type]
        except ImageLoadError as exc:
            failed.append(f"{path}: {exc}")
        else:
            tensors[i] = _fit(TF.pil_to_tensor(img), size)
        bar.update(1)
    bar.close()
    keep = [i for i, t in enumerate(tensors) if t is not None]
    labels = torch.as_tensor(sel.labels[keep], dtype=torch.long)
    groups = [sel.groups[i] for i in keep]
    kept = [tensors[i] for i in keep]
    if kept and all(t.shape[-2:] == (size, size) for t in kept):  # type: ignore[union-attr]
        stacked = torch.stack(kept)  # type: ignore[arg-type]
        stacked = F.pad(stacked.float(), (pad, pad, pad, pad), mode="reflect").to(torch.uint8)
        return MemoryImages(size, pad, labels, stacked, None, groups, failed)
    return MemoryImages(size, pad, labels, None, kept, groups, failed)  # type: ignore[arg-type]


class BatchAugment:
    """Per-sample random augmentations on a batch of stored uint8 images."""

    def __init__(
        self,
        size: int,
        norm: Normalisation | None = None,
        blur_p: float = 0.1,
        jpeg_p: float = 0.3,
        jpeg_quality: tuple[int, int] = (60, 95),
        grayscale_p: float = 0.0,
        seed: int = 0,
        crop_grid: int = 0,
        grid_pad: int = 0,
        downscale_p: float = 0.0,
        downscale_min: float = 0.25,
        jpeg_chroma: bool = False,
        webp_p: float = 0.0,
        noise_p: float = 0.0,
    ) -> None:
        if not 0.0 < downscale_min <= 1.0:
            raise ValueError(f"downscale_min {downscale_min} must be in (0, 1]")
        if grid_pad and (not crop_grid or grid_pad % crop_grid):
            raise ValueError(f"grid_pad {grid_pad} must be a multiple of crop_grid {crop_grid}")
        self.size = size
        self.crop_grid = crop_grid
        self.grid_pad = grid_pad
        norm = norm or Normalisation()
        self.mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(norm.std).view(1, 3, 1, 1)
        self.blur_p, self.jpeg_p, self.jpeg_quality, self.grayscale_p = blur_p, jpeg_p, jpeg_quality, grayscale_p
        self.downscale_p, self.downscale_min = downscale_p, downscale_min
        self.jpeg_chroma, self.webp_p, self.noise_p = jpeg_chroma, webp_p, noise_p
        self.rng = random.Random(seed)

    def crops(self, mem: MemoryImages, idx: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """Random ``size`` x ``size`` crops (default: the model's input size).

        With ``crop_grid`` 0, crops move over the reflect-padded image (the classic CIFAR
        translation); crops smaller than the input size are then taken inside the image,
        never from its padding. With ``crop_grid`` g > 0, crops start at multiples of g inside
        the image (no padding): g = 8 keeps the 8 x 8 JPEG block grid where it is in the file,
        as it is at inference, and a full-size crop of a model-size image is the image itself.
        ``grid_pad`` p (a multiple of g) gives those full-size crops room to move: stored
        model-size images are mirrored by p pixels on each side first. A mirrored 8 x 8 block
        is itself a valid JPEG block (its DCT coefficients only change sign), so every block of
        the crop is still one the encoder could have written, on the grid.
        """
        s, r, step = size or self.size, self.rng, self.crop_grid or 1
        stacked = mem.stacked
        if stacked is not None and self.grid_pad and s == mem.size:
            p, o = self.grid_pad, mem.pad
            inner = stacked[idx, :, o : o + mem.size, o : o + mem.size]
            rows = torch.cat([inner[..., :p, :].flip(-2), inner, inner[..., -p:, :].flip(-2)], dim=-2)
            padded = torch.cat([rows[..., :p].flip(-1), rows, rows[..., -p:].flip(-1)], dim=-1)
            n = (mem.size + 2 * p - s) // step
            out = []
            for j in range(len(idx)):
                y, x = step * r.randint(0, n), step * r.randint(0, n)
                out.append(padded[j, :, y : y + s, x : x + s])
            return torch.stack(out)
        # stacked images carry reflect padding: only full-size free crops may use it
        inner_only = (s < self.size or self.crop_grid > 0) and stacked is not None
        out = []
        for i in idx.tolist():
            t = stacked[i] if stacked is not None else mem.items[i]  # type: ignore[index]
            o, (h, w) = (mem.pad, (mem.size, mem.size)) if inner_only else (0, t.shape[-2:])
            if stacked is None and self.downscale_p > 0 and r.random() < self.downscale_p:
                out.append(self._downscaled_crop(t, s))
                continue
            y = o + step * r.randint(0, (h - s) // step)
            x = o + step * r.randint(0, (w - s) // step)
            out.append(t[:, y : y + s, x : x + s])
        return torch.stack(out)

    def _downscaled_crop(self, t: torch.Tensor, s: int) -> torch.Tensor:
        """An ``s`` x ``s`` crop of the image as if downscaled by a random factor in
        [``downscale_min``, 1] first (never below the crop size): a region of s / factor px,
        at a free position, resized with antialiasing. Both classes get it, so the scale at
        which a picture is seen (a 12 MP photo's crop shows less scene than a 2 MP render's)
        stops telling the classes apart."""
        h, w = t.shape[-2:]
        r = self.rng
        factor = r.uniform(max(self.downscale_min, s / min(h, w)), 1.0)
        side = min(h, w, max(s, round(s / factor)))
        y, x = r.randint(0, h - side), r.randint(0, w - side)
        region = t[:, y : y + side, x : x + side]
        return region if side == s else TF.resize(region, [s, s], antialias=True)

    def __call__(self, mem: MemoryImages, idx: torch.Tensor, size: int | None = None) -> torch.Tensor:
        x = self.crops(mem, idx, size)
        n, r = x.shape[0], self.rng
        flip = torch.tensor([r.random() < 0.5 for _ in range(n)])
        if flip.any():
            x[flip] = x[flip].flip(-1)
        if self.blur_p > 0:
            sel = [i for i in range(n) if r.random() < self.blur_p]
            if sel:
                sigma = r.uniform(0.1, 1.0)
                x[sel] = TF.gaussian_blur(x[sel], [3, 3], [sigma, sigma])
        if self.noise_p > 0:
            for i in [i for i in range(n) if r.random() < self.noise_p]:
                sigma = r.uniform(1.0, 6.0)  # sensor-like Gaussian noise, in 0-255 levels
                gen = torch.Generator().manual_seed(r.randrange(2**31))  # seeded like every other draw
                noise = torch.randn(x[i].shape, generator=gen) * sigma
                x[i] = (x[i].float() + noise).round().clamp(0, 255).to(torch.uint8)
        if self.jpeg_chroma or self.webp_p > 0:
            for i in range(n):
                u = r.random()
                if self.jpeg_chroma and u < self.jpeg_p:
                    x[i] = self._recode(x[i], "JPEG", quality=r.randint(*self.jpeg_quality),
                                        subsampling=r.choice((0, 1, 2)))
                elif self.jpeg_p <= u < self.jpeg_p + self.webp_p:
                    x[i] = self._recode(x[i], "WEBP", quality=r.randint(*self.jpeg_quality))
        if self.jpeg_p > 0 and not self.jpeg_chroma:
            sel = [i for i in range(n) if r.random() < self.jpeg_p]
            if sel:
                lo, hi = self.jpeg_quality
                with warnings.catch_warnings():
                    # torchvision 0.29 deprecates its JPEG codec in favour of torchcodec (not a
                    # dependency here); it still works, and a warning per batch floods the logs.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    enc = [encode_jpeg(x[i].contiguous(), quality=r.randint(lo, hi)) for i in sel]
                    x[sel] = torch.stack(decode_jpeg(enc))
        if self.grayscale_p > 0:
            sel = [i for i in range(n) if r.random() < self.grayscale_p]
            if sel:
                x[sel] = TF.rgb_to_grayscale(x[sel], num_output_channels=3)
        return self.normalise(x)

    @staticmethod
    def _recode(t: torch.Tensor, fmt: str, **options: int) -> torch.Tensor:
        """Encode a (3, h, w) uint8 image with Pillow (JPEG with a chosen chroma subsampling
        4:4:4 / 4:2:2 / 4:2:0, or WebP) and decode it again."""
        img = reencode(Image.fromarray(t.permute(1, 2, 0).numpy()), fmt, **options)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255.0) - self.mean) / self.std
