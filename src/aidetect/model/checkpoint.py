"""Model directories: ``model.safetensors`` + ``card.json``. Weights are never unpickled."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import aidetect.model.efficientnet  # noqa: F401  (registers the architectures)
import aidetect.model.fusion  # noqa: F401
import aidetect.model.networks  # noqa: F401
from aidetect.errors import ModelLoadError
from aidetect.model.card import CARD_FILE, WEIGHTS_FILE, ModelCard
from aidetect.model.registry import create_model

PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"}


def weights_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model_dir(model: nn.Module, card: ModelCard, model_dir: Path) -> Path:
    """Write weights and card. The card's ``version`` defaults to a short digest of the
    weights, so the same weights always have the same version id."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(model_dir / WEIGHTS_FILE), metadata={"architecture": card.architecture})
    if not card.version:
        card.version = f"{card.architecture}-{weights_digest(model_dir / WEIGHTS_FILE)[:12]}"
    card.save(model_dir)
    return model_dir


def _refuse_pickles(path: Path) -> None:
    if path.is_file() and path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path}: refusing to load a pickled checkpoint (it can run arbitrary code); "
            "aidetect loads only model directories with model.safetensors + card.json"
        )


def load_model_dir(model_dir: Path | str, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Load a model directory for inference (eval mode). Raises :class:`ModelLoadError`
    with a one-line reason for anything missing, unsafe or inconsistent."""
    path = Path(model_dir)
    _refuse_pickles(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: model directory not found")
    if not path.is_dir():
        raise ModelLoadError(f"{path}: not a model directory (expected model.safetensors + card.json)")
    for f in path.iterdir():
        if f.suffix.lower() in PICKLE_SUFFIXES and not (path / WEIGHTS_FILE).exists():
            _refuse_pickles(f)
    if not (path / CARD_FILE).is_file():
        raise ModelLoadError(f"{path}: {CARD_FILE} missing")
    if not (path / WEIGHTS_FILE).is_file():
        raise ModelLoadError(f"{path}: {WEIGHTS_FILE} missing")
    card = ModelCard.load(path)  # checked against the card schema: one line when it is not right
    model = create_model(card.architecture, **card.arch_kwargs)
    try:
        state = load_file(str(path / WEIGHTS_FILE), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{path / WEIGHTS_FILE}: not a valid safetensors file ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelLoadError(f"{path}: weights do not match architecture {card.architecture!r} ({first})") from exc
    model.eval().to(device)
    return model, card
