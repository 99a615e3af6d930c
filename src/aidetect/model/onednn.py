"""A layer and its activation as one oneDNN call, for inference on the CPU.

PyTorch's own pointwise-fused ops (``torch.ops.mkldnn._convolution_pointwise`` and
``_linear_pointwise``: the ops torch.compile's CPU backend emits for a frozen graph) run a
convolution or a linear layer with its bias and activation in one pass over the output. The
modules here take them where nothing needs a gradient, on the CPU, in fp32, or in bf16 where the
CPU computes in it (weights cast once and kept); everywhere else (CUDA, training, the backward
of a Grad-CAM, a torch without the ops) they run the eager layers, the same function.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn


@functools.cache
def fused_ops_available() -> bool:
    """Whether this torch has the fused oneDNN ops (a CPU build with oneDNN)."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    return mkldnn is not None and hasattr(mkldnn, "_convolution_pointwise") and hasattr(mkldnn, "_linear_pointwise") \
        and torch.backends.mkldnn.is_available()


@functools.cache
def bf16_computed() -> bool:
    """Whether oneDNN computes in bf16 on this CPU (AVX512-BF16, AMX or AVX-NE-CONVERT). On an
    AVX2-only CPU the fused ops raise in bf16 ("bf16 path needs the cpu support ...")."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def fused_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype | None:
    """The dtype a fused op would run in for input ``x`` (the autocast dtype when autocast is
    on), or None where the eager layers must run (a gradient is needed, not the CPU, a dtype the
    fused ops do not take here)."""
    if x.device.type != "cpu" or x.requires_grad or weight.requires_grad or not fused_ops_available():
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype == torch.float32 or (dtype == torch.bfloat16 and bf16_computed()):
        return dtype
    return None


class CastWeights:
    """A layer's weights as the fused op wants them, per dtype, made once (they are frozen)."""

    def __init__(self) -> None:
        self._dtype: torch.dtype | None = None
        self._tensors: tuple[torch.Tensor | None, ...] = ()

    def get(self, dtype: torch.dtype, make: Callable[[], tuple[torch.Tensor | None, ...]]) -> tuple[torch.Tensor | None, ...]:
        if self._dtype != dtype:
            with torch.no_grad():
                self._tensors = tuple(None if t is None else t.to(dtype).contiguous() for t in make())
            self._dtype = dtype
        return self._tensors


_CONV_ACTS = {nn.ReLU6: ("hardtanh", [0.0, 6.0]), nn.ReLU: ("relu", []), nn.Identity: ("none", [])}


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis, split as timm's ``pad_same`` splits it:
    (before, after); ``after`` may be one more. (timm is imported lazily, see EfficientNetLite.)"""
    from timm.layers.padding import get_same_padding

    total = int(get_same_padding(size, kernel, stride, dilation))
    return total // 2, total - total // 2


def conv_pointwise(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, padding: Sequence[int],
                   stride: Sequence[int], dilation: Sequence[int], groups: int, attr: str,
                   scalars: Sequence[float]) -> torch.Tensor:
    """One oneDNN call: convolution (symmetric ``padding``), bias, activation ``attr``."""
    return torch.ops.mkldnn._convolution_pointwise(x, w, b, list(padding), list(stride), list(dilation), groups,
                                                   attr, list(scalars), "")


def conv_same_pointwise(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: Sequence[int],
                        dilation: Sequence[int], groups: int, attr: str, scalars: Sequence[float]) -> torch.Tensor:
    """:func:`conv_pointwise` with TensorFlow's "same" padding, without padding the input.

    oneDNN pads symmetrically, for free; "same" pads one pixel more after than before on an even
    input of a stride-2 layer. Padding the whole input first (``F.pad``) writes it out again: a
    400 MB copy for the 256 x 256 x 96 activation of a batch of 32 views of 512 px, 20 % of the
    network's time in bf16. Instead, on an axis padded (p, p + 1), the kernel gets one zero tap in
    front and oneDNN pads (p + 1, p + 1): every window starts one pixel earlier, on a padding
    pixel that meets the zero tap, and then sees exactly what the padded input showed the
    original kernel. The same numbers as padding first (tests); the 3 x 3 depthwise layer above:
    242 ms padded first, 74 ms this way. Dilated kernels and other cases pad first."""
    height, width = x.shape[-2:]
    pads = [same_padding(n, k, s, d) for n, k, s, d in zip((height, width), w.shape[-2:], stride, dilation, strict=True)]
    if all(before == after for before, after in pads):
        return conv_pointwise(x, w, b, [before for before, _ in pads], stride, dilation, groups, attr, scalars)
    if tuple(dilation) == (1, 1) and all(after - before in (0, 1) for before, after in pads):
        shift = [after - before for before, after in pads]
        shifted = torch.nn.functional.pad(w, (shift[1], 0, shift[0], 0))
        out = conv_pointwise(x, shifted, b, [after for _, after in pads], stride, dilation, groups, attr, scalars)
        if out.shape[-2:] == (math.ceil(height / stride[0]), math.ceil(width / stride[1])):
            return out
    (bh, ah), (bw, aw) = pads
    padded = torch.nn.functional.pad(x, (bw, aw, bh, ah))
    return conv_pointwise(padded, w, b, (0, 0), stride, dilation, groups, attr, scalars)


class ConvAct(nn.Module):
    """A convolution (BatchNorm folded in) followed by its activation, fused on the CPU.
    Measured on a 3x3 depthwise layer of EfficientNet-Lite (bf16, 96 channels, 256 x 256,
    batch 8): 15 vs 21 ms eager, the same output."""

    def __init__(self, conv: nn.Conv2d, act: nn.Sequential) -> None:
        super().__init__()
        self.conv, self.act = conv, act
        kinds = [type(m) for m in act if not isinstance(m, nn.Identity)] or [nn.Identity]
        self.fused = _CONV_ACTS.get(kinds[0]) if len(kinds) == 1 and fused_ops_available() else None
        # timm's TF "same" padding (Conv2dSame), computed per input; else fixed padding
        self.same = type(conv).__name__ == "Conv2dSame"
        self._cast = CastWeights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        dtype = fused_dtype(x, conv.weight) if self.fused is not None else None
        if dtype is None:
            return self.act(conv(x))
        x = x.to(dtype)
        w, b = self._cast.get(dtype, lambda: (conv.weight, conv.bias))
        attr, scalars = self.fused
        if self.same:
            return conv_same_pointwise(x, w, b, conv.stride, conv.dilation, conv.groups, attr, scalars)
        return conv_pointwise(x, w, b, conv.padding, conv.stride, conv.dilation, conv.groups, attr, scalars)


class FusedLinear(nn.Linear):
    """``nn.Linear`` (same parameters, same state-dict keys) whose CPU inference is one oneDNN
    call with the bias: eager ``addmm`` in bf16 first copies the bias into the whole output
    (measured on CLIP's qkv layer, 6,304 tokens: 48 ms against 42 ms fused)."""

    @classmethod
    def of(cls, linear: nn.Linear) -> FusedLinear:
        """A FusedLinear sharing ``linear``'s weight and bias tensors."""
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        new.weight, new.bias = linear.weight, linear.bias
        new.train(linear.training)
        return new

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._cast = CastWeights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = fused_dtype(x, self.weight)
        if dtype is None:
            return super().forward(x)
        w, b = self._cast.get(dtype, lambda: (self.weight, self.bias))
        return torch.ops.mkldnn._linear_pointwise(x.to(dtype), w, b, "none", [], "")


QUICK_GELU_ALPHA = 1.702  # CLIP's QuickGELU: x * sigmoid(1.702 x)


class QuickGeluMlp(nn.Module):
    """A transformer MLP ``fc2(quick_gelu(fc1(x)))`` (timm's ``Mlp`` with QuickGELU, no dropout,
    no norm; same parameters and state-dict keys), fused on the CPU as two oneDNN calls.
    oneDNN's ``swish`` post-op is x * sigmoid(x); with fc1 scaled by a = 1.702 it gives
    a * quick_gelu(fc1(x)), and fc2's weight divided by a takes the factor back out: the same
    function, without the two elementwise passes over the 3,072-wide hidden layer (measured,
    fc1 of CLIP ViT-B/16 in bf16, 6,304 tokens: 132 ms eager, 66 ms fused)."""

    def __init__(self, fc1: nn.Linear, act: nn.Module, fc2: nn.Linear) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = fc1, act, fc2
        self._cast = CastWeights()

    @classmethod
    def of(cls, mlp: nn.Module) -> QuickGeluMlp:
        """From timm's ``Mlp`` with QuickGELU and biases; ValueError for any other kind of MLP."""
        from timm.layers import QuickGELU

        parts = {name: m for name, m in mlp.named_children()}
        passive = all(isinstance(parts.get(n), nn.Identity) or (isinstance(parts.get(n), nn.Dropout)
                                                                 and parts[n].p == 0.0)
                      for n in ("drop1", "norm", "drop2"))
        if not (isinstance(parts.get("fc1"), nn.Linear) and isinstance(parts.get("act"), QuickGELU)
                and isinstance(parts.get("fc2"), nn.Linear) and passive
                and parts["fc1"].bias is not None and parts["fc2"].bias is not None):
            raise ValueError(f"not a QuickGELU MLP: {mlp}")
        return cls(parts["fc1"], parts["act"], parts["fc2"])

    def _weights(self) -> tuple[torch.Tensor | None, ...]:
        a = QUICK_GELU_ALPHA
        return self.fc1.weight * a, self.fc1.bias * a, self.fc2.weight / a, self.fc2.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = fused_dtype(x, self.fc1.weight)
        if dtype is None:
            return self.fc2(self.act(self.fc1(x)))
        w1, b1, w2, b2 = self._cast.get(dtype, self._weights)
        hidden = torch.ops.mkldnn._linear_pointwise(x.to(dtype), w1, b1, "swish", [], "")
        return torch.ops.mkldnn._linear_pointwise(hidden, w2, b2, "none", [], "")
