"""The toolbar along the window's top: upload files or a folder, export CSV and refresh, with
the file dialogs behind them, and the activity line with its progress bar."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import filedialog

import ttkbootstrap as tb

from aidetect.ingest import IMAGE_SUFFIXES

PROGRESS_LENGTH = 160


class Toolbar(tb.Frame):
    """Buttons that call ``on_upload`` with the chosen paths, ``on_export`` with the chosen
    file name and ``on_refresh``; :meth:`say`, :meth:`working` and :meth:`fail` write the
    activity line (wrapped to the room beside the buttons), whose progress bar shows only
    while a job runs."""

    def __init__(
        self,
        master: tk.Misc,
        on_upload: Callable[[list[str]], None],
        on_export: Callable[[str], None],
        on_refresh: Callable[[], None],
    ) -> None:
        super().__init__(master, padding=(8, 6))
        self._on_upload = on_upload
        self._on_export = on_export
        self.buttons = buttons = tb.Frame(self)
        buttons.grid(row=0, column=0, sticky="w")
        self.upload_files_btn = tb.Button(
            buttons, text="Upload images…", bootstyle="primary", command=self.ask_upload_files
        )
        self.upload_files_btn.pack(side="left")
        self.upload_dir_btn = tb.Button(
            buttons,
            text="Upload folder…",
            bootstyle="primary-outline",
            command=self.ask_upload_folder,
        )
        self.upload_dir_btn.pack(side="left", padx=(6, 0))
        tb.Separator(buttons, orient="vertical").pack(side="left", fill="y", padx=10)
        self.export_btn = tb.Button(
            buttons, text="Export CSV…", bootstyle="secondary-outline", command=self.ask_export
        )
        self.export_btn.pack(side="left")
        self.refresh_btn = tb.Button(
            buttons, text="Refresh", bootstyle="secondary-link", command=on_refresh
        )
        self.refresh_btn.pack(side="left", padx=(6, 0))
        self.activity = tb.Label(self, text="", anchor="e", justify="right")
        self.activity.grid(row=0, column=1, sticky="e", padx=(12, 0))
        self.progress = tb.Progressbar(
            self, length=PROGRESS_LENGTH, maximum=100, bootstyle="success-striped"
        )
        self.progress.grid(row=0, column=2, sticky="e", padx=(8, 0))
        self.progress.grid_remove()  # shown while a job runs
        self.columnconfigure(1, weight=1)
        self.bind("<Configure>", lambda _e: self._wrap(), add="+")

    # -- dialogs --------------------------------------------------------------------------
    def ask_upload_files(self) -> None:
        names = filedialog.askopenfilenames(
            parent=self.winfo_toplevel(),
            title="Choose images to check",
            filetypes=[
                ("Images", " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))),
                ("All files", "*"),
            ],
        )
        if names:
            self._on_upload(list(names))

    def ask_upload_folder(self) -> None:
        folder = filedialog.askdirectory(
            parent=self.winfo_toplevel(), title="Choose a folder of images", mustexist=True
        )
        if folder:
            self._on_upload([folder])

    def ask_export(self) -> None:
        name = filedialog.asksaveasfilename(
            parent=self.winfo_toplevel(),
            title="Export the filtered view",
            defaultextension=".csv",
            initialfile="aidetect-results.csv",
            filetypes=[("CSV", "*.csv")],
        )
        if name:
            self._on_export(name)

    # -- state ----------------------------------------------------------------------------
    def uploading(self, busy: bool) -> None:
        """Disable the upload buttons while an upload runs."""
        state = "disabled" if busy else "normal"
        self.upload_files_btn.configure(state=state)
        self.upload_dir_btn.configure(state=state)

    @property
    def busy(self) -> bool:
        """Whether the progress bar shows (a job runs)."""
        return bool(self.progress.winfo_manager())

    def working(self, text: str, percent: float) -> None:
        """A job runs: ``text`` in the activity line and ``percent`` in the progress bar."""
        self.activity.configure(text=text, bootstyle="default")
        self.progress.configure(value=percent)
        if not self.busy:
            self.progress.grid()
            self._wrap()

    def say(self, text: str) -> None:
        """No job runs (any more): ``text`` in the activity line, no progress bar."""
        self.activity.configure(text=text, bootstyle="default")
        self._idle()

    def fail(self, message: str) -> None:
        """Show an error in the activity line (red); no progress bar."""
        self.activity.configure(text=message[:300], bootstyle="danger")
        self._idle()

    def _idle(self) -> None:
        self.progress.configure(value=0)
        if self.busy:
            self.progress.grid_remove()
            self._wrap()

    def _wrap(self) -> None:
        """Wrap the activity line to the room the buttons and the progress bar leave."""
        room = self.winfo_width() - self.buttons.winfo_reqwidth() - 12 - 16
        if self.busy:
            room -= PROGRESS_LENGTH + 8
        width = max(120, room)
        if int(str(self.activity.cget("wraplength") or 0)) != width:
            self.activity.configure(wraplength=width)
