"""Network definitions. Every model maps (N, 3, H, W) normalised images to (N, 2) logits,
index 0 = real, index 1 = ai, and exposes ``cam_layer``: the convolutional layer Grad-CAM
explains (the last feature map before global pooling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aidetect.model.card import IMAGENET_MEAN, IMAGENET_STD
from aidetect.model.registry import register_model


class SeedCNN(nn.Module):
    """The original project's network: 3 conv layers with ReLU and max pooling, a fully
    connected head. Kept as the baseline. Adaptive pooling lets it take any input size."""

    def __init__(self, num_classes: int = 2, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width * 2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width * 2, width * 2, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * 2 * 16, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """Neighbouring-pixel relationships (NPR, CVPR 2024): x - up(down(x)) with nearest
    resampling. Up-sampling layers in generators leave correlations between neighbouring
    pixels that this residual exposes; image content mostly cancels out."""
    h, w = x.shape[-2:]
    he, we = h - h % 2, w - w % 2
    x = x[..., :he, :we]
    down = F.interpolate(x, scale_factor=0.5, mode="nearest")
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest")


def block_dct_filters(block: int = 8) -> torch.Tensor:
    """Conv weights (3 * block**2, 3, block, block) computing, with stride ``block``, the 2-D
    orthonormal DCT-II of every block of the Y, Cb and Cr planes (JPEG's colour transform
    and transform) of an RGB image in 0-255."""
    n = torch.arange(block, dtype=torch.float64)
    k = n.view(-1, 1)
    basis = torch.cos(torch.pi * (2 * n + 1) * k / (2 * block)) * (2.0 / block) ** 0.5
    basis[0] /= 2.0**0.5
    dct2 = torch.einsum("ux,vy->uvxy", basis, basis).reshape(block * block, block, block)
    ycbcr = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                         dtype=torch.float64)
    w = torch.einsum("cr,kxy->ckrxy", ycbcr, dct2).reshape(3 * block * block, 3, block, block)
    return w.float()


class DCTStats(nn.Module):
    """Global statistics of JPEG-aligned 8 x 8 block DCT coefficients: log(1 + |coef|) of
    every (channel, frequency) through a learned 1x1 layer, averaged over the blocks. The
    quantised high-frequency coefficients of a JPEG are where generated and camera images
    differ most in their statistics; a network starting from pixels has to learn this
    transform and its alignment to the file's block grid, which short training does not."""

    def __init__(self, out_channels: int, mean: tuple[float, ...], std: tuple[float, ...], block: int = 8) -> None:
        super().__init__()
        self.block = block
        self.register_buffer("dct", block_dct_filters(block), persistent=False)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        c = 3 * block * block
        self.embed = nn.Sequential(
            nn.BatchNorm2d(c), nn.Conv2d(c, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        b = self.block
        if h < b or w < b:
            return x.new_zeros(x.shape[0], self.embed[1].out_channels)
        # in float32 even under autocast: bf16/fp16 would round pixel levels and the small
        # high-frequency coefficients this branch is about
        with torch.autocast(x.device.type, enabled=False):
            pixels = (x[..., : h - h % b, : w - w % b].float() * self.std + self.mean) * 255.0
            coef = F.conv2d(pixels, self.dct, stride=b)
            feats = torch.log1p(coef.abs())
        return self.embed(feats).mean(dim=(2, 3))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.short(x), inplace=True)


class NPRResNet(nn.Module):
    """The default detector: a small from-scratch residual CNN over two streams, the image
    itself and its NPR residual (x - up(down(x))), concatenated as 6 input channels.
    The residual carries generator up-sampling traces (what transfers across generators);
    the image stream keeps the colour/texture statistics that CIFAKE-like data also
    separates on. The stem runs at full resolution (the residual lives in single pixels);
    then stages of basic blocks (``widths``, ``blocks``, ``strides``), global average
    pooling and a linear head. Fully convolutional: any input size works.

    Options: ``multiscale`` also pools the stem and every stage but the last and feeds them
    to the head; ``dct_stats`` (channels) adds :class:`DCTStats`, global statistics of the
    JPEG-aligned block DCT. Both reach the head beside ``cam_layer``, so Grad-CAM explains the
    last stage's part of the logit. ``mean``/``std``: the normalisation of the input (the
    DCT branch works on 0-255 pixel values)."""

    def __init__(
        self,
        num_classes: int = 2,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] = (1, 1, 1),
        strides: tuple[int, ...] = (2, 2, 1),
        residual_gain: float = 4.0,
        multiscale: bool = False,
        dct_stats: int = 0,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.residual_gain = residual_gain
        self.multiscale = multiscale
        self.dct_stats = DCTStats(dct_stats, mean, std) if dct_stats else None
        self.stem = nn.Sequential(
            nn.Conv2d(6, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        cin = widths[0]
        for w, n, s in zip(widths, blocks, strides, strict=True):
            for j in range(n):
                layers.append(BasicBlock(cin, w, s if j == 0 else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        pooled = cin + (widths[0] + sum(b.conv2.out_channels for b in layers[:-1]) if multiscale else 0) + dct_stats
        self.head = nn.Linear(pooled, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.stages[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = npr_residual(x) * self.residual_gain
        x = x[..., : res.shape[-2], : res.shape[-1]]
        extra = [self.dct_stats(x)] if self.dct_stats is not None else []
        feats = self.stem(torch.cat([x, res], dim=1))
        if not self.multiscale:
            return self.head(torch.cat([torch.flatten(self.pool(self.stages(feats)), 1), *extra], dim=1))
        pooled = [self.pool(feats)]
        for block in self.stages:
            feats = block(feats)
            pooled.append(self.pool(feats))
        # early feature maps pooled over the whole image: global statistics of the
        # low-level filters (how much high-frequency energy, where JPEG left it), read
        # by the head next to the last stage's features
        flat = torch.flatten(torch.cat(pooled[-1:] + pooled[:-1], dim=1), 1)
        return self.head(torch.cat([flat, *extra], dim=1))


@register_model("seed")
def seed(**kwargs: object) -> nn.Module:
    return SeedCNN(**kwargs)  # type: ignore[arg-type]


@register_model("npr_resnet")
def npr_resnet(**kwargs: object) -> nn.Module:
    return NPRResNet(**kwargs)  # type: ignore[arg-type]


@register_model("npr_resnet_tiny")
def npr_resnet_tiny(**kwargs: object) -> nn.Module:
    """A narrow variant for tests and quick experiments."""
    kwargs.setdefault("widths", (8, 16, 32))
    return NPRResNet(**kwargs)  # type: ignore[arg-type]
