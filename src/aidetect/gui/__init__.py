"""The Tkinter dashboard (``aidetect gui``): upload images, see verdicts with Grad-CAM
overlays, browse, filter and export stored predictions. Imports Tk only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aidetect.gui.app import Dashboard


def open_dashboard(**kwargs: Any) -> Dashboard:
    """Build the dashboard window (``.run()`` starts its main loop). A window Tk cannot open
    raises :class:`AidetectError` with Tk's one-line reason."""
    import tkinter as tk

    from aidetect.errors import AidetectError
    from aidetect.gui.app import Dashboard

    try:
        return Dashboard(**kwargs)
    except tk.TclError as exc:
        raise AidetectError(f"cannot open the dashboard window: {exc}") from exc


__all__ = ["open_dashboard"]
