"""The status bar: broker queue depth, live workers, the active model and its accuracy, and the
store. It polls on the ``status`` lane; :func:`status_texts` turns a reading into the labels'
text (no window needed)."""

from __future__ import annotations

import contextlib
import tkinter as tk
from dataclasses import dataclass
from pathlib import Path

import ttkbootstrap as tb

from aidetect.config import redact_url
from aidetect.gui.reads import StoreReader
from aidetect.gui.tasks import TaskRunner
from aidetect.store.status import ModelInfo


@dataclass(frozen=True)
class StatusReading:
    """What one poll found; None where that source could not be read."""

    model: ModelInfo | None = None
    workers: int | None = None
    queue_read: bool = False  # the broker answered; ``queue`` None: its depth is unknown
    queue: int | None = None
    broker_error: str | None = None  # first line of the broker's error


def read_status(reader: StoreReader) -> StatusReading:
    """Runs on the status lane: the active model from the store, workers and queue depth
    from the broker."""
    model: ModelInfo | None = None
    workers: int | None = None
    queue: int | None = None
    queue_read = False
    broker_error: str | None = None
    with contextlib.suppress(Exception):  # a fresh store has no table yet
        model = reader.active_model()
    try:
        from aidetect.store.status import live_workers
        from aidetect.worker.broker import queue_depth

        workers = len(live_workers())
        queue, queue_read = queue_depth(), True
    except Exception as exc:  # noqa: BLE001 - broker down: say so in the bar
        broker_error = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
    return StatusReading(model, workers, queue_read, queue, broker_error)


def status_texts(s: StatusReading) -> dict[str, str]:
    """New text for the ``queue``, ``workers`` and ``model`` labels; a label whose source
    gave nothing keeps its text."""
    out: dict[str, str] = {}
    if s.queue_read:
        out["queue"] = f"Queue: {s.queue} batches" if s.queue is not None else "Queue: n/a"
    elif s.broker_error is not None:
        out["queue"] = f"Queue: unavailable ({s.broker_error})"
    if s.workers is not None:
        out["workers"] = (
            f"Workers: {s.workers} alive"
            if s.workers
            else "Workers: none (uploads are scored in this window)"
        )
    if s.model is not None:
        acc = f"{s.model.accuracy * 100:.2f} %" if s.model.accuracy is not None else "n/a"
        out["model"] = f"Model: {s.model.version} · {s.model.accuracy_name}: {acc}"
    return out


def short_url(url: str) -> str:
    """The store as the bar names it: a SQLite file's name, else the URL without credentials."""
    if url.startswith("sqlite:///"):
        return f"Store: {Path(url[len('sqlite:///') :]).name}"
    return "Store: " + redact_url(url)


class StatusBar(tb.Frame):
    """The bar along the window's bottom; after :meth:`start` it polls every ``every_ms``."""

    def __init__(
        self, master: tk.Misc, runner: TaskRunner, reader: StoreReader, every_ms: int
    ) -> None:
        super().__init__(master, padding=(8, 3), bootstyle="light")
        self.runner = runner
        self.reader = reader
        self.every_ms = every_ms
        self.queue_label = tb.Label(self, text="Queue: –", bootstyle="@light")
        self.queue_label.pack(side="left")
        self.workers_label = tb.Label(self, text="Workers: –", bootstyle="@light")
        self.workers_label.pack(side="left", padx=16)
        self.model_label = tb.Label(self, text="Model: –", bootstyle="@light")
        self.model_label.pack(side="left")
        self.db_label = tb.Label(self, text=short_url(reader.db_url), bootstyle="@light")
        self.db_label.pack(side="right")
        tb.ToolTip(self.db_label, text=reader.db_url)

    def start(self, first_ms: int = 200) -> None:
        self.after(first_ms, self._tick)

    def _tick(self) -> None:
        if self.runner.busy("status") == 0:
            self.runner.submit(
                "status", lambda: read_status(self.reader), self.show, lambda _e: None
            )
        self.after(self.every_ms, self._tick)

    def show(self, reading: StatusReading) -> None:
        labels = {"queue": self.queue_label, "workers": self.workers_label, "model": self.model_label}
        for name, text in status_texts(reading).items():
            labels[name].configure(text=text)
