"""The toolbar along the window's top: upload files or a folder, export CSV and refresh, with
the file dialogs behind them, and the activity line with its progress bar."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import filedialog

import ttkbootstrap as tb

from aidetect.gui.upload import IMAGE_SUFFIXES


class Toolbar(tb.Frame):
    """Buttons that call ``on_upload`` with the chosen paths, ``on_export`` with the chosen
    file name and ``on_refresh``; :meth:`say` and :meth:`fail` write the activity line."""

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
        self.upload_files_btn = tb.Button(
            self, text="Upload images…", bootstyle="primary", command=self.ask_upload_files
        )
        self.upload_files_btn.pack(side="left")
        self.upload_dir_btn = tb.Button(
            self, text="Upload folder…", bootstyle="primary-outline", command=self.ask_upload_folder
        )
        self.upload_dir_btn.pack(side="left", padx=(6, 0))
        tb.Separator(self, orient="vertical").pack(side="left", fill="y", padx=10)
        self.export_btn = tb.Button(
            self, text="Export CSV…", bootstyle="secondary-outline", command=self.ask_export
        )
        self.export_btn.pack(side="left")
        self.refresh_btn = tb.Button(
            self, text="Refresh", bootstyle="secondary-link", command=on_refresh
        )
        self.refresh_btn.pack(side="left", padx=(6, 0))
        self.activity = tb.Label(self, text="", anchor="e")
        self.progress = tb.Progressbar(self, length=160, maximum=100, bootstyle="success-striped")
        self.progress.pack(side="right")
        self.activity.pack(side="right", padx=8)

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

    def say(self, text: str, value: float | None = None) -> None:
        """Show ``text`` in the activity line, and ``value`` (percent) in the progress bar."""
        self.activity.configure(text=text, bootstyle="default")
        if value is not None:
            self.progress.configure(value=value)

    def fail(self, message: str) -> None:
        """Show an error in the activity line (red) and empty the progress bar."""
        self.activity.configure(text=message[:140], bootstyle="danger")
        self.progress.configure(value=0)
