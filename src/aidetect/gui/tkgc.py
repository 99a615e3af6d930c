"""Cyclic garbage collection on the Tk thread only.

Tk objects (``PhotoImage``, variables) must be destroyed on the thread that runs Tk. Python's
cyclic collector runs in whichever thread happens to allocate when a threshold is crossed: when
that is a worker lane and a dropped thumbnail sits in a reference cycle, Tcl aborts the whole
process ("Tcl_AsyncDelete: async handler deleted by the wrong thread"; seen in this project's GUI
test run). While the dashboard is open, automatic collection is therefore off and the Tk thread
collects on a timer instead. Objects alive at start-up (torch, the window) are frozen out of the
collector so that these collections stay cheap.
"""

from __future__ import annotations

import contextlib
import gc
import tkinter as tk


class TkThreadCollector:
    """Turns automatic cyclic GC off and collects every ``every_ms`` from ``root``'s event loop
    until :meth:`close`, which restores the previous state."""

    def __init__(self, root: tk.Misc, every_ms: int = 1000) -> None:
        self.root = root
        self.every_ms = every_ms
        self.collections = 0
        self._was_enabled = gc.isenabled()
        gc.disable()
        gc.freeze()
        self._after: str | None = root.after(every_ms, self._tick)

    def _tick(self) -> None:
        gc.collect()
        self.collections += 1
        self._after = self.root.after(self.every_ms, self._tick)

    def close(self) -> None:
        if self._after is not None:
            with contextlib.suppress(tk.TclError):  # the window may already be gone
                self.root.after_cancel(self._after)
            self._after = None
            gc.unfreeze()
            gc.collect()  # still on the Tk thread
            if self._was_enabled:
                gc.enable()
