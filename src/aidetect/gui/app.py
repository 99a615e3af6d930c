"""The dashboard window: it composes the toolbar (:mod:`~aidetect.gui.toolbar`), the filter bar
(:mod:`~aidetect.gui.filterbar`), the browse table with its pager (:mod:`~aidetect.gui.table`),
the result view (:mod:`~aidetect.gui.detail`) and the status bar
(:mod:`~aidetect.gui.statusbar`), and wires them together: uploads, export, keyboard
shortcuts, drag and drop, errors.

Threading model: the Tk thread only builds widgets and applies finished results. Everything
that can take time (database reads, hashing, image decoding, scoring) runs on the
:class:`~aidetect.gui.tasks.TaskRunner` lanes, whose results come back through a queue the
Tk thread drains every 30 ms with ``after()``. Newer requests of the same kind (a page, a
detail, a render) supersede older ones, so fast typing or scrolling never piles up work.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import tkinter as tk
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ttkbootstrap as tb

from aidetect.config import Settings, get_settings
from aidetect.errors import AidetectError
from aidetect.gui.detail import DetailPanel
from aidetect.gui.filterbar import FilterBar
from aidetect.gui.inline import InlineScorer
from aidetect.gui.layout import MIN_DETAIL, MIN_TABLE, clamp_sash, first_sash
from aidetect.gui.reads import StoreReader
from aidetect.gui.statusbar import StatusBar
from aidetect.gui.table import ResultsTable
from aidetect.gui.tasks import TaskRunner
from aidetect.gui.tkgc import TkThreadCollector
from aidetect.gui.toolbar import Toolbar
from aidetect.gui.upload import UploadResult, expand_paths, run_upload, upload_summary
from aidetect.store.results import ResultFilter

log = logging.getLogger(__name__)

MIN_SIZE = (1024, 640)  # the smallest window everything fits in (tests/gui/test_layout.py)
# Signals that close the window as its close button does (the helper process goes with it).
CLOSE_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


class Dashboard:
    """The main window. ``Dashboard().run()`` opens it; tests drive the same object."""

    def __init__(
        self,
        settings: Settings | None = None,
        page_size: int = 100,
        live_ms: int = 1000,
        status_ms: int = 3000,
        theme: str = "bootstrap-light",
        size: tuple[int, int] = (1280, 800),
        init_store: bool = True,
    ) -> None:
        self.settings = settings or get_settings()
        self.db_url = self.settings.database_url
        self.reader = StoreReader(self.db_url)
        self.last_error: str | None = None
        self.last_upload: UploadResult | None = None
        self.last_export: tuple[Path, int] | None = None
        self.scorer = InlineScorer()
        self.closed = False

        self.root = tb.Window(title="aidetect — AI image detector", themename=theme)
        self.root.minsize(*MIN_SIZE)
        sw, sh = self.root.winfo_screenwidth(), self.root.winfo_screenheight()
        w, h = min(size[0], sw), min(size[1], sh)
        self.root.geometry(f"{w}x{h}+{max(0, (sw - w) // 2)}+{max(0, (sh - h) // 2)}")
        self.gc = TkThreadCollector(self.root)  # Tk objects are freed on the Tk thread only
        self.runner = TaskRunner(
            self.root, lanes=("io", "thumb", "score", "status"), on_error=self.report_error
        )
        self._build(page_size, live_ms, status_ms)
        self._bind_keys()
        self.dnd_enabled = self._enable_drop()
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        if init_store:
            self.runner.submit("io", self.reader.init_store, lambda _r: self.refresh(), key="init")
        else:
            self.refresh()
        self.table.start_live()
        self.status_bar.start()

    # -- building -----------------------------------------------------------------------
    def _build(self, page_size: int, live_ms: int, status_ms: int) -> None:
        root = self.root
        root.columnconfigure(0, weight=1)
        root.rowconfigure(1, weight=1)
        self.toolbar = Toolbar(root, self.upload_paths, self.export_csv, self.refresh)
        self.toolbar.grid(row=0, column=0, sticky="ew")

        panes = tb.Panedwindow(root, orient="horizontal")
        panes.grid(row=1, column=0, sticky="nsew", padx=6)
        left = tb.Frame(panes, padding=(2, 0))
        left.columnconfigure(0, weight=1)
        left.rowconfigure(1, weight=1)
        panes.add(left, weight=3)
        self.detail = DetailPanel(panes, self.runner, self.report_error)
        panes.add(self.detail, weight=2)
        self.panes = panes
        self._sash_set = False
        panes.bind("<Configure>", self._place_sash, add="+")
        panes.bind("<ButtonRelease-1>", lambda _e: self._clamp_sash(), add="+")

        self.filter_bar = FilterBar(left, self.apply_filters)
        self.filter_bar.grid(row=0, column=0, sticky="ew", pady=(0, 4))
        self.table = ResultsTable(
            left, self.runner, self.reader, self.detail, self.report_error, page_size, live_ms
        )
        self.table.grid(row=1, column=0, sticky="nsew")
        self.status_bar = StatusBar(root, self.runner, self.reader, status_ms)
        self.status_bar.grid(row=2, column=0, sticky="ew")

        # the parts' widgets and variables the tests and benchmarks read, by their old names
        self.tree, self.page_label = self.table.tree, self.table.page_label
        self.query_time = self.table.query_time
        self.search_var, self.label_var = self.filter_bar.search_var, self.filter_bar.label_var
        self.queue_label = self.status_bar.queue_label
        self.workers_label = self.status_bar.workers_label
        self.model_label = self.status_bar.model_label

    def _place_sash(self, event: tk.Event) -> None:
        """The table gets 63 % of the width when the window first shows; the person can
        drag the sash afterwards, but the result view keeps :data:`MIN_DETAIL` pixels and
        the table :data:`MIN_TABLE` (also when the window is made smaller)."""
        if event.width < 200:
            return
        if not self._sash_set:
            self._sash_set = True
            self.panes.sashpos(0, first_sash(event.width))
        else:
            self.root.after_idle(self._clamp_sash)

    def _clamp_sash(self) -> None:
        with contextlib.suppress(tk.TclError):
            pos, total = self.panes.sashpos(0), self.panes.winfo_width()
            want = clamp_sash(pos, total, MIN_TABLE, MIN_DETAIL)
            if want != pos:
                self.panes.sashpos(0, want)

    def _bind_keys(self) -> None:
        r = self.root
        r.bind("<Control-o>", lambda _e: self.toolbar.ask_upload_files())
        r.bind("<Control-e>", lambda _e: self.toolbar.ask_export())
        r.bind("<Control-f>", lambda _e: (self.filter_bar.search_entry.focus_set(), "break")[1])
        r.bind("<F5>", lambda _e: self.refresh())
        for key in ("<Control-q>", "<Control-Q>", "<Control-w>", "<Control-W>"):
            r.bind(key, lambda _e: (self.close(), "break")[1])
        self.tree.bind("<Return>", lambda _e: self.detail.heat_toggle.focus_set())
        self.filter_bar.search_entry.bind("<Down>", lambda _e: (self.focus_table(), "break")[1])

    def _enable_drop(self) -> bool:
        """Drag and drop of files/folders onto the window (tkinterdnd2's tkdnd extension);
        the dashboard works without it."""
        try:
            from tkinterdnd2 import DND_FILES, TkinterDnD

            TkinterDnD._require(self.root)
            for widget in (self.tree, self.detail.image_area, self.detail.image_label):
                TkinterDnD.DnDWrapper.drop_target_register(widget, DND_FILES)
                TkinterDnD.DnDWrapper.dnd_bind(widget, "<<Drop>>", self.on_drop)
        except Exception as exc:  # noqa: BLE001 - missing package or extension: no drop
            log.info("drag and drop unavailable: %s", exc)
            return False
        tb.ToolTip(
            self.toolbar.upload_files_btn, text="Or drop files and folders onto the table"
        )
        return True

    def on_drop(self, event: Any) -> str:
        """A drop of files/folders: the data is a Tcl list of paths."""
        paths = [p for p in self.root.tk.splitlist(event.data) if p]
        if paths:
            self.upload_paths(paths)
        return "copy"

    # -- errors ---------------------------------------------------------------------------
    def report_error(self, exc: BaseException) -> None:
        msg = str(exc) if isinstance(exc, AidetectError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, AidetectError):
            log.error("dashboard job failed", exc_info=exc)
        self.last_error = msg
        self.toolbar.fail(msg)

    def refresh(self, keep_selection: bool = True) -> None:
        """Re-read the current page and count (off the Tk thread)."""
        self.table.refresh(keep_selection)

    def sort_by(self, column: str) -> None:
        self.table.sort_by(column)

    def first_page(self) -> None:
        self.table.first_page()

    def prev_page(self, select: str | None = None) -> None:
        self.table.prev_page(select)

    def next_page(self, select: str | None = None) -> None:
        self.table.next_page(select)

    def last_page(self) -> None:
        self.table.last_page()

    def focus_table(self) -> None:
        self.table.focus_rows()

    # -- filters --------------------------------------------------------------------------
    def read_filters(self) -> ResultFilter:
        """The filter from the widgets; an unparseable field is marked and ignored."""
        return self.filter_bar.read(self.table.filters)

    def apply_filters(self) -> None:
        self.table.apply(self.read_filters())

    def clear_filters(self) -> None:
        self.filter_bar.clear()

    # -- upload ---------------------------------------------------------------------------
    def upload_paths(self, paths: Sequence[str | Path]) -> None:
        """Register and score files/folders (what the dialogs and drag and drop call)."""
        files = expand_paths(paths)
        if not files:
            self.report_error(AidetectError("no image files in the selection"))
            return
        self.toolbar.working(f"Checking {len(files)} image(s)…", 0)
        self.toolbar.uploading(True)

        def progress(done: int, total: int) -> None:
            self.runner.call_soon(
                self.toolbar.working,
                f"Scoring in this window: {done}/{total}",
                100.0 * done / max(1, total),
            )

        def job() -> UploadResult:
            res = run_upload(files, progress, self.scorer)
            res.counts = self.reader.status_counts(res.file_ids)  # what became of them
            return res

        self.runner.submit("score", job, self._uploaded, self._upload_failed)

    def _upload_failed(self, exc: BaseException) -> None:
        self.toolbar.uploading(False)
        self.report_error(exc)

    def _uploaded(self, res: UploadResult) -> None:
        self.toolbar.uploading(False)
        self.last_upload = res
        self.toolbar.say(upload_summary(res))
        first = res.file_ids[0] if res.file_ids else None
        self.table.refresh(keep_selection=False, select_file=first)

    # -- export ---------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> None:
        """Write every row matching the current filters, in the table's order, to ``path``."""
        filters, target = self.table.filters, Path(path)
        self.toolbar.working(f"Exporting {self.table.total:,} rows…", 0)

        def done(n: int) -> None:
            self.last_export = (target, n)
            self.toolbar.say(f"Exported {n:,} rows to {target.name}")

        self.runner.submit("io", lambda: self.reader.export_csv(filters, target), done)

    # -- lifecycle ------------------------------------------------------------------------
    def run(self) -> None:
        """The main loop, until the window closes (its close button, Ctrl+Q / Ctrl+W, or
        SIGTERM / SIGHUP, which close it the same way)."""
        restore = self._close_on_signals()
        try:
            self.root.mainloop()
        finally:
            self.close()
            for sig, handler in restore.items():
                signal.signal(sig, handler)

    def _close_on_signals(self) -> dict[int, Any]:
        """Have SIGTERM and SIGHUP close the window on the Tk thread. Python runs the
        handler on the main thread between bytecodes, and the main loop gets there at least
        every 30 ms (the lanes' poll), so the close is prompt. Returns the old handlers."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        old: dict[int, Any] = {}

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("signal %d: closing the dashboard", signum)
            with contextlib.suppress(tk.TclError, RuntimeError):
                self.root.after(0, self.close)

        for sig in CLOSE_SIGNALS:
            old[sig] = signal.signal(sig, on_signal)
        return old

    def close(self) -> None:
        """Close the window and stop its lanes and helper process (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.runner.close()
        self.scorer.close()
        self.gc.close()
        with contextlib.suppress(tk.TclError):
            self.table.stop_live()
            self.status_bar.stop()
            self.root.destroy()
