"""Work off the Tk thread: background lanes whose results come back through a queue that
the Tk thread drains with ``after()``.

Tk is single-threaded: widgets may only be touched from the thread that runs the main loop.
So every slow call (database read, image decoding, scoring) runs on a lane (one thread each,
in submission order) and its result, or its exception, is handed to a callback that runs on
the Tk thread at the next poll. Three lanes by default: ``"io"`` for short reads (queries,
details, heatmaps), ``"thumb"`` for table thumbnails, and ``"score"`` for long jobs
(registering and scoring uploads), so a long scoring run never delays a page of the table.

Requests that may be overtaken (a newer filter supersedes an older one) pass a ``key``:
only the newest submission for that key delivers its result; older ones are skipped before
they run when possible, and dropped on delivery otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Callback = Callable[[Any], None]
ErrorCallback = Callable[[BaseException], None]


@dataclass
class _Job:
    fn: Callable[[], Any]
    on_done: Callback | None
    on_error: ErrorCallback | None
    key: str | None
    ticket: int
    lane: str


class TaskRunner:
    """Background lanes + a result queue drained on the Tk thread every ``poll_ms``."""

    def __init__(
        self,
        root: tk.Misc,
        lanes: tuple[str, ...] = ("io", "thumb", "score"),
        poll_ms: int = 30,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self._root = root
        self._poll_ms = poll_ms
        self._default_error = on_error
        self._results: queue.SimpleQueue[tuple[_Job, bool, Any]] = queue.SimpleQueue()
        self._lanes: dict[str, queue.SimpleQueue[_Job | None]] = {}
        self._threads: list[threading.Thread] = []
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ticket = 0
        self._busy: dict[str, int] = dict.fromkeys(lanes, 0)
        self._closed = False
        for lane in lanes:
            q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
            self._lanes[lane] = q
            # the thread gets the queues and the latest tickets, never the runner: a lane that
            # held the runner (and so the Tk root) could drop the last reference to the Tcl
            # interpreter off the Tk thread as it ends, and Tcl aborts the process
            t = threading.Thread(
                target=_work, args=(q, self._results, self._latest), name=f"gui-{lane}", daemon=True
            )
            t.start()
            self._threads.append(t)
        self._after_id: str | None = self._root.after(self._poll_ms, self._poll)

    # -- submission (Tk thread) -------------------------------------------------------
    def submit(
        self,
        lane: str,
        fn: Callable[[], Any],
        on_done: Callback | None = None,
        on_error: ErrorCallback | None = None,
        key: str | None = None,
    ) -> int:
        """Run ``fn()`` on ``lane``; ``on_done(result)`` / ``on_error(exc)`` run on the Tk thread."""
        with self._lock:
            self._ticket += 1
            ticket = self._ticket
            if key is not None:
                self._latest[key] = ticket
            self._busy[lane] += 1
        self._lanes[lane].put(_Job(fn, on_done, on_error, key, ticket, lane))
        return ticket

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Thread-safe: run ``fn(*args)`` on the Tk thread at the next poll (progress updates)."""
        self._results.put((_Job(lambda: None, lambda _v: fn(*args), None, None, 0, ""), True, None))

    def busy(self, lane: str) -> int:
        """Jobs submitted to ``lane`` whose callbacks have not run yet."""
        return self._busy[lane]

    def idle(self) -> bool:
        return not any(self._busy.values())

    # -- worker threads ----------------------------------------------------------------
    def _stale(self, job: _Job) -> bool:
        return _stale(job, self._latest)

    # -- delivery (Tk thread) ----------------------------------------------------------
    def _poll(self) -> None:
        self._after_id = None
        try:
            self.drain()
        finally:
            if not self._closed:
                self._after_id = self._root.after(self._poll_ms, self._poll)

    def drain(self, max_items: int = 50) -> int:
        """Deliver up to ``max_items`` finished jobs now; returns how many were delivered."""
        n = 0
        while n < max_items:
            try:
                job, ok, value = self._results.get_nowait()
            except queue.Empty:
                break
            n += 1
            if job.lane:
                with self._lock:
                    self._busy[job.lane] -= 1
            if value is _SKIPPED or self._stale(job):
                continue
            try:
                if ok:
                    if job.on_done is not None:
                        job.on_done(value)
                else:
                    handler = job.on_error or self._default_error
                    if handler is not None:
                        handler(value)
                    else:
                        log.error("background job failed", exc_info=value)
            except Exception:  # a bug in a callback must not stop the poll loop
                log.exception("GUI callback failed")
        return n

    def close(self) -> None:
        self._closed = True
        if self._after_id is not None:
            with contextlib.suppress(tk.TclError):
                self._root.after_cancel(self._after_id)
        for q in self._lanes.values():
            q.put(None)


_SKIPPED = object()


def _stale(job: _Job, latest: dict[str, int]) -> bool:
    return job.key is not None and latest.get(job.key) != job.ticket


def _work(
    q: queue.SimpleQueue[_Job | None],
    results: queue.SimpleQueue[tuple[_Job, bool, Any]],
    latest: dict[str, int],
) -> None:
    """A lane's thread: run its jobs in order, handing each outcome to ``results``. A job
    (whose closure may hold widgets) is let go of as soon as it is handed over, so the Tk
    thread, which drains ``results``, is the one that frees it."""
    # Background lanes yield the CPU to the Tk thread on a busy machine (bench_gui.py: longest
    # stall 143/108 ms with nice 10 vs 189/145 ms with 0, two runs each, load ~5 on 2 cores).
    nice = int(os.environ.get("AIDETECT_GUI_LANE_NICE", "10"))
    if nice and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        with contextlib.suppress(OSError):  # Linux: a thread's own nice value
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    while True:
        job = q.get()
        if job is None:
            return
        if _stale(job, latest):
            results.put((job, True, _SKIPPED))
        else:
            try:
                results.put((job, True, job.fn()))
            except BaseException as exc:  # noqa: BLE001 - delivered to the Tk thread
                results.put((job, False, exc))
                del exc
        del job
