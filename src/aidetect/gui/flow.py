"""Widgets that fit a narrow window: :class:`FlowFrame` lays its items out left to right and
starts a new row when the next one does not fit (the filter bar, the status bar, the result
view's controls); :class:`TextTip` is a tooltip whose text depends on where the pointer is
(the table's cells), shown only when there is something to say. The decisions are
:mod:`~aidetect.gui.layout`'s."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ttkbootstrap as tb

from aidetect.gui.layout import flow


@dataclass
class _Item:
    widget: tk.Widget
    stretch: bool  # takes the rest of its row
    right: bool  # pushed to its row's right end
    min_width: int | None  # what the row needs for it (a stretched item may shrink to this)


class FlowFrame(tb.Frame):
    """A frame whose items (children created with it as master, then :meth:`add`-ed) wrap
    into as many rows as its width needs. Give it its width from outside (``sticky="ew"``,
    ``fill="x"``); its own requested width is that of its widest row."""

    def __init__(self, master: tk.Misc, gap: int = 8, row_gap: int = 4, **kw: Any) -> None:
        super().__init__(master, **kw)
        self.gap, self.row_gap = gap, row_gap
        self._style = kw.get("bootstyle")
        self._items: list[_Item] = []
        self._rows: list[tb.Frame] = []
        self.layout: list[list[int]] = []  # item indices per row, as laid out now
        self._pending: str | None = None
        self.bind("<Configure>", lambda _e: self.reflow(), add="+")
        self.bind("<Destroy>", self._destroyed, add="+")

    def add(
        self,
        widget: tk.Widget,
        stretch: bool = False,
        right: bool = False,
        min_width: int | None = None,
    ) -> tk.Widget:
        self._items.append(_Item(widget, stretch, right, min_width))
        widget.bind("<Configure>", lambda _e: self._later(), add="+")
        self.layout = []
        self.reflow()
        return widget

    def _width_of(self, item: _Item) -> int:
        req = item.widget.winfo_reqwidth()
        return item.min_width if item.min_width is not None else req

    def _later(self) -> None:
        """Reflow once the sizes settle (an item's text or size changed)."""
        if self._pending is None:
            self._pending = self.after_idle(self._reflow_now)

    def _reflow_now(self) -> None:
        self._pending = None
        self.reflow()

    def _destroyed(self, event: tk.Event) -> None:
        if event.widget is self and self._pending is not None:
            self.after_cancel(self._pending)
            self._pending = None

    def reflow(self) -> None:
        """Re-break the rows for the frame's width (nothing to do when they stay the same)."""
        if not self._items or not self.winfo_exists():
            return
        width = self.winfo_width()
        avail = width if width > 1 else 10**6  # not shown yet: one row
        rows = flow([self._width_of(i) for i in self._items], avail, self.gap)
        if rows == self.layout:
            return
        self.layout = rows
        for item in self._items:
            item.widget.pack_forget()
        while len(self._rows) < len(rows):
            frame = tb.Frame(self, bootstyle=self._style) if self._style else tb.Frame(self)
            self._rows.append(frame)
        for n, frame in enumerate(self._rows):
            if n >= len(rows):
                frame.pack_forget()
                continue
            frame.pack(side="top", fill="x", pady=(0 if n == 0 else self.row_gap, 0))
            for k, idx in enumerate(rows[n]):
                item = self._items[idx]
                last = k == len(rows[n]) - 1
                item.widget.pack(
                    in_=frame,
                    side="right" if item.right else "left",
                    fill="x" if item.stretch else "none",
                    expand=item.stretch,
                    padx=(0, 0 if last or item.right else self.gap),
                )
                item.widget.lift()  # above the row frames made after it

    @property
    def rows(self) -> int:
        return len(self.layout)


class TextTip(tb.ToolTip):
    """A tooltip on ``widget`` whose text ``text_at(x, y)`` gives for the pointer's place; none
    shows where it gives None (a table cell that is not cut, say)."""

    def __init__(self, widget: tk.Widget, text_at: Callable[[int, int], str | None]) -> None:
        super().__init__(widget, text="", delay=400, wraplength=480)
        self._text_at = text_at
        widget.bind("<Motion>", self._moved, add="+")

    def _moved(self, event: tk.Event) -> None:
        text = self._text_at(event.x, event.y) or ""
        if text == self.text:
            return
        self.hide_tip()
        self.text = text
        if text:
            self.schedule()
        else:
            self.unschedule()

    def show_tip(self, *args: Any) -> None:
        if self.text:
            super().show_tip(*args)
