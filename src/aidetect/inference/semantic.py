"""The semantic branch of a fused model: frozen CLIP ViT-B/16 embeddings of square views of the
image, scored by the fusion head's linear probe, explained by Grad-CAM on the last block's patch
tokens. Knows nothing of Celery, SQL or Tk.

The views' side S is the card's ``fusion.clip_size``: 224 px (CLIP's own, 14 x 14 patches) or
smaller, the encoder's position embeddings resampled to the smaller patch grid (the shipped
default's 160 px: 10 x 10 patches, about half the 224 px forward; 112 px: 7 x 7, about 1/6:
docs/detector-v3.md).

Views (the card's ``fusion.clip_views``):

* ``center``: CLIP's own view, the short side resized to S px and the centre square;
* ``center+crops``: that, plus up to 4 native-resolution S px crops spread over the image on the
  8 px JPEG grid (images at least 2 S on the short side); the probe's logit is the mean over
  the views (the probe is linear: the logit of the mean of the normalised embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from aidetect.errors import ModelLoadError
from aidetect.explain.cam import batched_cam, vit_tokens_to_map
from aidetect.inference.views import JPEG_BLOCK, ViewPlan
from aidetect.model.clip import INPUT_SIZE, PATCH, clip_resize_crop, load_clip_encoder
from aidetect.model.fusion import FusionHead

ENCODER_FILE = "encoder.int8.safetensors"
VIEW_RULES = ("center", "center+crops")
MAX_CROPS = 4


@dataclass
class ClipViews:
    """One image's CLIP views: uint8 (k, 3, S, S) and where each comes from in the image."""

    pixels: torch.Tensor
    plan: ViewPlan  # regions in image coordinates, for the heatmap


def clip_views(img: Image.Image, rule: str = "center", size: int = INPUT_SIZE) -> ClipViews:
    """The CLIP views of ``img`` by ``rule``, ``size`` px square (see the module doc)."""
    w, h = img.size
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (rw - size) // 2, (rh - size) // 2
    sx, sy = w / rw, h / rh
    views = [clip_resize_crop(img, size)]
    regions = [(left * sx, top * sy, (left + size) * sx, (top + size) * sy)]
    if rule == "center+crops" and min(w, h) >= 2 * size:
        arr = np.asarray(img.convert("RGB"))
        for x, y in _spread(w, h, MAX_CROPS, size):
            views.append(torch.from_numpy(np.ascontiguousarray(arr[y : y + size, x : x + size])).permute(2, 0, 1))
            regions.append((float(x), float(y), float(x + size), float(y + size)))
    tiles = [(int(r[0]), int(r[1])) for r in regions]
    return ClipViews(torch.stack(views), ViewPlan(tiles=tiles, regions=regions, view=(size, size)))


def _spread(w: int, h: int, n: int, size: int) -> list[tuple[int, int]]:
    """``n`` crop corners of ``size`` px: the centres of a 2 x 2 partition, on the JPEG grid."""
    out = []
    for fy in (0.25, 0.75):
        for fx in (0.25, 0.75):
            x = int(fx * w - size / 2) // JPEG_BLOCK * JPEG_BLOCK
            y = int(fy * h - size / 2) // JPEG_BLOCK * JPEG_BLOCK
            out.append((min(max(0, x), w - size), min(max(0, y), h - size)))
    return out[:n]


class _ProbeNet(nn.Module):
    """uint8 views -> (N, 2) logits [0, probe logit]: class 1 (ai) is the probe's logit, so
    Grad-CAM of class 1 explains "AI" and of class 0 explains "real" (the gradient's sign flips)."""

    def __init__(self, encoder: nn.Module, head: FusionHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.head.clip_logit(self.encoder(x))
        return torch.stack([-s / 2, s / 2], dim=-1)


class ClipBranch:
    """The frozen encoder + the head's probe, on ``device`` under ``amp_dtype`` autocast."""

    def __init__(self, encoder_dir: Path, head: FusionHead, device: torch.device, amp_dtype: torch.dtype | None,
                 rule: str = "center", cam_method: str = "gradcam", size: int = INPUT_SIZE) -> None:
        path = Path(encoder_dir) / ENCODER_FILE
        if not path.is_file():
            raise ModelLoadError(f"{path}: the CLIP encoder is missing (scripts/convert_clip_onnx.py makes it)")
        if rule not in VIEW_RULES:
            raise ModelLoadError(f"fusion.clip_views {rule!r}: choose {', '.join(VIEW_RULES)}")
        self.encoder = load_clip_encoder(path, device=device)
        try:
            self.encoder.set_input_size(size)
        except ValueError as exc:
            raise ModelLoadError(f"fusion.clip_size: {exc}") from None
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.fuse_for_inference()
        self.net = _ProbeNet(self.encoder, head).eval()
        self.device, self.amp_dtype, self.rule, self.cam_method = device, amp_dtype, rule, cam_method
        self.size = size
        self.patches = size // PATCH  # the patch grid's side (the CAM's resolution)

    def views(self, img: Image.Image) -> ClipViews:
        return clip_views(img, self.rule, self.size)

    def score(self, views: list[ClipViews], explain: bool = False,
              choose: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Per image: the probe's logit (mean over its views); with ``explain`` also per image the
        raw CAMs of its views (k, P, P; P = size / 16), from the same forward, for the class that
        ``choose(per-image probe logits)`` gives each image (1 = ai, 0 = real; default: ai)."""
        batch = torch.cat([v.pixels for v in views]).to(self.device)
        owner = np.concatenate([np.full(len(v.pixels), i) for i, v in enumerate(views)])
        counts = np.bincount(owner, minlength=len(views))

        def per_image(per_view: np.ndarray) -> np.ndarray:
            return np.bincount(owner, weights=per_view, minlength=len(views)) / counts

        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)
        with autocast:
            if explain:
                def classes(logits: torch.Tensor) -> np.ndarray:
                    s = per_image((logits[:, 1] * 2).float().cpu().numpy().astype(np.float64))
                    cls = np.ones(len(views), int) if choose is None else np.asarray(choose(s), int)
                    return cls[owner]

                res = batched_cam(self.net, self.encoder.cam_layer, batch, classes, self.cam_method,
                                  reshape_transform=vit_tokens_to_map)
                per_view = (res.logits[:, 1] * 2).float().cpu().numpy()
                cams: list[np.ndarray] | None = [res.cams[owner == i] for i in range(len(views))]
            else:
                with torch.inference_mode():
                    per_view = (self.net(batch)[:, 1] * 2).float().cpu().numpy()
                cams = None
        return per_image(per_view.astype(np.float64)), cams
