"""One result per input: :class:`Verdict` (its wording: :mod:`aidetect.wording`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aidetect.result import result_object


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
    seen: float | None = None  # share of the image's pixels the views covered (1.0: all of it)
    cam: np.ndarray | None = field(default=None, repr=False)  # float32 (h, w) in [0, 1]
    cam_method: str | None = None
    cam_target: str | None = None  # "predicted" | "other"
    cam_class: str | None = None  # class explained: "ai" | "real"
    cam_path: str | None = None
    overlay_path: str | None = None
    heatmap_error: str | None = None  # files could not be written (the verdict itself stands)
    evidence: list[dict[str, Any]] = field(default_factory=list)  # aidetect.provenance items (to_json)
    decided_by: str | None = None  # "provenance" | "model" once scored (apply_policy)
    # fused models: per branch ("cnn", "clip") its calibrated log-odds, its term of the fused logit
    # and its share of the decision (aidetect.inference.fused); None for a one-branch model
    branches: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds, per image

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_result(self) -> dict[str, Any]:
        """The JSON result object (:mod:`aidetect.result`), then the views scored and what
        the heatmap explains."""
        values = {
            "path": self.source, "sha256": self.sha256, "status": "failed" if self.error else "done",
            "label": self.label, "prob_ai": self.prob_ai, "uncertain": self.uncertain,
            "uncertain_reason": self.uncertain_reason, "ood_score": self.ood_score,
            "model_version": self.model_version or None, "scored_by": self.scored_by, "error": self.error,
            "width": self.width, "height": self.height, "format": self.format,
            "cam_path": self.cam_path, "overlay_path": self.overlay_path, "heatmap_error": self.heatmap_error,
            "branches": self.branches,
            "evidence": self.evidence, "decided_by": self.decided_by,
        }
        return result_object(
            values, tiles=self.tiles, seen=self.seen, cam_method=self.cam_method, cam_class=self.cam_class,
        )


# Formats that keep pixels exactly: the only ones an invisible watermark can survive in
# (JPEG re-encoding destroys it, docs/provenance.md), so the costly decode runs on these only.
WATERMARK_FORMATS = frozenset({"PNG", "TIFF", "BMP", "WEBP"})


def read_provenance(data: bytes, fmt: str | None, trust_anchors: str | None = None) -> list[dict[str, Any]]:
    """The provenance evidence of a file's bytes, as JSON items (never raises).
    ``trust_anchors``: PEM roots a C2PA signer must chain to for a capture manifest to say real."""
    from aidetect.provenance import read_evidence

    found = read_evidence(data, watermark=(fmt or "").upper() in WATERMARK_FORMATS, c2pa_trust_anchors=trust_anchors)
    return [e.to_json() for e in found.evidence]


def apply_policy(v: Verdict) -> None:
    """The verdict policy (:func:`aidetect.provenance.decide`): strong AI evidence in the
    file decides ``label = "ai"``, ``decided_by = "provenance"`` and the verdict is firm;
    otherwise the pixel model's label stands (``decided_by = "model"``). ``prob_ai`` stays
    the model's calibrated probability either way, so both can be seen."""
    if v.error is not None or v.label is None:
        return
    from aidetect.provenance import decide

    decided_by, label = decide(v.evidence)
    if decided_by == "provenance" and label is not None:
        v.label, v.decided_by = label, "provenance"
        v.uncertain, v.uncertain_reason = False, None
    else:
        v.decided_by = "model"
