"""One result per input: :class:`Verdict` (its wording: :mod:`aidetect.wording`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Verdict:
    """The outcome for one input. ``error`` is None when it was scored."""

    source: str
    sha256: str | None = None
    label: str | None = None  # "ai" | "real"
    prob_ai: float | None = None  # calibrated
    uncertain: bool | None = None
    uncertain_reason: str | None = None  # "outside training data" | "low confidence" | None
    ood_score: float | None = None  # distance to the training data's features (models that have one)
    model_version: str = ""  # the model directory asked (what the store keys results by)
    scored_by: str | None = None  # the model that scored it: model_version, or its small-image model
    error: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    tiles: int = 0  # views scored: 1, or the number of native-resolution tiles
    cam: np.ndarray | None = field(default=None, repr=False)  # float32 (h, w) in [0, 1]
    cam_method: str | None = None
    cam_target: str | None = None  # "predicted" | "other"
    cam_class: str | None = None  # class explained: "ai" | "real"
    cam_path: str | None = None
    overlay_path: str | None = None
    heatmap_error: str | None = None  # files could not be written (the verdict itself stands)
    timings: dict[str, float] = field(default_factory=dict)  # seconds, per image

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (everything but the CAM array)."""
        return {
            "path": self.source,
            "sha256": self.sha256,
            "label": self.label,
            "prob_ai": self.prob_ai,
            "uncertain": self.uncertain,
            "uncertain_reason": self.uncertain_reason,
            "ood_score": self.ood_score,
            "model_version": self.model_version,
            "scored_by": self.scored_by,
            "error": self.error,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "tiles": self.tiles,
            "cam_method": self.cam_method,
            "cam_target": self.cam_target,
            "cam_class": self.cam_class,
            "cam_path": self.cam_path,
            "overlay_path": self.overlay_path,
            "heatmap_error": self.heatmap_error,
            "timings": {k: round(v, 6) for k, v in self.timings.items()},
        }
