"""Network definitions. Every model maps (N, 3, H, W) normalised images to (N, 2) logits,
index 0 = real, index 1 = ai, and exposes ``cam_layer``: the convolutional layer Grad-CAM
explains (the last feature map before global pooling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
    pooling and a linear head. Fully convolutional: any input size works."""

    def __init__(
        self,
        num_classes: int = 2,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] = (1, 1, 1),
        strides: tuple[int, ...] = (2, 2, 1),
        residual_gain: float = 4.0,
    ) -> None:
        super().__init__()
        self.residual_gain = residual_gain
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
        self.head = nn.Linear(cin, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.stages[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = npr_residual(x) * self.residual_gain
        x = x[..., : res.shape[-2], : res.shape[-1]]
        feats = self.stages(self.stem(torch.cat([x, res], dim=1)))
        return self.head(torch.flatten(self.pool(feats), 1))


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
