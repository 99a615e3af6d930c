"""Every registered architecture (timm style): builds, any input size, two logits in the
order (real, ai), a CAM layer, and a safetensors round trip with equal outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aidetect.model import (
    CLASSES,
    ModelCard,
    create_model,
    list_models,
    load_model_dir,
    save_model_dir,
)


def test_registry_has_the_baseline_and_the_default() -> None:
    assert {"seed", "npr_resnet", "npr_resnet_tiny"} <= set(list_models())
    assert CLASSES == ("real", "ai")


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert isinstance(model.cam_layer, torch.nn.Module)
    assert any(model.cam_layer is m for m in model.modules())
    for size in (32, 64):
        x = torch.randn(3, 3, size, size)
        with torch.no_grad():
            out = model(x)
        assert out.shape == (3, 2)
        assert torch.isfinite(out).all()
    # a training step changes the weights (the network is trainable end to end)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    # round trip
    model.eval()
    card = ModelCard(architecture=name, input_size=32)
    save_model_dir(model, card, tmp_path / "m")
    loaded, card2 = load_model_dir(tmp_path / "m")
    assert card2.architecture == name and card2.version.startswith(name)
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)
