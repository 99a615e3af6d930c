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


# options of the default architecture that change its graph
VARIANTS = [("npr_resnet", {"multiscale": True}), ("npr_resnet", {"dct_stats": 16}),
            ("npr_resnet", {"multiscale": True, "dct_stats": 16})]


# image networks (pixels -> 2 logits); the fusion head of a fused model takes branch outputs, its own test below
IMAGE_NETWORKS = [n for n in list_models() if n != "fused_clip_cnn"]


def test_fusion_head_contract(tmp_path: Path) -> None:
    """The fusion head: fused logit = w_cnn * cnn + w_clip * probe(clip) + bias, contributions per
    branch, shares that sum to 1, and a safetensors + card round trip."""
    import numpy as np

    from aidetect.model.fusion import ARCHITECTURE, FusionHead, shares

    rng = np.random.default_rng(0)
    head = create_model(ARCHITECTURE).set_from(feat_mean=rng.normal(size=512) * 0.01, feat_std=np.full(512, 0.04),
                                               probe_w=rng.normal(size=512) * 0.1, probe_b=0.3, w_cnn=0.6,
                                               w_clip=0.2, bias=0.5)
    assert isinstance(head, FusionHead)
    cnn, emb = torch.tensor([2.0, -1.0]), torch.randn(2, 512)
    clip = head.clip_logit(emb)
    torch.testing.assert_close(head(cnn, clip), 0.6 * cnn + 0.2 * clip + 0.5)
    c = head.contributions(cnn, clip).detach().numpy()
    assert np.allclose(shares(c).sum(-1), 1.0) and np.allclose(shares(np.zeros((1, 2))), 0.5)
    save_model_dir(head, ModelCard(architecture=ARCHITECTURE, input_size=224), tmp_path / "h")
    loaded, _ = load_model_dir(tmp_path / "h")
    torch.testing.assert_close(loaded(cnn, loaded.clip_logit(emb)), head(cnn, clip))


@pytest.mark.parametrize(("name", "kwargs"), [(n, {}) for n in IMAGE_NETWORKS] + VARIANTS,
                         ids=lambda v: v if isinstance(v, str) else ",".join(v) or "-")
def test_model_contract(name: str, kwargs: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
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
    card = ModelCard(architecture=name, arch_kwargs=kwargs, input_size=32)
    save_model_dir(model, card, tmp_path / "m")
    loaded, card2 = load_model_dir(tmp_path / "m")
    assert card2.architecture == name and card2.version.startswith(name)
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)


def test_block_dct_filters_are_jpeg_transform() -> None:
    """The DCT branch's fixed filters compute JPEG's colour transform then the orthonormal
    8 x 8 DCT-II of each block: checked against scipy on one block of the Y plane and on the
    flat-block case (only the DC coefficient is non-zero)."""
    from scipy.fft import dctn

    from aidetect.model.networks import block_dct_filters

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64) * 255
    coef = torch.nn.functional.conv2d(x, block_dct_filters().double(), stride=8)
    assert coef.shape == (1, 192, 2, 2)
    y = 0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2]
    ref = dctn(y[8:16, :8].numpy(), norm="ortho")
    torch.testing.assert_close(coef[0, :64, 1, 0].reshape(8, 8), torch.from_numpy(ref), atol=1e-3, rtol=0)
    flat = torch.nn.functional.conv2d(torch.full((1, 3, 8, 8), 100.0), block_dct_filters(), stride=8)[0, :, 0, 0]
    assert abs(float(flat[0]) - 800.0) < 1e-2 and float(flat[1:64].abs().max()) < 1e-3  # Y: DC only (8 * 100)
