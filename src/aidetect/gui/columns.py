"""The browse table's columns on screen: their widths for the table's width and the page's
text (columns the table has no room for are hidden, long names cut with an ellipsis), and
the tooltip over a cell. The arithmetic is :mod:`~aidetect.gui.tablemodel`'s and
:mod:`~aidetect.gui.layout`'s."""

from __future__ import annotations

import functools
import tkinter as tk
from collections.abc import Callable, Iterable, Mapping
from tkinter import font as tkfont

import ttkbootstrap as tb

from aidetect.gui import imaging
from aidetect.gui.flow import TextTip
from aidetect.gui.layout import fit_columns
from aidetect.gui.tablemodel import COLUMNS, cell_tip, column_specs, fit_values, row_values
from aidetect.store.results import ResultRow

THUMB_COLUMN = imaging.THUMB_SIDE + 14


def _font(style: str, fallback: str) -> tkfont.Font:
    name = tb.Style().lookup(style, "font") or fallback
    try:
        return tkfont.nametofont(str(name))
    except tk.TclError:
        return tkfont.Font(font=name)


class Columns:
    """Fits ``tree``'s columns to its width for the rows ``rows()`` returns."""

    def __init__(
        self,
        tree: tb.Treeview,
        rows: Callable[[], Mapping[str, ResultRow]],
        sort: Callable[[], str | None],
    ) -> None:
        self.tree = tree
        self._rows = rows
        self._sort = sort
        self.measure = functools.lru_cache(maxsize=8192)(_font("Treeview", "TkDefaultFont").measure)
        self.heading_measure = functools.lru_cache(maxsize=256)(
            _font("Treeview.Heading", "TkHeadingFont").measure
        )
        self.widths: dict[str, int] = {c[0]: c[2] for c in COLUMNS}  # the shown ones
        self._pending: str | None = None
        self._width = 0
        tree.bind("<Configure>", self._resized, add="+")
        self.tip = TextTip(tree, self.tip_at)

    @property
    def hidden(self) -> list[str]:
        return [c[0] for c in COLUMNS if c[0] not in self.widths]

    def values(self, row: ResultRow) -> tuple[str, ...]:
        """``row``'s cells as shown: cut to the column widths."""
        return fit_values(row_values(row), self.widths, self.measure)

    def fit(self, rows: Iterable[ResultRow] | None = None) -> bool:
        """Re-fit the columns to the tree's width and ``rows`` (default: the page on screen);
        re-cuts the cells when a width changed. Returns whether one did."""
        width = self.tree.winfo_width()
        if width <= 1:
            return False
        page = self._rows()
        specs = column_specs(
            self.measure,
            rows if rows is not None else page.values(),
            self.heading_measure,
            self._sort(),
        )
        widths = fit_columns(specs, width - THUMB_COLUMN - 2)
        if widths == self.widths:
            return False
        self.widths = widths
        self.tree.configure(displaycolumns=list(widths))
        for cid, w in widths.items():
            self.tree.column(cid, width=w, minwidth=20, stretch=False)
        for key, row in page.items():
            if self.tree.exists(key):
                self.tree.item(key, values=self.values(row))
        return True

    def _resized(self, event: tk.Event) -> None:
        if event.width == self._width:
            return
        self._width = event.width
        if self._pending is not None:
            self.tree.after_cancel(self._pending)
        self._pending = self.tree.after(30, self._refit)

    def _refit(self) -> None:
        self._pending = None
        self.fit()

    def tip_at(self, x: int, y: int) -> str | None:
        """The tooltip for the pointer at ``x``, ``y`` over the tree (None: none)."""
        if self.tree.identify_region(x, y) not in ("cell", "tree"):
            return None
        key = self.tree.identify_row(y)
        row = self._rows().get(key)
        if row is None:
            return None
        column = self.tree.identify_column(x)  # "#0" the thumbnail, "#n" the n-th shown
        shown_cols = list(self.widths)
        n = int(column[1:]) if column.startswith("#") and column[1:].isdigit() else 0
        cid = shown_cols[n - 1] if 0 < n <= len(shown_cols) else "name"
        shown = str(self.tree.set(key, cid)) if n else row.name
        return cell_tip(row, cid, shown, self.hidden)
