"""The status bar: broker queue depth, live workers, the active model and its accuracy, and the
store. It polls on the ``status`` lane; :func:`status_texts` turns a reading into the labels'
text (no window needed)."""

from __future__ import annotations

import contextlib
import tkinter as tk
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ttkbootstrap as tb

from aidetect.config import redact_url
from aidetect.gui.flow import FlowFrame
from aidetect.gui.reads import StoreReader
from aidetect.gui.tasks import TaskRunner
from aidetect.store.status import ModelInfo


@dataclass(frozen=True)
class StatusReading:
    """What one poll found; None where that source could not be read."""

    model: ModelInfo | None = None
    workers: int | None = None  # live worker nodes (``aidetect worker`` / ``up`` heartbeats)
    processes: int | None = None  # their scoring processes together (None: a node did not say)
    queue_read: bool = False  # the broker answered; ``queue`` None: its depth is unknown
    queue: int | None = None
    broker_error: str | None = None  # first line of the broker's error


def read_status(reader: StoreReader) -> StatusReading:
    """Runs on the status lane: the active model from the store, workers and queue depth
    from the broker."""
    model: ModelInfo | None = None
    workers: int | None = None  # live worker nodes (``aidetect worker`` / ``up`` heartbeats)
    processes: int | None = None  # their scoring processes together (None: a node did not say)
    queue: int | None = None
    queue_read = False
    broker_error: str | None = None
    with contextlib.suppress(Exception):  # a fresh store has no table yet
        model = reader.active_model()
    try:
        from aidetect.store.status import live_workers
        from aidetect.worker.broker import queue_depth

        beats = live_workers()
        workers, processes = len(beats), worker_processes(beats)
        queue, queue_read = queue_depth(), True
    except Exception as exc:  # noqa: BLE001 - broker down: say so in the bar
        broker_error = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
    return StatusReading(model, workers, processes, queue_read, queue, broker_error)


def worker_processes(beats: list[dict[str, Any]]) -> int | None:
    """The scoring processes of the live workers ``beats`` (``live_workers()``: each node's
    heartbeat says its ``concurrency``); None when a node did not say."""
    counts = [b.get("concurrency") for b in beats]
    if any(not isinstance(c, int) or c < 1 for c in counts):
        return None
    return sum(counts)  # type: ignore[arg-type]


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def workers_text(nodes: int, processes: int | None) -> str:
    """E.g. ``Workers: 1 node, 2 processes``."""
    if not nodes:
        return "Workers: none (uploads are scored in this window)"
    procs = _n(processes, "process", "processes") if processes is not None else "processes unknown"
    return f"Workers: {_n(nodes, 'node', 'nodes')}, {procs}"


def status_texts(s: StatusReading) -> dict[str, str]:
    """New text for the ``queue``, ``workers`` and ``model`` labels; a label whose source
    gave nothing keeps its text."""
    out: dict[str, str] = {}
    if s.queue_read:
        out["queue"] = f"Queue: {s.queue} batches" if s.queue is not None else "Queue: n/a"
    elif s.broker_error is not None:
        out["queue"] = f"Queue: unavailable ({s.broker_error})"
    if s.workers is not None:
        out["workers"] = workers_text(s.workers, s.processes)
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
    """The bar along the window's bottom (its parts wrap onto a second row in a narrow
    window); after :meth:`start` it polls every ``every_ms``."""

    def __init__(
        self, master: tk.Misc, runner: TaskRunner, reader: StoreReader, every_ms: int
    ) -> None:
        super().__init__(master, padding=(8, 3), bootstyle="light")
        self.runner = runner
        self.reader = reader
        self.every_ms = every_ms
        self.flow = FlowFrame(self, gap=18, row_gap=1, bootstyle="light")
        self.flow.pack(fill="x")

        def label(text: str, right: bool = False) -> tb.Label:
            lab = tb.Label(self.flow, text=text, bootstyle="@light")
            self.flow.add(lab, right=right)
            return lab

        self.queue_label = label("Queue: –")
        self.workers_label = label("Workers: –")
        self.model_label = label("Model: –")
        self.db_label = label(short_url(reader.db_url), right=True)
        tb.ToolTip(self.db_label, text=reader.db_url)

    def start(self, first_ms: int = 200) -> None:
        self._after: str | None = self.after(first_ms, self._tick)

    def stop(self) -> None:
        if getattr(self, "_after", None) is not None:
            self.after_cancel(self._after)  # type: ignore[arg-type]
            self._after = None

    def _tick(self) -> None:
        if self.runner.busy("status") == 0:
            self.runner.submit(
                "status", lambda: read_status(self.reader), self.show, lambda _e: None
            )
        self._after = self.after(self.every_ms, self._tick)

    def show(self, reading: StatusReading) -> None:
        labels = {"queue": self.queue_label, "workers": self.workers_label, "model": self.model_label}
        for name, text in status_texts(reading).items():
            labels[name].configure(text=text)
