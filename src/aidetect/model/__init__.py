"""Networks, preprocessing and checkpoint I/O. Knows nothing of Celery, SQL or Tk."""

from aidetect.model.card import AI_INDEX, CLASSES, ModelCard
from aidetect.model.checkpoint import load_model_dir, save_model_dir
from aidetect.model.preprocess import EvalPreset, Normalisation, load_image
from aidetect.model.registry import create_model, list_models, register_model

__all__ = [
    "AI_INDEX",
    "CLASSES",
    "EvalPreset",
    "ModelCard",
    "Normalisation",
    "create_model",
    "list_models",
    "load_image",
    "load_model_dir",
    "register_model",
    "save_model_dir",
]
