"""How a verdict is said, one rule for every screen (CLI, dashboard). Imports nothing heavy:
the dashboard and the store's readers use it without torch.

A verdict is said as "AI-GENERATED" or "REAL PHOTO" only when it is firm: outside the
uncertain band, inside the model's training domain, and on the side of 0.5 its label names.
Anything else is "UNDECIDED", with the side it leans to and why (``uncertain_reason``). The
confidence shown is the probability of the class named or leaned to, so it is never under
50 %: "REAL PHOTO · 38.5 % confident" cannot be printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OUTSIDE = "outside training data"
LOW_CONFIDENCE = "low confidence"
UNCERTAIN_REASONS = (OUTSIDE, LOW_CONFIDENCE)


def uncertainty(in_band: bool, out_of_distribution: bool) -> tuple[bool, str | None]:
    """(uncertain, uncertain_reason): outside the training data wins over a low confidence."""
    if out_of_distribution:
        return True, OUTSIDE
    if in_band:
        return True, LOW_CONFIDENCE
    return False, None


@dataclass(frozen=True)
class Wording:
    headline: str  # "AI-GENERATED" | "REAL PHOTO" | "UNDECIDED"
    detail: str  # e.g. "leans AI (62 %), outside training data"
    confidence: float  # probability of the class named or leaned to, >= 0.5
    decided: bool  # True for a firm AI / real verdict


def word(label: str | None, prob_ai: float | None, uncertain: bool | None,
            reason: str | None = None, decided_by: str | None = None) -> Wording | None:
    """How a scored verdict is said; None when there is no verdict (failed, pending). A
    verdict the file's provenance decided (``decided_by == "provenance"``) is firm and says
    so, with what the pixel model alone would have said beside it."""
    if label is None or prob_ai is None:
        return None
    lean_ai = prob_ai >= 0.5
    conf = prob_ai if lean_ai else 1.0 - prob_ai
    if decided_by == "provenance":
        head = "AI-GENERATED" if label == "ai" else "REAL PHOTO"
        return Wording(head, f"the file's provenance says so; the pixels alone: {'AI' if lean_ai else 'real'} "
                       f"{conf * 100:.1f} %", conf, True)
    firm = not uncertain and (label == "ai") == lean_ai
    if firm:
        return Wording("AI-GENERATED" if label == "ai" else "REAL PHOTO",
                       f"{conf * 100:.1f} % confident", conf, True)
    why = reason or LOW_CONFIDENCE
    return Wording("UNDECIDED", f"leans {'AI' if lean_ai else 'real'} ({conf * 100:.1f} %), {why}", conf, False)


def short_label(label: str | None, prob_ai: float | None, uncertain: bool | None,
                decided_by: str | None = None) -> str:
    """The table cell: ``ai`` / ``real`` for a firm verdict, ``ai?`` / ``real?`` for one that is
    undecided and only leans that way, ``ai (file)`` when the file's provenance decided."""
    if decided_by == "provenance" and label:
        return f"{label} (file)"
    w = word(label, prob_ai, uncertain)
    if w is None:
        return label or "–"
    if w.decided:
        return label or "–"
    return f"{'ai' if (prob_ai or 0) >= 0.5 else 'real'}?"


def branch_summary(branches: dict[str, Any] | None) -> str:
    """``cnn 62 % · clip 38 %``: what a person reads next to the verdict."""
    if not branches:
        return ""
    text = " · ".join(f"{k} {b['share'] * 100:.0f} %" for k, b in branches.items() if isinstance(b, dict))
    return f"{text} (clip skipped: {branches['skipped']})" if branches.get("skipped") else text
