"""The JSON model card that travels with the weights, and the verdict rule it defines.
Imports no torch: the store and the CLI read cards before any model is loaded."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aidetect.errors import ModelLoadError
from aidetect.jsonutil import clean_json, json_default

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
# Output index of each canonical class. Every model in this project emits logits in this
# order, whatever order the training data used (the data's own names are recorded in
# ``source_classes``).
CLASSES = ("real", "ai")
AI_INDEX = 1


@dataclass
class ModelCard:
    architecture: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: int = 32
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    source_classes: dict[str, str] = field(default_factory=dict)  # data's name -> real|ai
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    temperature: float = 1.0
    threshold: float = 0.5
    uncertain_band: list[float] = field(default_factory=lambda: [0.35, 0.65])
    data: dict[str, Any] = field(default_factory=dict)  # sources, split, split hash, counts
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # epochs, seed, time, command
    # sizes the model was trained on: {"min_side": px, "max_side": px}; outside -> uncertain
    domain: dict[str, int] = field(default_factory=dict)
    # {"model": dir relative to this one}: images under domain.min_side are scored by that model
    small_images: dict[str, Any] | None = None
    # fully convolutional views (inference/views.py): {"window": px, "whole_max_pixels": n,
    # "max_windows": n}; empty -> input-size tiles
    views: dict[str, int] = field(default_factory=dict)
    ood: dict[str, Any] | None = None  # out-of-distribution score: threshold and how it was fitted (model/ood.py)
    # two-branch models (model/fusion.py): {"cnn": model dir of the CNN branch (relative, or a shipped
    # model's name), "clip": the CLIP encoder folder (same rule), "clip_views": "center" | "center+crops"}
    fusion: dict[str, Any] | None = None
    version: str = ""
    created: str = ""
    format_version: int = 1

    # -- verdict rule -------------------------------------------------------------------
    def verdict(self, prob_ai: float) -> tuple[str, bool]:
        """Label (``ai``/``real``) from the calibrated probability, and whether it falls
        inside the uncertain band."""
        lo, hi = self.uncertain_band
        label = "ai" if prob_ai >= self.threshold else "real"
        return label, bool(lo <= prob_ai <= hi)

    # -- I/O ---------------------------------------------------------------------------
    def to_json(self) -> str:
        """Strict JSON (NaN and infinities as null: PostgreSQL's JSON type refuses them, and an
        AUC of a one-class source is NaN)."""
        return json.dumps(clean_json(asdict(self)), indent=2, sort_keys=False, default=json_default, allow_nan=False)

    def save(self, model_dir: Path) -> None:
        (model_dir / CARD_FILE).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        """The card of ``model_dir``, checked against ``card.schema.json``: :class:`ModelLoadError`
        with one line for a card that is not JSON, or whose values have the wrong type or range."""
        path = Path(model_dir) / CARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        problem = card_problem(data)
        if problem:
            raise ModelLoadError(f"{path}: invalid model card: {problem}")
        return cls.from_dict(data)


CARD_SCHEMA_FILE = Path(__file__).with_name("card.schema.json")


@lru_cache(maxsize=1)
def _card_validator() -> Any:
    import jsonschema

    schema = json.loads(CARD_SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def card_problem(data: Any) -> str | None:
    """The first way ``data`` breaks the model card schema, in one line (``arch_kwargs: 'oops'
    is not of type 'object'``), or None. Semantic checks the schema cannot say go here too."""
    errors = sorted(_card_validator().iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.path) or "the card"
        text = " ".join(e.message.split())
        return f"{where}: {text if len(text) <= 160 else text[:157] + '...'}"
    lo, hi = data.get("uncertain_band", [0.0, 1.0])
    if lo > hi:
        return f"uncertain_band: [{lo}, {hi}] is not a range (low > high)"
    return None


