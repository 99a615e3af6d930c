"""Fixtures for the inference tests: the shipped model, and a tiny model trained here (about
a second) to spot a checkerboard patch pasted into the top-left quadrant of smooth random
images, so that where its Grad-CAM should point is known."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from aidetect.config import SHIPPED_MODEL_DIR
from aidetect.inference import Detector
from aidetect.model import ModelCard, list_models, register_model, save_model_dir

CIFAKE_MODEL_DIR = SHIPPED_MODEL_DIR.parent / "cifake"

PATCH = 6  # checkerboard side, px
SIZE = 32


class QuadNet(nn.Module):
    """Small fully convolutional net (receptive field ~10 px, CAM at 16 x 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(16, 2)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


if "test_quadnet" not in list_models():
    register_model("test_quadnet")(lambda **kw: QuadNet())


def make_images(n: int, with_patch: np.ndarray, rng: np.random.Generator, quadrant: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(n, 3, 32, 32) uint8 smooth random images; those flagged get the checkerboard pasted
    at a random place inside ``quadrant`` (row, col) of the image."""
    low = torch.from_numpy(rng.random((n, 3, 4, 4)).astype(np.float32))
    x = F.interpolate(low, size=SIZE, mode="bilinear", align_corners=False).numpy() * 0.6 + 0.2
    board = (np.indices((PATCH, PATCH)).sum(0) % 2).astype(np.float32) * 0.6 - 0.3
    half = SIZE // 2
    for i in np.flatnonzero(with_patch):
        y0, x0 = rng.integers(0, half - PATCH, size=2)
        y0, x0 = y0 + quadrant[0] * half, x0 + quadrant[1] * half
        x[i, :, y0 : y0 + PATCH, x0 : x0 + PATCH] += board
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def to_pil(arr: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(np.ascontiguousarray(a.transpose(1, 2, 0))) for a in arr]


@pytest.fixture(scope="session")
def quad_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than 2 spin-waiting threads on a shared CPU
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = QuadNet()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    for _ in range(80):
        y = rng.integers(0, 2, 32)
        x = (torch.from_numpy(make_images(32, y, rng)).float() / 255 - mean) / std
        loss = F.cross_entropy(model(x), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("quad") / "model"
    save_model_dir(model, ModelCard(architecture="test_quadnet", input_size=SIZE), out)
    return out


@pytest.fixture(scope="session")
def quad_detector(quad_model_dir: Path) -> Detector:
    return Detector(quad_model_dir, device="cpu", threads=1, precision="fp32")


@pytest.fixture(scope="session")
def detector() -> Detector:
    """The shipped 32 px CIFAKE model (``shipped_models/cifake``, whatever version is committed): the
    engine's mechanics on small inputs, in fp32 (exact comparisons with a direct forward; bf16 is
    compared with fp32 in tests/core/test_shipped_model.py). The default model's own tests there too."""
    return Detector(CIFAKE_MODEL_DIR, device="cpu", threads=1, precision="fp32")


@pytest.fixture(scope="session")
def quad_images() -> Callable[..., list[Image.Image]]:
    """``quad_images(flags, seed, quadrant=(0, 0))`` -> PIL images, patched where flagged."""

    def build(flags: np.ndarray, seed: int, quadrant: tuple[int, int] = (0, 0)) -> list[Image.Image]:
        rng = np.random.default_rng(seed)
        return to_pil(make_images(len(flags), np.asarray(flags, bool), rng, quadrant))

    return build
