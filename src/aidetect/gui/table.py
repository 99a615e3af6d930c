"""The browse table with its pager: one page of the filtered, sorted view (read on the ``io``
lane through :class:`~aidetect.gui.reads.StoreReader`), thumbnails, sorting by a heading,
paging by buttons and keyboard, the selection (kept across reloads, shown in the result
view) and the live refresh when the store changes."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as tb

from aidetect.gui import imaging
from aidetect.gui.columns import THUMB_COLUMN, Columns
from aidetect.gui.detail import NOT_IN_VIEW, DetailPanel
from aidetect.gui.reads import Page, StoreReader
from aidetect.gui.tablemodel import (
    COLUMNS,
    Paging,
    headings,
    needs_reshow,
    pick_selection,
    row_tags,
    sorted_by,
)
from aidetect.gui.tasks import TaskRunner
from aidetect.gui.thumbs import Thumbnails
from aidetect.store.results import ResultFilter, ResultRow


class ResultsTable(tb.Frame):
    """The table and pager. ``filters``, ``offset`` and ``page_size`` say what to read next;
    ``total``, ``rows`` and ``marker`` describe the page on screen."""

    def __init__(
        self,
        master: tk.Misc,
        runner: TaskRunner,
        reader: StoreReader,
        detail: DetailPanel,
        on_error: Callable[[BaseException], None],
        page_size: int = 100,
        live_ms: int = 1000,
    ) -> None:
        super().__init__(master)
        self.runner = runner
        self.reader = reader
        self.detail = detail
        self._on_error = on_error
        self.page_size = page_size
        self.live_ms = live_ms
        self.filters = ResultFilter()
        self.offset = 0
        self.total = 0
        self.rows: dict[str, ResultRow] = {}
        self.marker: tuple[int, str] | None = None
        self.page_loads = 0
        self.loading = False  # a page read is on its way
        self._select_after_load: str | None = None
        self._select_file_after_load: int | None = None
        self.thumbs = Thumbnails(self, runner, self._thumbs_ready)
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self._build_tree()
        self._build_pager()
        self._bind_keys()

    # -- building -----------------------------------------------------------------------
    def _build_tree(self) -> None:
        tb.Style().configure("Treeview", rowheight=imaging.THUMB_SIDE + 6)
        self.tree = tb.Treeview(
            self, columns=[c[0] for c in COLUMNS], show=("tree", "headings"), selectmode="browse"
        )
        self.tree.column("#0", width=THUMB_COLUMN, minwidth=THUMB_COLUMN, stretch=False)
        self.tree.heading("#0", text="")
        for cid, heading, width, anchor in COLUMNS:
            self.tree.heading(cid, text=heading, command=lambda c=cid: self.sort_by(c))
            self.tree.column(cid, width=width, minwidth=20, anchor=anchor, stretch=False)  # type: ignore[arg-type]
        # widths follow the table's width and the page's text
        self.columns = Columns(self.tree, lambda: self.rows, lambda: self.filters.sort)
        ysb = tb.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=ysb.set)
        self.tree.grid(row=0, column=0, sticky="nsew")
        ysb.grid(row=0, column=1, sticky="ns")
        self.tree.tag_configure("ai", foreground="#c0392b")
        self.tree.tag_configure("real", foreground="#1e8449")
        self.tree.tag_configure("failed", foreground="#7f8c8d", background="#fbeaea")
        self.tree.tag_configure("pending", foreground="#7f8c8d")
        self.tree.tag_configure("uncertain", background="#fff6dd")
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._selection_changed())
        self._update_headings()

    def _build_pager(self) -> None:
        self.pager = pager = Pager(self, self.first_page, self.prev_page, self.next_page, self.last_page)
        pager.grid(row=1, column=0, columnspan=2, sticky="ew")
        self.first_btn, self.prev_btn = pager.first_btn, pager.prev_btn
        self.next_btn, self.last_btn = pager.next_btn, pager.last_btn
        self.page_label, self.query_time = pager.page_label, pager.query_time

    def _bind_keys(self) -> None:
        t = self.tree
        t.bind("<Down>", self._key_down)
        t.bind("<Up>", self._key_up)
        t.bind("<Next>", lambda _e: (self.next_page(select="first"), "break")[1])
        t.bind("<Prior>", lambda _e: (self.prev_page(select="last"), "break")[1])
        t.bind("<Home>", lambda _e: (self._select_index(0), "break")[1])
        t.bind("<End>", lambda _e: (self._select_index(-1), "break")[1])
        t.bind("<Control-Home>", lambda _e: (self.first_page(), "break")[1])
        t.bind("<Control-End>", lambda _e: (self.last_page(), "break")[1])

    # -- reading a page -----------------------------------------------------------------
    def refresh(self, keep_selection: bool = True, select_file: int | None = None) -> None:
        """Re-read the current page and count (off the Tk thread); ``select_file`` selects
        that file's row once loaded (or shows it when not on the page)."""
        if select_file is not None:
            self._select_file_after_load = select_file
        if keep_selection and self._select_after_load is None:
            sel = self.tree.selection()
            self._select_after_load = sel[0] if sel else None
        filters, offset, limit = self.filters, self.offset, self.page_size
        self.loading = True
        self.runner.submit(
            "io",
            lambda: self.reader.page(filters, offset, limit),
            self._page_loaded,
            self._page_failed,
            key="page",
        )

    def apply(self, filters: ResultFilter) -> None:
        """Show ``filters`` from the first page (nothing to do when they are the current ones)."""
        if filters != self.filters:
            self.filters = filters
            self.offset = 0
            self.refresh()

    def sort_by(self, column: str) -> None:
        self.filters = sorted_by(self.filters, column)
        self.offset = 0
        self._update_headings()
        self.columns.fit()  # the arrow moved to another heading
        self.refresh()

    def _update_headings(self) -> None:
        for cid, text in headings(self.filters).items():
            self.tree.heading(cid, text=text)

    def _page_failed(self, exc: BaseException) -> None:
        self.loading = False
        self._on_error(exc)

    def _page_loaded(self, page: Page) -> None:
        self.loading = False
        if page.filters != self.filters:
            return
        self.offset, self.total, self.marker = page.offset, page.total, page.marker
        new_keys = [r.key for r in page.rows]
        old_keys = list(self.tree.get_children())
        self.rows = {r.key: r for r in page.rows}
        refitted = self.columns.fit(page.rows)  # the new page's text may want other widths
        if new_keys == old_keys:
            if not refitted:
                for r in page.rows:
                    self.tree.item(r.key, values=self.columns.values(r), tags=row_tags(r))
            else:
                for r in page.rows:
                    self.tree.item(r.key, tags=row_tags(r))
        else:
            if old_keys:
                self.tree.delete(*old_keys)
            for r in page.rows:
                self.tree.insert(
                    "",
                    "end",
                    iid=r.key,
                    values=self.columns.values(r),
                    tags=row_tags(r),
                    image=self.thumbs.photo(r.path),
                )
            self.thumbs.request(r.path for r in page.rows)
        self.page_loads += 1
        self.pager.show(Paging(page.offset, page.total, self.page_size), len(page.rows), page.seconds)
        self._restore_selection()

    def _thumbs_ready(self, paths: set[str]) -> None:
        for key, row in self.rows.items():
            if row.path in paths and self.tree.exists(key):
                self.tree.item(key, image=self.thumbs.photo(row.path))

    # -- selection ------------------------------------------------------------------------
    # The result view shows the selected row; with no row selected it shows nothing, or an
    # image that is not on this page (an upload the filters hide, a row a filter took away)
    # with a note that says so.
    def _restore_selection(self) -> None:
        want, self._select_after_load = self._select_after_load, None
        file_id, self._select_file_after_load = self._select_file_after_load, None
        pick = pick_selection(want, file_id, self.rows, self.detail.row)
        if pick.key is None:
            self._deselect()
            if pick.file_id is not None:
                self._show_file(pick.file_id)
            elif self.detail.row is not None and self.detail.row.key not in self.rows:
                self.detail.set_note(NOT_IN_VIEW)
            return
        key = pick.key
        if self.tree.selection() != (key,):
            self.tree.selection_set(key)
        self.tree.focus(key)
        self.tree.see(key)
        shown = self.detail.row
        if shown is not None and shown.key == key and needs_reshow(self.rows[key], shown):
            self.detail.show(self.rows[key])
        else:
            self._selection_changed()

    def _deselect(self) -> None:
        if self.tree.selection():
            self.tree.selection_remove(*self.tree.selection())

    def _show_file(self, file_id: int) -> None:
        """Show a file whose row is not on this page (filters or sort hide it), unless a row
        is selected by the time it is read."""

        def show(row: ResultRow | None) -> None:
            if row is None or self.tree.selection():
                return
            if row.key in self.rows:
                self._select_after_load = row.key
                self._restore_selection()
            else:
                self.detail.show(row, note=NOT_IN_VIEW)

        self.runner.submit(
            "io", lambda: self.reader.row_of_file(file_id), show, key="detail-row"
        )

    def _selection_changed(self) -> None:
        sel = self.tree.selection()
        row = self.rows.get(sel[0]) if sel else None
        if row is None:
            return
        if self.detail.row is None or self.detail.row.key != row.key:
            self.detail.show(row)
        else:
            self.detail.set_note(None)

    def _select_index(self, index: int) -> None:
        children = self.tree.get_children()
        if children:
            key = children[index]
            self.tree.selection_set(key)
            self.tree.focus(key)
            self.tree.see(key)

    def focus_rows(self) -> None:
        """Keyboard focus to the table, selecting the first row when none is."""
        self.tree.focus_set()
        if not self.tree.selection():
            self._select_index(0)

    # -- paging ---------------------------------------------------------------------------
    def _paging(self) -> Paging:
        return Paging(self.offset, self.total, self.page_size)

    def _key_down(self, _e: tk.Event) -> str | None:
        children = self.tree.get_children()
        more = self._paging().more_after(len(children))
        if children and self.tree.focus() == children[-1] and more:
            self.next_page(select="first")
            return "break"
        return None

    def _key_up(self, _e: tk.Event) -> str | None:
        children = self.tree.get_children()
        if children and self.tree.focus() == children[0] and self.offset > 0:
            self.prev_page(select="last")
            return "break"
        return None

    def _goto(self, offset: int | None, select: str | None) -> None:
        if offset is None:
            return
        self.offset = offset
        self._select_after_load = select
        self.refresh(keep_selection=False)

    def first_page(self) -> None:
        self._goto(0, "first")

    def prev_page(self, select: str | None = None) -> None:
        self._goto(self._paging().prev(), select)

    def next_page(self, select: str | None = None) -> None:
        self._goto(self._paging().next(), select)

    def last_page(self) -> None:
        self._goto(self._paging().last(), "last")

    # -- live refresh ---------------------------------------------------------------------
    def start_live(self) -> None:
        """Poll the store's change marker every ``live_ms`` and reload when it moves."""
        self._live_after: str | None = self.after(self.live_ms, self._live_tick)

    def stop_live(self) -> None:
        if getattr(self, "_live_after", None) is not None:
            self.after_cancel(self._live_after)  # type: ignore[arg-type]
            self._live_after = None

    def _live_tick(self) -> None:
        if not self.loading and self.runner.busy("io") == 0:
            self.runner.submit(
                "io", self.reader.marker, self._marker_seen, lambda _e: None, key="marker"
            )
        self._live_after = self.after(self.live_ms, self._live_tick)

    def _marker_seen(self, mark: tuple[int, str]) -> None:
        if self.marker is not None and mark != self.marker and not self.loading:
            self.refresh()


class Pager(tb.Frame):
    """Below the table: first / previous / next / last page, where this page is, how long it
    took to read, and the live-update mark."""

    def __init__(self, master: tk.Misc, *commands: Callable[[], None]) -> None:
        super().__init__(master, padding=(0, 4))

        def button(text: str, command: Callable[[], None]) -> tb.Button:
            return tb.Button(self, text=text, width=2, bootstyle="secondary-outline", command=command)

        self.first_btn, self.prev_btn, self.next_btn, self.last_btn = (
            button(t, c) for t, c in zip("«◀▶»", commands, strict=True)
        )
        for b in (self.first_btn, self.prev_btn):
            b.pack(side="left", padx=(0, 3))
        self.page_label = tb.Label(self, text="", width=16, anchor="center")
        self.page_label.pack(side="left", padx=6)
        for b in (self.next_btn, self.last_btn):
            b.pack(side="left", padx=(0, 3))
        self.live_label = tb.Label(self, text="● live", bootstyle="success")
        self.live_label.pack(side="right")
        self.query_time = tb.Label(self, text="", bootstyle="secondary")
        self.query_time.pack(side="right", padx=8)
        tb.ToolTip(self.query_time, text="How long reading this page from the store took")

    def show(self, paging: Paging, shown: int, seconds: float) -> None:
        """The page at ``paging`` with ``shown`` rows, read in ``seconds``."""
        self.page_label.configure(text=paging.span(shown))
        self.query_time.configure(text=f"page read in {seconds * 1000:.0f} ms")
        more, back = paging.more_after(shown), paging.offset > 0
        for b, ok in ((self.first_btn, back), (self.prev_btn, back), (self.next_btn, more), (self.last_btn, more)):
            b.configure(state="normal" if ok else "disabled")
