"""The Tkinter dashboard (``aidetect gui``): upload images, see verdicts with Grad-CAM
overlays, browse, filter and export stored predictions. Imports Tk only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aidetect.gui.app import Dashboard


def open_dashboard(**kwargs: Any) -> Dashboard:
    """Build the dashboard window (``.run()`` starts its main loop)."""
    from aidetect.gui.app import Dashboard

    return Dashboard(**kwargs)


__all__ = ["open_dashboard"]
