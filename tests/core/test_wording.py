"""The display rule: a verdict is said "REAL PHOTO" or "AI-GENERATED" only when firm, and the
confidence shown is never under 50 %."""

from __future__ import annotations

import itertools

import numpy as np

from aidetect.wording import LOW_CONFIDENCE, OUTSIDE, short_label, uncertainty, word


def test_never_real_or_ai_under_fifty_percent() -> None:
    probs = np.linspace(0.0, 1.0, 201)
    for p, label, unc, reason in itertools.product(probs, ("ai", "real"), (False, True), (None, LOW_CONFIDENCE, OUTSIDE)):
        w = word(label, float(p), unc, reason)
        assert w is not None
        assert w.confidence >= 0.5
        assert f"{w.confidence * 100:.1f} %" in w.detail
        if w.headline == "REAL PHOTO":
            assert label == "real" and not unc and p < 0.5
        elif w.headline == "AI-GENERATED":
            assert label == "ai" and not unc and p >= 0.5
        else:
            assert w.headline == "UNDECIDED" and not w.decided
            assert ("leans AI" in w.detail) == (p >= 0.5)


def test_the_reported_case_reads_undecided_leaning_ai() -> None:
    """P(ai) 0.615 under a 0.63 threshold was shown as "REAL PHOTO · 38.5 % confident"."""
    w = word("real", 0.615, True, LOW_CONFIDENCE)
    assert w is not None and w.headline == "UNDECIDED"
    assert w.detail == "leans AI (61.5 %), low confidence"
    # even a (mis)stored verdict that is not flagged uncertain is not said as real
    w = word("real", 0.615, False)
    assert w is not None and w.headline == "UNDECIDED"
    assert short_label("real", 0.615, False) == "ai?"
    assert short_label("real", 0.1, False) == "real"
    assert word(None, None, None) is None


def test_outside_training_data_wins_over_low_confidence() -> None:
    assert uncertainty(in_band=True, out_of_distribution=True) == (True, OUTSIDE)
    assert uncertainty(in_band=True, out_of_distribution=False) == (True, LOW_CONFIDENCE)
    assert uncertainty(in_band=False, out_of_distribution=False) == (False, None)
    w = word("ai", 0.99, True, OUTSIDE)
    assert w is not None and w.headline == "UNDECIDED" and w.detail.endswith("outside training data")
