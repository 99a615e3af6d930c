"""Scoring uploads when no worker is alive, in a helper process the dashboard owns.

The scoring itself is :func:`aidetect.ingest.score_inline`, the same code as the Celery task.
It runs in a child process rather than a thread of the window's process because importing
torch and loading the model hold the interpreter lock for long stretches: measured in a
thread, the Tk main loop stalled for up to 573 ms (p99 144 ms) during a 64-image upload;
a child process has its own interpreter lock, so the window keeps its 10 ms heartbeat
(``benchmarks/bench_gui.py``). The child starts on the first such upload and then stays,
with the model loaded, until the window closes.

The child never outlives the window's process, however that ends (``kill``, a crash): on
Linux it asks the kernel for SIGTERM when its parent goes (``prctl(PR_SET_PDEATHSIG)``), and on
every system a watchdog thread in it exits when the parent's end of the start-up pipe closes
or its parent pid changes (re-parented: the parent is gone).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from aidetect.errors import AidetectError

_POLL_S = 0.5
_WATCH_S = 1.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _parent_alive(parent_pid: int) -> bool:
    if os.getppid() != parent_pid:
        return False
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours to signal
        return True
    return True


def _watch_parent(parent_pid: int) -> None:
    """The child's watchdog thread: exit the process once the parent is gone."""
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    sentinel = getattr(parent, "sentinel", None)  # readable (EOF) when the parent's end closes
    while True:
        if sentinel is not None:
            if wait([sentinel], timeout=_WATCH_S) and _parent_alive(parent_pid):
                sentinel = None  # ready while the parent lives: not a signal; poll instead
        else:
            time.sleep(_WATCH_S)
        if not _parent_alive(parent_pid):
            os._exit(0)


def die_with_parent(parent_pid: int) -> None:
    """In the child: end this process when the process ``parent_pid`` ends.

    The kernel's parent-death signal fires when the *thread* that started the child ends: here
    the window's ``score`` lane, which lives as long as the window (and ends when it closes,
    which is when the child should go anyway). ``AIDETECT_GUI_PDEATHSIG=0`` leaves the
    watchdog alone to do it (how the tests check it)."""
    if sys.platform.startswith("linux") and os.environ.get("AIDETECT_GUI_PDEATHSIG", "1") != "0":
        with contextlib.suppress(Exception):  # no libc / prctl: the watchdog still works
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if not _parent_alive(parent_pid):  # it died before prctl took effect
        os._exit(0)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True
    ).start()


def _serve(requests: Any, replies: Any, parent_pid: int | None = None) -> None:
    """The child: score each list of ids it is sent, reporting progress, until ``None``."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
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
            args=(self._requests, self._replies, os.getpid()),
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
            proc, replies = self._proc, self._replies
            self._requests.put(list(ids))
            while True:
                try:
                    kind, value = replies.get(timeout=_POLL_S)
                except queue.Empty:
                    if not proc.is_alive():
                        if self._proc is proc:
                            self._proc = None
                        raise AidetectError(
                            f"the scoring process stopped (exit code {proc.exitcode})"
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

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self.running else None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the child: asked to finish when idle, terminated when it is scoring (the
        window is closing; the work is lost either way)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.is_alive():
            if self._lock.locked():  # busy: it would read the request only when done
                proc.terminate()
            else:
                with contextlib.suppress(OSError, ValueError):
                    self._requests.put(None)
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)
        for q in (self._requests, self._replies):
            if q is not None:
                q.close()
                q.cancel_join_thread()
