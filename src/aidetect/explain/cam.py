"""Batched Grad-CAM on top of pytorch-grad-cam (the ``grad-cam`` package).

One call = one forward and one backward for the whole batch, done by the library's own
``BaseCAM.forward`` (forward on the batch, backward on the sum of the per-row targets). The
logits are read from the library's ``outputs`` of that same forward, so the verdict and the
heatmap can never disagree. Two things are added around the library:

* **raw CAMs**: the library min-max normalises every row and resizes it to the input size;
  tiles of one large image must keep their relative scale before they are stitched, so the
  CAM classes here return the rectified CAM at the feature map's resolution and the caller
  normalises (per image, after stitching);
* **truncated backward**: a forward hook registered *before* the library's hooks turns the
  explained layer's output into the start of a new graph (parameters are frozen, the input
  does not require grad). The backward then runs only from the logits back to that layer,
  which is all that Grad-CAM needs (the gradients there are identical to those of a full
  backward), instead of through the whole network down to the pixels.

The CAM object is always used as a context manager, so its hooks are removed even when the
call fails (the library's known leak comes from CAM objects created without it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_grad_cam import (
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    XGradCAM,
)
from pytorch_grad_cam.base_cam import BaseCAM
from torch import nn

from aidetect.config import CAM_METHODS
from aidetect.errors import AidetectError

# name (``aidetect.config.CAM_METHODS``, where the CLI reads them without torch) -> library
# class. Aliases accepted by ``resolve_method``.
_LIBRARY: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "hirescam": HiResCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
}
_ALIASES = {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++", "grad-cam": "gradcam"}
DEFAULT_METHOD = "gradcam"


def resolve_method(name: str | None) -> str:
    """Canonical method name (case-insensitive, a few aliases); AidetectError if unknown."""
    key = (name or DEFAULT_METHOD).strip().lower().replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in _LIBRARY:
        raise AidetectError(f"unknown CAM method {name!r}; choose one of {', '.join(CAM_METHODS)}")
    return key


def _raw_class(base: type[BaseCAM]) -> type[BaseCAM]:
    """Subclass of a library CAM class returning rectified, un-normalised CAMs at the
    feature map's resolution (N, h, w). Weights come from the library class itself."""

    class Raw(base):  # type: ignore[misc, valid-type]
        def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):  # type: ignore[no-untyped-def]
            # float32 whatever the autocast dtype of the pass (bf16 on CPUs that have it)
            acts = [a.detach().float().cpu().numpy() for a in self.activations_and_grads.activations]
            grads = [g.detach().float().cpu().numpy() for g in self.activations_and_grads.gradients]
            out = []
            for i, layer in enumerate(self.target_layers):
                cam = self.get_cam_image(input_tensor, layer, targets, acts[i], grads[i], eigen_smooth)
                out.append(np.maximum(cam, 0)[:, None])
            return out

        def aggregate_multi_layers(self, cam_per_target_layer):  # type: ignore[no-untyped-def]
            return np.mean(np.concatenate(cam_per_target_layer, axis=1), axis=1)

    Raw.__name__ = f"Raw{base.__name__}"
    return Raw


_RAW: dict[str, type[BaseCAM]] = {k: _raw_class(v) for k, v in _LIBRARY.items()}


class _RowTarget:
    """Target for row ``row``: its logit for the class that ``classes()`` assigns it.
    ``classes`` is evaluated lazily, after the forward, from that forward's logits (the
    library builds the loss only once ``outputs`` exists)."""

    def __init__(self, row: int, classes: Callable[[], np.ndarray]) -> None:
        self.row = row
        self.classes = classes

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[int(self.classes()[self.row])]


def _cut_graph_hook(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
    # New graph root at the explained layer; "+ 0" makes it a non-leaf so that in-place
    # ops that follow (ReLU(inplace=True)) stay legal.
    return output.detach().requires_grad_(True) + 0


@dataclass
class CamResult:
    logits: torch.Tensor  # (N, C) detached, from the same forward as the CAMs
    cams: np.ndarray  # (N, h, w) float32, rectified, not normalised
    classes: np.ndarray  # (N,) class index explained per row


def batched_cam(
    model: nn.Module,
    layer: nn.Module,
    batch: torch.Tensor,
    choose: Callable[[torch.Tensor], np.ndarray],
    method: str = DEFAULT_METHOD,
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> CamResult:
    """One forward + one backward for ``batch``; ``choose(logits) -> class per row`` decides
    which class each row explains (e.g. the predicted class of the image the row belongs to).

    The model's parameters should not require grad (the Detector freezes them).
    ``reshape_transform``: the library's hook that turns the layer's output into (N, C, h, w)
    (a ViT's tokens: :func:`vit_tokens_to_map`).
    """
    cls = _RAW[resolve_method(method)]
    chosen: dict[str, np.ndarray] = {}
    cam_obj: BaseCAM | None = None

    def classes() -> np.ndarray:
        if "c" not in chosen:
            assert cam_obj is not None
            chosen["c"] = np.asarray(choose(cam_obj.outputs.detach()))
        return chosen["c"]

    targets = [_RowTarget(i, classes) for i in range(batch.shape[0])]
    cut = layer.register_forward_hook(_cut_graph_hook)
    result: np.ndarray | None = None
    try:
        with torch.enable_grad(), cls(model=model, target_layers=[layer], reshape_transform=reshape_transform) as cam_obj:
            result = cam_obj(input_tensor=batch, targets=targets)
            logits = cam_obj.outputs.detach()
            cam_obj.outputs = None  # drop the graph now, not at the next call
    finally:
        cut.remove()
    if result is None:  # the library's __exit__ swallows IndexError
        raise RuntimeError("Grad-CAM failed inside pytorch-grad-cam")
    return CamResult(logits=logits, cams=result.astype(np.float32, copy=False), classes=classes())


def vit_tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """(N, 1 + h*w, C) ViT tokens (class token first, a square grid of patches) -> (N, C, h, w)."""
    patches = tokens[:, 1:, :]
    side = int(round(patches.shape[1] ** 0.5))
    return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)


def count_hooks(model: nn.Module) -> int:
    """Number of hooks registered on the model's modules (tests check none is leaked)."""
    total = 0
    for m in model.modules():
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(m, name, {}) or {})
    return total


def normalise(cam: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] over the seen part (a flat map becomes zeros), float32; NaN (parts
    no view saw) stays NaN."""
    cam = cam.astype(np.float32, copy=False)
    seen = np.isfinite(cam)
    if not seen.any():
        return cam.copy()
    lo, hi = float(cam[seen].min()), float(cam[seen].max())
    if hi - lo <= 1e-12:
        return np.where(seen, np.float32(0), np.float32(np.nan)).astype(np.float32)
    return (cam - lo) / (hi - lo)


__all__: Sequence[str] = (
    "CAM_METHODS",
    "DEFAULT_METHOD",
    "CamResult",
    "batched_cam",
    "count_hooks",
    "normalise",
    "resolve_method",
    "vit_tokens_to_map",
)
