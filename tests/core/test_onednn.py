"""The fused oneDNN layers (aidetect.model.onednn): the same function as the eager layers they
stand for, in fp32 and in bf16, the same parameters, and the eager path wherever a gradient is
needed (a Grad-CAM's backward)."""

from __future__ import annotations

import pytest
import torch
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
