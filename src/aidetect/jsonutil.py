"""Strict JSON for what aidetect writes: cards, reports, store columns (no torch, no numpy import)."""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any


def clean_json(o: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): clean_json(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [clean_json(v) for v in o]
    if isinstance(o, float) or type(o).__name__.startswith("float"):
        v = float(o)  # type: ignore[arg-type]
        return v if math.isfinite(v) else None
    if type(o).__name__.startswith(("int", "uint")) and hasattr(o, "item"):
        return int(o)  # type: ignore[call-overload]
    return o


def json_default(o: object) -> object:
    """``json.dumps(default=...)`` for what :func:`clean_json` leaves: arrays (and numpy
    scalars) as lists/numbers, anything else (paths) as its string."""
    if hasattr(o, "tolist") and not isinstance(o, PurePath):
        return clean_json(o.tolist())  # type: ignore[attr-defined]
    return str(o)
