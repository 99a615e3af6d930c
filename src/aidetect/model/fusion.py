"""The fusion head of Detector v3: a semantic branch (a linear probe on frozen CLIP ViT-B/16 image
embeddings, :mod:`aidetect.model.clip`) and the native-resolution CNN (its own model directory)
combined by a calibrated linear rule on their logits.

    clip_logit = w_probe . (e - mean) / std + b_probe       e: the mean of the image's CLIP
                                                              view embeddings, each L2-normalised
    fused      = w_cnn * cnn_logit + w_clip * clip_logit + bias
    prob_ai    = sigmoid(fused / temperature)               (the card's temperature)

Late fusion keeps each branch's evidence readable: ``w_cnn * cnn_logit`` and
``w_clip * clip_logit`` are the two branches' contributions to the verdict's logit, and their
shares (:func:`shares`) weight the heatmaps of the two branches. The head is small (517
numbers): retraining touches only it, never the frozen encoder. Knows nothing of Celery, SQL or Tk.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aidetect.model.registry import register_model

EMBED_DIM = 512
ARCHITECTURE = "fused_clip_cnn"
BRANCHES = ("cnn", "clip")


class FusionHead(nn.Module):
    """The learned numbers of the fusion rule (see the module doc); weights in model.safetensors."""

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.register_buffer("feat_mean", torch.zeros(embed_dim))
        self.register_buffer("feat_std", torch.ones(embed_dim))
        self.probe = nn.Linear(embed_dim, 1)
        self.fuse = nn.Linear(2, 1)  # [cnn_logit, clip_logit] -> fused logit
        with torch.no_grad():
            self.probe.weight.zero_()
            self.probe.bias.zero_()
            self.fuse.weight.copy_(torch.tensor([[1.0, 1.0]]))
            self.fuse.bias.zero_()

    def clip_logit(self, embeds: torch.Tensor) -> torch.Tensor:
        """(N, 512) view embeddings (L2-normalised here) -> (N,) probe logits. The probe is linear, so the
        mean of an image's view logits is the logit of the mean of its normalised embeddings."""
        e = nn.functional.normalize(embeds.float(), dim=-1)
        return self.probe((e - self.feat_mean) / self.feat_std).squeeze(-1)

    def contributions(self, cnn_logit: torch.Tensor, clip_logit: torch.Tensor) -> torch.Tensor:
        """(N, 2): each branch's term of the fused logit (weight x branch logit)."""
        return torch.stack([cnn_logit.float(), clip_logit.float()], dim=-1) * self.fuse.weight[0]

    def forward(self, cnn_logit: torch.Tensor, clip_logit: torch.Tensor) -> torch.Tensor:
        return self.contributions(cnn_logit, clip_logit).sum(-1) + self.fuse.bias[0]

    def set_from(self, *, feat_mean: np.ndarray, feat_std: np.ndarray, probe_w: np.ndarray, probe_b: float,
                 w_cnn: float, w_clip: float, bias: float) -> FusionHead:
        """Fill in fitted numbers (the trainer's result)."""
        with torch.no_grad():
            self.feat_mean.copy_(torch.as_tensor(feat_mean, dtype=torch.float32))
            self.feat_std.copy_(torch.as_tensor(feat_std, dtype=torch.float32))
            self.probe.weight.copy_(torch.as_tensor(probe_w, dtype=torch.float32).reshape(1, -1))
            self.probe.bias.fill_(float(probe_b))
            self.fuse.weight.copy_(torch.tensor([[float(w_cnn), float(w_clip)]]))
            self.fuse.bias.fill_(float(bias))
        return self


def shares(contributions: np.ndarray) -> np.ndarray:
    """(..., 2) branch contributions -> (..., 2) shares of the decision in [0, 1] summing to 1:
    each branch's |contribution| over the sum (0.5 / 0.5 when both are 0)."""
    a = np.abs(np.asarray(contributions, dtype=np.float64))
    total = a.sum(-1, keepdims=True)
    return np.where(total > 0, a / np.where(total > 0, total, 1.0), 0.5)


@register_model(ARCHITECTURE)
def fused_clip_cnn(embed_dim: int = EMBED_DIM) -> nn.Module:
    return FusionHead(embed_dim)
