"""Scoring uploads when no worker is alive, in a helper process the dashboard owns.

The scoring itself is :func:`aidetect.ingest.score_inline`, the same code as the Celery task.
It runs in a child process rather than a thread of the window's process because importing
torch and loading the model hold the interpreter lock for long stretches: measured in a
thread, the Tk main loop stalled for up to 573 ms (p99 144 ms) during a 64-image upload;
a child process has its own interpreter lock, so the window keeps its 10 ms heartbeat
(``benchmarks/bench_gui.py``). The child starts on the first such upload and then stays,
with the model loaded, until the window closes.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from aidetect.errors import AidetectError

_POLL_S = 0.5


def _serve(requests: Any, replies: Any) -> None:
    """The child: score each list of ids it is sent, reporting progress, until ``None``."""
    from aidetect.config import get_settings

    if get_settings().torch_threads <= 0:  # leave a core for the window's own thread
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    from aidetect import ingest

    while True:
        try:
            ids = requests.get()
        except (EOFError, OSError):  # the window's process is gone
            return
        if ids is None:
            return
        try:
            totals = ingest.score_inline(
                ids, batch_size=8, progress=lambda n: replies.put(("progress", n))
            )
            replies.put(("done", totals))
        except AidetectError as exc:
            replies.put(("error", str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the window as one line
            replies.put(("error", f"{type(exc).__name__}: {exc}"))


class InlineScorer:
    """A lazily started child process that scores image ids with ``ingest.score_inline``."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")  # never fork a process that runs Tk
        self._proc: Any = None
        self._requests: Any = None
        self._replies: Any = None
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._requests = self._ctx.Queue()
        self._replies = self._ctx.Queue()
        self._proc = self._ctx.Process(
            target=_serve,
            args=(self._requests, self._replies),
            name="aidetect-gui-scorer",
            daemon=True,
        )
        self._proc.start()

    def score(
        self, ids: Sequence[int], progress: Callable[[int], None] | None = None
    ) -> dict[str, int]:
        """Blocking (call it off the Tk thread): score ``ids``; ``progress(n)`` after each batch."""
        with self._lock:
            self._ensure()
            self._requests.put(list(ids))
            while True:
                try:
                    kind, value = self._replies.get(timeout=_POLL_S)
                except queue.Empty:
                    if not self._proc.is_alive():
                        code = self._proc.exitcode
                        self._proc = None
                        raise AidetectError(
                            f"the scoring process stopped (exit code {code})"
                        ) from None
                    continue
                if kind == "progress":
                    if progress is not None:
                        progress(int(value))
                elif kind == "done":
                    return dict(value)
                else:
                    raise AidetectError(str(value))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self._requests.put(None)
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout)
        for q in (self._requests, self._replies):
            if q is not None:
                q.close()
                q.cancel_join_thread()
