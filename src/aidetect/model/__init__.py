"""Networks, preprocessing and checkpoint I/O. Knows nothing of Celery, SQL or Tk.

The names below load their module on first use (PEP 562), so importing
``aidetect.model.card`` (torch-free) does not import torch."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "AI_INDEX": "card",
    "CLASSES": "card",
    "ModelCard": "card",
    "load_model_dir": "checkpoint",
    "save_model_dir": "checkpoint",
    "EvalPreset": "preprocess",
    "Normalisation": "preprocess",
    "load_image": "decode",
    "create_model": "registry",
    "list_models": "registry",
    "register_model": "registry",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'aidetect.model' has no attribute {name!r}")
    return getattr(import_module(f"aidetect.model.{_WHERE[name]}"), name)
