"""The dashboard window: toolbar (upload, export), browse table with filters and paging,
the result view, and a status bar.

Threading model: the Tk thread only builds widgets and applies finished results. Everything
that can take time (database reads, hashing, image decoding, scoring) runs on the
:class:`~aidetect.gui.tasks.TaskRunner` lanes, whose results come back through a queue the
Tk thread drains every 30 ms with ``after()``. Newer requests of the same kind (a page, a
detail, a render) supersede older ones, so fast typing or scrolling never piles up work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tkinter as tk
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from tkinter import filedialog
from typing import Any

import ttkbootstrap as tb
from PIL import Image, ImageTk

from aidetect.config import Settings, get_settings
from aidetect.errors import AidetectError
from aidetect.gui import imaging, queries
from aidetect.gui.detail import DetailPanel
from aidetect.gui.inline import InlineScorer
from aidetect.gui.queries import Filters, Row
from aidetect.gui.tasks import TaskRunner
from aidetect.gui.tkgc import TkThreadCollector
from aidetect.wording import short_label

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    # id, heading, width, anchor
    ("name", "File", 104, "w"),
    ("label", "Label", 52, "center"),
    ("confidence", "Confidence", 110, "e"),
    ("uncertain", "Uncertain", 86, "center"),
    ("model_version", "Model", 86, "w"),
    ("time", "Time", 135, "w"),
    ("status", "Status", 62, "center"),
)
ANY = "any"


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded (recursively) to the image files inside them."""
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            out.extend(
                sorted(
                    f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                )
            )
        else:
            out.append(path)
    return out


@dataclass
class UploadResult:
    image_ids: list[int]
    mode: str  # "workers" | "inline"
    files: int


def run_upload(
    paths: Sequence[Path], progress: Callable[[int, int], None], scorer: InlineScorer
) -> UploadResult:
    """Runs on the score lane: register the files in the store (same pipeline as the inbox);
    hand them to the workers if any is alive, else score them with ``scorer`` (the same
    ``score_inline`` code, in the dashboard's helper process)."""
    from aidetect import ingest

    files = [str(p.resolve()) for p in paths]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise AidetectError(
            f"not a file: {missing[0]}"
            + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    reg = ingest.register_files(files)
    shown = reg.distinct  # image id of every uploaded file, scored before or not
    ids = list(reg)  # the ones to score now
    if not ids:
        return UploadResult(shown, "known", len(files))
    if ingest.workers_alive():
        ingest.enqueue(ids)
        return UploadResult(shown, "workers", len(files))
    done = 0
    progress(0, len(ids))

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(done, len(ids))

    scorer.score(ids, progress=step)
    return UploadResult(shown, "inline", len(files))


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
        self.page_size = page_size
        self.live_ms = live_ms
        self.status_ms = status_ms
        self.filters = Filters()
        self.offset = 0
        self.total = 0
        self.rows: dict[str, Row] = {}
        self.marker: tuple[int, str] | None = None
        self.last_error: str | None = None
        self.last_upload: UploadResult | None = None
        self.last_export: tuple[Path, int] | None = None
        self.page_loads = 0
        self._select_after_load: str | None = None
        self._select_image_after_load: int | None = None
        self._filter_after: str | None = None
        self._page_inflight = False
        self._thumbs: OrderedDict[str, ImageTk.PhotoImage] = OrderedDict()
        self._thumb_gen = 0
        self.scorer = InlineScorer()

        self.root = tb.Window(title="aidetect — AI image detector", themename=theme)
        self.root.minsize(1024, 640)
        sw, sh = self.root.winfo_screenwidth(), self.root.winfo_screenheight()
        w, h = min(size[0], sw), min(size[1], sh)
        self.root.geometry(f"{w}x{h}+{max(0, (sw - w) // 2)}+{max(0, (sh - h) // 2)}")
        self.gc = TkThreadCollector(self.root)  # Tk objects are freed on the Tk thread only
        self.runner = TaskRunner(
            self.root, lanes=("io", "thumb", "score", "status"), on_error=self.report_error
        )
        style = tb.Style()
        style.configure("Treeview", rowheight=imaging.THUMB_SIDE + 6)
        self._placeholder = ImageTk.PhotoImage(
            Image.new("RGB", (imaging.THUMB_SIDE, imaging.THUMB_SIDE), (225, 228, 232)),
            master=self.root,
        )
        self.db_url = self.settings.database_url
        self._build()
        self._bind_keys()
        self.dnd_enabled = self._enable_drop()
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        if init_store:
            self.runner.submit("io", self._init_store, lambda _r: self.refresh(), key="init")
        else:
            self.refresh()
        self.root.after(self.live_ms, self._live_tick)
        self.root.after(200, self._status_tick)

    # -- building -----------------------------------------------------------------------
    def _build(self) -> None:
        root = self.root
        root.columnconfigure(0, weight=1)
        root.rowconfigure(1, weight=1)

        bar = tb.Frame(root, padding=(8, 6))
        bar.grid(row=0, column=0, sticky="ew")
        self.upload_files_btn = tb.Button(
            bar, text="Upload images…", bootstyle="primary", command=self.ask_upload_files
        )
        self.upload_files_btn.pack(side="left")
        self.upload_dir_btn = tb.Button(
            bar, text="Upload folder…", bootstyle="primary-outline", command=self.ask_upload_folder
        )
        self.upload_dir_btn.pack(side="left", padx=(6, 0))
        tb.Separator(bar, orient="vertical").pack(side="left", fill="y", padx=10)
        self.export_btn = tb.Button(
            bar, text="Export CSV…", bootstyle="secondary-outline", command=self.ask_export
        )
        self.export_btn.pack(side="left")
        self.refresh_btn = tb.Button(
            bar, text="Refresh", bootstyle="secondary-link", command=self.refresh
        )
        self.refresh_btn.pack(side="left", padx=(6, 0))
        self.activity = tb.Label(bar, text="", anchor="e")
        self.progress = tb.Progressbar(bar, length=160, maximum=100, bootstyle="success-striped")
        self.progress.pack(side="right")
        self.activity.pack(side="right", padx=8)

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

        self._build_filters(left)
        self._build_table(left)
        self._build_pager(left)
        self._build_status(root)

    def _place_sash(self, event: tk.Event) -> None:
        """The table gets 61 % of the width when the window first shows; the person can
        drag the sash afterwards."""
        if self._sash_set or event.width < 200:
            return
        self._sash_set = True
        self.panes.sashpos(0, int(event.width * 0.61))

    def _build_filters(self, parent: tk.Misc) -> None:
        f = tb.Labelframe(parent, text="Filter", padding=(8, 4))
        f.grid(row=0, column=0, sticky="ew", pady=(0, 4))
        self.search_var = tk.StringVar()
        self.label_var = tk.StringVar(value=ANY)
        self.status_var = tk.StringVar(value=ANY)
        self.uncertain_var = tk.StringVar(value=ANY)
        self.conf_min_var = tk.StringVar(value="0")
        self.conf_max_var = tk.StringVar(value="100")
        self.since_var = tk.StringVar()
        self.until_var = tk.StringVar()

        tb.Label(f, text="Name").grid(row=0, column=0, sticky="w")
        self.search_entry = tb.Entry(f, textvariable=self.search_var, width=22)
        self.search_entry.grid(row=0, column=1, sticky="ew", padx=(4, 10))
        tb.Label(f, text="Label").grid(row=0, column=2, sticky="w")
        self.label_box = tb.Combobox(
            f, textvariable=self.label_var, values=(ANY, "ai", "real"), width=6, state="readonly"
        )
        self.label_box.grid(row=0, column=3, padx=(4, 10))
        tb.Label(f, text="Status").grid(row=0, column=4, sticky="w")
        self.status_box = tb.Combobox(
            f,
            textvariable=self.status_var,
            values=(ANY, *queries.STATUSES),
            width=10,
            state="readonly",
        )
        self.status_box.grid(row=0, column=5, padx=(4, 10))
        tb.Label(f, text="Uncertain").grid(row=0, column=6, sticky="w")
        self.uncertain_box = tb.Combobox(
            f, textvariable=self.uncertain_var, values=(ANY, "yes", "no"), width=5, state="readonly"
        )
        self.uncertain_box.grid(row=0, column=7, padx=(4, 0))

        tb.Label(f, text="Confidence").grid(row=1, column=0, sticky="w", pady=(4, 0))
        conf = tb.Frame(f)
        conf.grid(row=1, column=1, sticky="w", padx=(4, 10), pady=(4, 0))
        self.conf_min = tb.Spinbox(
            conf, from_=0, to=100, increment=5, textvariable=self.conf_min_var, width=4
        )
        self.conf_min.pack(side="left")
        tb.Label(conf, text="–").pack(side="left", padx=2)
        self.conf_max = tb.Spinbox(
            conf, from_=0, to=100, increment=5, textvariable=self.conf_max_var, width=4
        )
        self.conf_max.pack(side="left")
        tb.Label(conf, text="%").pack(side="left", padx=(3, 0))
        tb.Label(f, text="From").grid(row=1, column=2, sticky="w", pady=(4, 0))
        self.since_entry = tb.Entry(f, textvariable=self.since_var, width=10)
        self.since_entry.grid(row=1, column=3, padx=(4, 10), pady=(4, 0))
        tb.Label(f, text="To").grid(row=1, column=4, sticky="w", pady=(4, 0))
        self.until_entry = tb.Entry(f, textvariable=self.until_var, width=10)
        self.until_entry.grid(row=1, column=5, padx=(4, 10), pady=(4, 0), sticky="w")
        self.clear_btn = tb.Button(
            f, text="Clear", bootstyle="secondary-link", command=self.clear_filters
        )
        self.clear_btn.grid(row=1, column=6, columnspan=2, sticky="e", pady=(4, 0))
        f.columnconfigure(1, weight=1)
        tb.ToolTip(self.since_entry, text="YYYY-MM-DD (UTC)")
        tb.ToolTip(self.until_entry, text="YYYY-MM-DD (UTC), inclusive")

        for var in (
            self.search_var,
            self.label_var,
            self.status_var,
            self.uncertain_var,
            self.conf_min_var,
            self.conf_max_var,
            self.since_var,
            self.until_var,
        ):
            var.trace_add("write", lambda *_a: self._filters_changed())

    def _build_table(self, parent: tk.Misc) -> None:
        frame = tb.Frame(parent)
        frame.grid(row=1, column=0, sticky="nsew")
        frame.columnconfigure(0, weight=1)
        frame.rowconfigure(0, weight=1)
        self.tree = tb.Treeview(
            frame, columns=[c[0] for c in COLUMNS], show=("tree", "headings"), selectmode="browse"
        )
        self.tree.column(
            "#0", width=imaging.THUMB_SIDE + 14, minwidth=imaging.THUMB_SIDE + 14, stretch=False
        )
        self.tree.heading("#0", text="")
        for cid, heading, width, anchor in COLUMNS:
            self.tree.heading(cid, text=heading, command=lambda c=cid: self.sort_by(c))
            self.tree.column(cid, width=width, minwidth=50, anchor=anchor, stretch=cid == "name")  # type: ignore[arg-type]
        ysb = tb.Scrollbar(frame, orient="vertical", command=self.tree.yview)
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

    def _build_pager(self, parent: tk.Misc) -> None:
        p = tb.Frame(parent, padding=(0, 4))
        p.grid(row=2, column=0, sticky="ew")
        self.first_btn = tb.Button(
            p, text="«", width=3, bootstyle="secondary-outline", command=self.first_page
        )
        self.prev_btn = tb.Button(
            p, text="◀", width=3, bootstyle="secondary-outline", command=self.prev_page
        )
        self.next_btn = tb.Button(
            p, text="▶", width=3, bootstyle="secondary-outline", command=self.next_page
        )
        self.last_btn = tb.Button(
            p, text="»", width=3, bootstyle="secondary-outline", command=self.last_page
        )
        for b in (self.first_btn, self.prev_btn):
            b.pack(side="left", padx=(0, 3))
        self.page_label = tb.Label(p, text="", width=28, anchor="center")
        self.page_label.pack(side="left", padx=6)
        for b in (self.next_btn, self.last_btn):
            b.pack(side="left", padx=(0, 3))
        self.live_label = tb.Label(p, text="● live", bootstyle="success")
        self.live_label.pack(side="right")
        self.query_time = tb.Label(p, text="", bootstyle="secondary")
        self.query_time.pack(side="right", padx=8)

    def _build_status(self, root: tk.Misc) -> None:
        s = tb.Frame(root, padding=(8, 3), bootstyle="light")
        s.grid(row=2, column=0, sticky="ew")
        self.queue_label = tb.Label(s, text="Queue: –", bootstyle="@light")
        self.queue_label.pack(side="left")
        self.workers_label = tb.Label(s, text="Workers: –", bootstyle="@light")
        self.workers_label.pack(side="left", padx=16)
        self.model_label = tb.Label(s, text="Model: –", bootstyle="@light")
        self.model_label.pack(side="left")
        self.db_label = tb.Label(s, text=_short_url(self.db_url), bootstyle="@light")
        self.db_label.pack(side="right")
        tb.ToolTip(self.db_label, text=self.db_url)

    def _bind_keys(self) -> None:
        r, t = self.root, self.tree
        r.bind("<Control-o>", lambda _e: self.ask_upload_files())
        r.bind("<Control-e>", lambda _e: self.ask_export())
        r.bind("<Control-f>", lambda _e: (self.search_entry.focus_set(), "break")[1])
        r.bind("<F5>", lambda _e: self.refresh())
        t.bind("<Down>", self._key_down)
        t.bind("<Up>", self._key_up)
        t.bind("<Next>", lambda _e: (self.next_page(select="first"), "break")[1])
        t.bind("<Prior>", lambda _e: (self.prev_page(select="last"), "break")[1])
        t.bind("<Home>", lambda _e: (self._select_index(0), "break")[1])
        t.bind("<End>", lambda _e: (self._select_index(-1), "break")[1])
        t.bind("<Control-Home>", lambda _e: (self.first_page(), "break")[1])
        t.bind("<Control-End>", lambda _e: (self.last_page(), "break")[1])
        t.bind("<Return>", lambda _e: self.detail.heat_toggle.focus_set())
        self.search_entry.bind("<Down>", lambda _e: (self.focus_table(), "break")[1])

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
        tb.ToolTip(self.upload_files_btn, text="Or drop files and folders onto the table")
        return True

    def on_drop(self, event: Any) -> str:
        """A drop of files/folders: the data is a Tcl list of paths."""
        paths = [p for p in self.root.tk.splitlist(event.data) if p]
        if paths:
            self.upload_paths(paths)
        return "copy"

    # -- errors and activity ------------------------------------------------------------
    def report_error(self, exc: BaseException) -> None:
        msg = str(exc) if isinstance(exc, AidetectError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, AidetectError):
            log.error("dashboard job failed", exc_info=exc)
        self.last_error = msg
        self.activity.configure(text=msg[:140], bootstyle="danger")
        self.progress.configure(value=0)

    def _activity(self, text: str, value: float | None = None) -> None:
        self.activity.configure(text=text, bootstyle="default")
        if value is not None:
            self.progress.configure(value=value)

    # -- store ----------------------------------------------------------------------------
    def _init_store(self) -> None:
        from aidetect.db import init_db

        init_db(self.db_url)

    def _engine(self) -> Any:
        return queries.read_engine(self.db_url)

    # -- table ----------------------------------------------------------------------------
    def refresh(self, keep_selection: bool = True) -> None:
        """Re-read the current page and count (off the Tk thread)."""
        if keep_selection and self._select_after_load is None:
            sel = self.tree.selection()
            self._select_after_load = sel[0] if sel else None
        filters, offset, limit = self.filters, self.offset, self.page_size
        self._page_inflight = True

        def job() -> queries.Page:
            import time

            t0 = time.perf_counter()
            eng = self._engine()
            mark = queries.marker(eng)
            total = queries.count(eng, filters)
            off = min(offset, max(0, (total - 1) // limit * limit))
            rows = queries.fetch_page(eng, filters, off, limit, total=total)
            return queries.Page(rows, off, total, filters, mark, time.perf_counter() - t0)

        self.runner.submit("io", job, self._page_loaded, self._page_failed, key="page")

    def _page_failed(self, exc: BaseException) -> None:
        self._page_inflight = False
        self.report_error(exc)

    def _page_loaded(self, page: queries.Page) -> None:
        self._page_inflight = False
        if page.filters != self.filters:
            return
        self.offset, self.total, self.marker = page.offset, page.total, page.marker
        new_keys = [r.key for r in page.rows]
        old_keys = list(self.tree.get_children())
        self.rows = {r.key: r for r in page.rows}
        if new_keys == old_keys:
            for r in page.rows:
                self.tree.item(r.key, values=_values(r), tags=_tags(r))
        else:
            if old_keys:
                self.tree.delete(*old_keys)
            for r in page.rows:
                self.tree.insert(
                    "",
                    "end",
                    iid=r.key,
                    values=_values(r),
                    tags=_tags(r),
                    image=self._thumb_for(r.path),
                )
            self._request_thumbs(page.rows)
        self.page_loads += 1
        end = page.offset + len(page.rows)
        self.page_label.configure(
            text=f"{page.offset + 1 if page.rows else 0:,}–{end:,} of {page.total:,}"
        )
        self.query_time.configure(text=f"{page.seconds * 1000:.0f} ms")
        for b, ok in (
            (self.first_btn, page.offset > 0),
            (self.prev_btn, page.offset > 0),
            (self.next_btn, end < page.total),
            (self.last_btn, end < page.total),
        ):
            b.configure(state="normal" if ok else "disabled")
        self._restore_selection()

    def _restore_selection(self) -> None:
        want, self._select_after_load = self._select_after_load, None
        img, self._select_image_after_load = self._select_image_after_load, None
        children = self.tree.get_children()
        if img is not None:
            hit = next((k for k in children if self.rows[k].image_id == img), None)
            if hit is not None:
                want = hit
            else:  # not on this page (filters/sort): show it anyway
                self._show_image(img)
                return
        shown = self.detail.row
        if (
            want
            and want not in ("first", "last")
            and not self.tree.exists(want)
            and shown is not None
        ):
            # the shown image changed rows (queued -> scored): follow it
            want = next((k for k in children if self.rows[k].image_id == shown.image_id), None)
        elif not want and shown is not None and shown.prediction_id is None:
            hit = next((k for k in children if self.rows[k].image_id == shown.image_id), None)
            if hit is not None and self.rows[hit].key != shown.key:
                want = hit
        if want == "first" and children:
            want = children[0]
        elif want == "last" and children:
            want = children[-1]
        if want and self.tree.exists(want):
            if self.tree.selection() != (want,):
                self.tree.selection_set(want)
            self.tree.focus(want)
            self.tree.see(want)
            if self.detail.row is not None and self.detail.row.key == want:
                row = self.rows[want]
                if (
                    _values(row) != _values(self.detail.row)
                    or row.heatmap_path != self.detail.row.heatmap_path
                ):
                    self.detail.show(row)

    def _show_image(self, image_id: int) -> None:
        eng_row = lambda: queries.fetch_row(self._engine(), f"i{image_id}")  # noqa: E731
        self.runner.submit(
            "io", eng_row, lambda r: self.detail.show(r) if r else None, key="detail-row"
        )

    def _selection_changed(self) -> None:
        sel = self.tree.selection()
        row = self.rows.get(sel[0]) if sel else None
        if row is not None and (self.detail.row is None or self.detail.row.key != row.key):
            self.detail.show(row)

    def _select_index(self, index: int) -> None:
        children = self.tree.get_children()
        if children:
            key = children[index]
            self.tree.selection_set(key)
            self.tree.focus(key)
            self.tree.see(key)

    def _key_down(self, _e: tk.Event) -> str | None:
        children = self.tree.get_children()
        focus = self.tree.focus()
        if children and focus == children[-1] and self.offset + len(children) < self.total:
            self.next_page(select="first")
            return "break"
        return None

    def _key_up(self, _e: tk.Event) -> str | None:
        children = self.tree.get_children()
        focus = self.tree.focus()
        if children and focus == children[0] and self.offset > 0:
            self.prev_page(select="last")
            return "break"
        return None

    def focus_table(self) -> None:
        self.tree.focus_set()
        if not self.tree.selection():
            self._select_index(0)

    def _goto(self, offset: int, select: str | None = None) -> None:
        self.offset = max(0, offset)
        self._select_after_load = select
        self.refresh(keep_selection=False)

    def first_page(self) -> None:
        self._goto(0, "first")

    def prev_page(self, select: str | None = None) -> None:
        if self.offset > 0:
            self._goto(self.offset - self.page_size, select)

    def next_page(self, select: str | None = None) -> None:
        if self.offset + self.page_size < self.total:
            self._goto(self.offset + self.page_size, select)

    def last_page(self) -> None:
        self._goto(max(0, (self.total - 1) // self.page_size * self.page_size), "last")

    # -- thumbnails -----------------------------------------------------------------------
    def _thumb_for(self, path: str) -> ImageTk.PhotoImage:
        photo = self._thumbs.get(path)
        if photo is None:
            return self._placeholder
        self._thumbs.move_to_end(path)
        return photo

    def _request_thumbs(self, rows: list[Row]) -> None:
        self._thumb_gen += 1
        gen = self._thumb_gen
        todo = list(dict.fromkeys(r.path for r in rows if r.path not in self._thumbs))
        if not todo:
            return

        def job() -> None:
            batch: list[tuple[str, Image.Image]] = []
            for path in todo:
                if gen != self._thumb_gen:
                    return
                try:
                    batch.append((path, imaging.thumbnail(path)))
                except Exception:  # noqa: BLE001 - a missing file keeps the placeholder
                    continue
                if len(batch) >= 10:
                    self.runner.call_soon(self._apply_thumbs, gen, batch)
                    batch = []
            if batch:
                self.runner.call_soon(self._apply_thumbs, gen, batch)

        self.runner.submit("thumb", job)

    def _apply_thumbs(self, gen: int, batch: list[tuple[str, Image.Image]]) -> None:
        for path, pil in batch:
            self._thumbs[path] = ImageTk.PhotoImage(pil, master=self.root)
            while len(self._thumbs) > 1500:
                self._thumbs.popitem(last=False)
        by_path = {p for p, _ in batch}
        for key, row in self.rows.items():
            if row.path in by_path and self.tree.exists(key):
                self.tree.item(key, image=self._thumbs[row.path])

    # -- filters and sorting ------------------------------------------------------------
    def _filters_changed(self) -> None:
        if self._filter_after is not None:
            self.root.after_cancel(self._filter_after)
        self._filter_after = self.root.after(250, self.apply_filters)

    def read_filters(self) -> Filters:
        """Filters from the widgets; an unparseable field is marked and ignored."""

        def pct(var: tk.StringVar, widget: tk.Widget, default: float) -> float | None:
            text = var.get().strip()
            try:
                v = float(text) if text else default
                ok = 0 <= v <= 100
            except ValueError:
                v, ok = default, False
            widget.configure(bootstyle="default" if ok else "danger")  # type: ignore[call-arg]
            return None if (not ok or v == default) else v / 100.0

        def day(var: tk.StringVar, widget: tk.Widget) -> date | None:
            text = var.get().strip()
            if not text:
                widget.configure(bootstyle="default")  # type: ignore[call-arg]
                return None
            try:
                d = date.fromisoformat(text)
            except ValueError:
                widget.configure(bootstyle="danger")  # type: ignore[call-arg]
                return None
            widget.configure(bootstyle="default")  # type: ignore[call-arg]
            return d

        unc = self.uncertain_var.get()
        return self.filters.with_(
            text=self.search_var.get().strip(),
            label=None if self.label_var.get() == ANY else self.label_var.get(),
            status=None if self.status_var.get() == ANY else self.status_var.get(),
            uncertain=None if unc == ANY else unc == "yes",
            conf_min=pct(self.conf_min_var, self.conf_min, 0.0),
            conf_max=pct(self.conf_max_var, self.conf_max, 100.0),
            since=day(self.since_var, self.since_entry),
            until=day(self.until_var, self.until_entry),
        )

    def apply_filters(self) -> None:
        self._filter_after = None
        new = self.read_filters()
        if new != self.filters:
            self.filters = new
            self.offset = 0
            self.refresh()

    def clear_filters(self) -> None:
        for var, value in (
            (self.search_var, ""),
            (self.label_var, ANY),
            (self.status_var, ANY),
            (self.uncertain_var, ANY),
            (self.conf_min_var, "0"),
            (self.conf_max_var, "100"),
            (self.since_var, ""),
            (self.until_var, ""),
        ):
            var.set(value)

    def sort_by(self, column: str) -> None:
        if self.filters.sort == column:
            self.filters = self.filters.with_(descending=not self.filters.descending)
        else:
            self.filters = self.filters.with_(
                sort=column, descending=column in ("time", "confidence")
            )
        self.offset = 0
        self._update_headings()
        self.refresh()

    def _update_headings(self) -> None:
        for cid, heading, _w, _a in COLUMNS:
            arrow = ""
            if cid == self.filters.sort:
                arrow = " ▼" if self.filters.descending else " ▲"
            self.tree.heading(cid, text=heading + arrow)

    # -- live updates and status ------------------------------------------------------------
    def _live_tick(self) -> None:
        if not self._page_inflight and self.runner.busy("io") == 0:
            self.runner.submit(
                "io",
                lambda: queries.marker(self._engine()),
                self._marker_seen,
                lambda _e: None,
                key="marker",
            )
        self.root.after(self.live_ms, self._live_tick)

    def _marker_seen(self, mark: tuple[int, str]) -> None:
        if self.marker is not None and mark != self.marker and not self._page_inflight:
            self.refresh()

    def _status_tick(self) -> None:
        if self.runner.busy("status") == 0:
            self.runner.submit("status", self._read_status, self._status_read, lambda _e: None)
        self.root.after(self.status_ms, self._status_tick)

    def _read_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            out["model"] = queries.active_model_info(self._engine())
        except Exception as exc:  # noqa: BLE001 - a fresh store has no table yet
            out["model_error"] = str(exc)
        try:
            from aidetect import ingest

            out["workers"] = ingest.workers_alive()
            out["queue"] = ingest.queue_depth()
        except Exception as exc:  # noqa: BLE001 - broker down: say so in the bar
            out["broker_error"] = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        return out

    def _status_read(self, s: dict[str, Any]) -> None:
        if "queue" in s:
            q = s["queue"]
            self.queue_label.configure(
                text=f"Queue: {q} batches" if q is not None else "Queue: n/a"
            )
        elif "broker_error" in s:
            self.queue_label.configure(text=f"Queue: unavailable ({s['broker_error']})")
        if "workers" in s:
            n = int(s["workers"])
            self.workers_label.configure(
                text=f"Workers: {n} alive"
                if n
                else "Workers: none (uploads are scored in this window)"
            )
        info = s.get("model")
        if info is not None:
            acc = f"{info.accuracy * 100:.2f} %" if info.accuracy is not None else "n/a"
            self.model_label.configure(text=f"Model: {info.version} · {info.accuracy_name}: {acc}")

    # -- upload ---------------------------------------------------------------------------
    def ask_upload_files(self) -> None:
        names = filedialog.askopenfilenames(
            parent=self.root,
            title="Choose images to check",
            filetypes=[
                ("Images", " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))),
                ("All files", "*"),
            ],
        )
        if names:
            self.upload_paths(list(names))

    def ask_upload_folder(self) -> None:
        folder = filedialog.askdirectory(
            parent=self.root, title="Choose a folder of images", mustexist=True
        )
        if folder:
            self.upload_paths([folder])

    def upload_paths(self, paths: Sequence[str | Path]) -> None:
        """Register and score files/folders (what the dialogs and drag and drop call)."""
        files = expand_paths(paths)
        if not files:
            self.report_error(AidetectError("no image files in the selection"))
            return
        self._activity(f"Checking {len(files)} image(s)…", 0)
        self.upload_files_btn.configure(state="disabled")
        self.upload_dir_btn.configure(state="disabled")

        def progress(done: int, total: int) -> None:
            self.runner.call_soon(
                self._activity,
                f"Scoring in this window: {done}/{total}",
                100.0 * done / max(1, total),
            )

        self.runner.submit(
            "score",
            lambda: run_upload(files, progress, self.scorer),
            self._uploaded,
            self._upload_failed,
        )

    def _upload_done_common(self) -> None:
        self.upload_files_btn.configure(state="normal")
        self.upload_dir_btn.configure(state="normal")

    def _upload_failed(self, exc: BaseException) -> None:
        self._upload_done_common()
        self.report_error(exc)

    def _uploaded(self, res: UploadResult) -> None:
        self._upload_done_common()
        self.last_upload = res
        text = {
            "inline": f"Scored {res.files} image(s) in this window (no worker running)",
            "workers": f"Sent {res.files} image(s) to the workers; results appear as they finish",
            "known": f"{res.files} image(s) already in the store",
        }[res.mode]
        self._activity(text, 100 if res.mode != "workers" else 0)
        if res.image_ids:
            self._select_image_after_load = res.image_ids[0]
        self.refresh(keep_selection=False)

    # -- export ---------------------------------------------------------------------------
    def ask_export(self) -> None:
        name = filedialog.asksaveasfilename(
            parent=self.root,
            title="Export the filtered view",
            defaultextension=".csv",
            initialfile="aidetect-results.csv",
            filetypes=[("CSV", "*.csv")],
        )
        if name:
            self.export_csv(name)

    def export_csv(self, path: str | Path) -> None:
        """Write every row matching the current filters, in the table's order, to ``path``."""
        filters, target = self.filters, Path(path)
        self._activity(f"Exporting {self.total:,} rows…", 0)

        def job() -> int:
            return queries.export_csv(self._engine(), filters, target)

        def done(n: int) -> None:
            self.last_export = (target, n)
            self._activity(f"Exported {n:,} rows to {target.name}", 100)

        self.runner.submit("io", job, done)

    # -- lifecycle ------------------------------------------------------------------------
    def run(self) -> None:
        self.root.mainloop()

    def close(self) -> None:
        self.runner.close()
        self.scorer.close()
        self.gc.close()
        with contextlib.suppress(tk.TclError):
            self.root.destroy()


def _values(r: Row) -> tuple[str, ...]:
    conf = r.confidence
    return (
        r.name,
        short_label(r.label, r.prob_ai, r.uncertain),
        f"{conf * 100:.1f} %" if conf is not None else "–",
        "yes" if r.uncertain else ("no" if r.uncertain is not None else "–"),
        r.model_version or "–",
        r.time.strftime("%Y-%m-%d %H:%M") if r.time else "–",
        r.status,
    )


def _tags(r: Row) -> tuple[str, ...]:
    tags: list[str] = []
    if r.status == "failed":
        tags.append("failed")
    elif r.label is None:
        tags.append("pending")
    else:
        tags.append(r.label)
    if r.uncertain:
        tags.append("uncertain")
    return tuple(tags)


def _short_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"Store: {Path(url[len('sqlite:///') :]).name}"
    return "Store: " + url.split("@")[-1]
