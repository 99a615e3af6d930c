"""The JSON result object: one file and the verdict on its content, the same for
``predict --json``, ``scan --json/--export``, ``results --json/--export`` and the dashboard's
CSV. Written down as a JSON Schema in ``result.schema.json`` (next to this module); the CSV
columns are these keys in this order. A command may add keys after them (``predict``: the
views scored and the CAM method); these are always present, null where they do not apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RESULT_FIELDS = (
    "path", "sha256", "status", "label", "decided_by", "prob_ai", "confidence", "uncertain",
    "uncertain_reason", "ood_score", "model_version", "scored_by", "error", "evidence", "time",
    "first_seen", "size", "width", "height", "format", "cam_path", "overlay_path", "heatmap_error", "branches", "file_id", "image_id",
)
SCHEMA_FILE = Path(__file__).with_name("result.schema.json")


def confidence(label: str | None, prob_ai: float | None) -> float | None:
    """Calibrated probability of the class the verdict names or leans to (``aidetect.wording``):
    what a person reads as "how sure", never under 0.5."""
    if prob_ai is None or label is None:
        return None
    return prob_ai if prob_ai >= 0.5 else 1.0 - prob_ai


def result_object(values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The result object from ``values`` (missing keys null, ``confidence`` derived), then
    ``extra`` keys."""
    out = {k: values.get(k) for k in RESULT_FIELDS}
    out["confidence"] = confidence(out["label"], out["prob_ai"])
    out["evidence"] = list(out["evidence"] or [])
    out.update(extra)
    return out
