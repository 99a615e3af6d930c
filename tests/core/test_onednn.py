"""The fused oneDNN layers (aidetect.model.onednn): the same function as the eager layers they
stand for, in fp32 and in bf16, the same parameters, and the eager path wherever a gradient is
needed (a Grad-CAM's backward)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from timm.layers import Mlp, QuickGELU
from torch import nn

from aidetect.model.onednn import (
    QUICK_GELU_ALPHA,
    FusedLinear,
    QuickGeluMlp,
    bf16_computed,
    fused_ops_available,
)

needs_ops = pytest.mark.skipif(not fused_ops_available(), reason="this torch has no oneDNN fused ops")


def _x(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _mlp() -> Mlp:
    torch.manual_seed(0)
    return Mlp(48, 192, act_layer=QuickGELU).eval()


def test_fused_linear_shares_the_parameters_and_keys() -> None:
    lin = nn.Linear(24, 40)
    fused = FusedLinear.of(lin)
    assert fused.weight is lin.weight and fused.bias is lin.bias
    assert list(fused.state_dict()) == list(lin.state_dict())
    assert fused.training == lin.training


@needs_ops
@pytest.mark.parametrize("shape", [(5, 24), (3, 7, 24)])
def test_fused_linear_is_the_same_function(shape: tuple[int, ...]) -> None:
    lin = nn.Linear(24, 40).requires_grad_(False)
    fused = FusedLinear.of(lin)
    x = _x(*shape)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), lin(x), rtol=1e-5, atol=1e-5)
        if bf16_computed():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got, want = fused(x), lin(x)
            assert got.dtype == want.dtype == torch.bfloat16
            torch.testing.assert_close(got.float(), want.float(), rtol=0.02, atol=0.05)


def test_quick_gelu_mlp_takes_only_a_quick_gelu_mlp() -> None:
    fused = QuickGeluMlp.of(_mlp())
    assert list(fused.state_dict()) == list(_mlp().state_dict())
    with pytest.raises(ValueError, match="not a QuickGELU MLP"):
        QuickGeluMlp.of(Mlp(48, 192, act_layer=nn.GELU))
    with pytest.raises(ValueError, match="not a QuickGELU MLP"):
        QuickGeluMlp.of(Mlp(48, 192, act_layer=QuickGELU, drop=0.1))
    with pytest.raises(ValueError, match="not a QuickGELU MLP"):
        QuickGeluMlp.of(Mlp(48, 192, act_layer=QuickGELU, bias=False))


@needs_ops
def test_quick_gelu_mlp_is_the_same_function() -> None:
    """oneDNN's swish on fc1 scaled by 1.702, fc2 divided by it: QuickGELU exactly (fp32)."""
    mlp = _mlp().requires_grad_(False)
    fused = QuickGeluMlp.of(mlp)
    x = _x(4, 9, 48) * 3  # a wide range of pre-activations, both signs
    with torch.inference_mode():
        want = mlp(x)
        torch.testing.assert_close(fused(x), want, rtol=1e-4, atol=1e-5)
        if bf16_computed():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got16, want16 = fused(x), mlp(x)
            err = (got16.float() - want16.float()).abs().max()
            assert err < 0.03 * want.abs().max()
    assert QUICK_GELU_ALPHA == 1.702


@needs_ops
def test_with_a_gradient_the_eager_layers_run() -> None:
    """The Grad-CAM's backward goes through these layers: gradients must reach the input, and
    equal the eager layers' gradients."""
    mlp = _mlp().requires_grad_(False)
    fused = QuickGeluMlp.of(mlp)
    lin = nn.Linear(48, 48).requires_grad_(False)
    flin = FusedLinear.of(lin)
    grads = []
    for m1, m2 in ((lin, mlp), (flin, fused)):
        x = _x(2, 5, 48).requires_grad_(True)
        m2(m1(x)).square().sum().backward()
        grads.append(x.grad)
    assert grads[1] is not None and grads[1].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0])


def _padded_first(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, stride: int, groups: int) -> torch.Tensor:
    """The reference: timm's TF "same" padding of the whole input, then the convolution."""
    from timm.layers.padding import pad_same

    return F.conv2d(pad_same(x, w.shape[-2:], (stride, stride), (1, 1)), w, b, stride=stride, groups=groups)


@needs_ops
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_convolution_without_padding_the_input(dtype: torch.dtype) -> None:
    """conv_same_pointwise (a zero tap in front of the kernel where "same" pads one pixel more
    after than before, so that oneDNN's symmetric padding serves) is the padded convolution: odd
    and even sizes, kernels 1/3/5, strides 1/2, dense and depthwise, both memory formats; in bf16
    within its rounding."""
    from aidetect.model.onednn import conv_same_pointwise

    if dtype == torch.bfloat16 and not bf16_computed():
        pytest.skip("this CPU does not compute in bf16 (the fused op refuses it)")
    g = torch.Generator().manual_seed(3)
    cases = 0
    for h, w_, k, s, dense, nhwc in itertools.product((3, 8, 15, 17), (3, 8, 9, 32), (1, 3, 5), (1, 2),
                                                       (True, False), (True, False)):
        if min(h, w_) < k:
            continue
        c_in, c_out = (6, 4) if dense else (6, 6)
        x = torch.randn(2, c_in, h, w_, generator=g)
        x = x.contiguous(memory_format=torch.channels_last) if nhwc else x
        wt = torch.randn(c_out, c_in if dense else 1, k, k, generator=g)
        b = torch.randn(c_out, generator=g)
        groups = 1 if dense else c_in
        want = _padded_first(x, wt, b, s, groups)
        got = conv_same_pointwise(x.to(dtype), wt.to(dtype), b.to(dtype), (s, s), (1, 1), groups, "none", [])
        assert got.shape == want.shape, (h, w_, k, s)
        if dtype == torch.float32:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
        else:
            assert (got.float() - want).abs().max() <= 0.02 * want.abs().max() + 0.05, (h, w_, k, s, dense, nhwc)
        cases += 1
    assert cases > 300
