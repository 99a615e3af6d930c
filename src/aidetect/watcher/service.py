"""The inbox watcher: watchdog observer -> completeness tracker -> debouncer -> sink.

The sink receives lists of complete file paths (absolute ``str``); in production it is
:func:`aidetect.watcher.pipeline.register_and_enqueue`. The watcher itself knows nothing of
the store or the broker, so its rules are tested with a plain list as the sink.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from aidetect.errors import AidetectError
from aidetect.watcher.batcher import Debouncer
from aidetect.watcher.names import is_candidate
from aidetect.watcher.tracker import CompletenessTracker

log = logging.getLogger("aidetect.watcher")

Sink = Callable[[list[str]], object]
RETRY_FIRST_S = 1.0  # a failed hand-off is tried again after this, doubling each time
RETRY_MAX_S = 60.0


class InboxWatcher:
    """Watch ``inbox`` (recursively) and hand complete files to ``sink`` in batches.

    Start-up scan: files already in the inbox are handed to the sink too (the sink
    de-duplicates by content hash), except those ``known(paths)`` says already have a final
    result; those modified in the last ``settle_s`` seconds go through the completeness
    check first, as they may still be being written.
    """

    def __init__(
        self,
        inbox: str | Path,
        sink: Sink,
        *,
        polling: bool = False,
        debounce_s: float = 0.3,
        max_wait_s: float = 1.0,
        max_batch: int = 512,
        poll_interval_s: float = 0.5,
        settle_s: float = 1.0,
        quiet_s: float = 10.0,
        skip_output_dirs: bool = True,
        tick_s: float = 0.05,
        known: Callable[[list[str]], set[str]] | None = None,
    ) -> None:
        self.inbox = Path(inbox).resolve()
        self.sink = sink
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.skip_output_dirs = skip_output_dirs
        self.tick_s = tick_s
        self.known = known
        self.settle_s = settle_s
        self.tracker = CompletenessTracker(
            polling=polling, stable_s=max(2 * poll_interval_s, 0.2), settle_s=settle_s, quiet_s=quiet_s
        )
        self.debouncer = Debouncer(quiet_s=debounce_s, max_wait_s=max_wait_s, max_items=max_batch)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Observer | PollingObserver | None = None  # type: ignore[valid-type]
        self.handed_off = 0
        self.errors = 0
        self.retries = 0
        # batches whose hand-off failed (store locked, broker down): (when to try again, attempt, paths)
        self._retry: list[tuple[float, int, list[str]]] = []

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        observer = PollingObserver(timeout=self.poll_interval_s) if self.polling else Observer()
        observer.schedule(_Handler(self), str(self.inbox), recursive=True)
        try:
            observer.start()
        except OSError as exc:  # inotify watch / instance limits
            raise AidetectError(
                f"cannot watch {self.inbox}: {exc}; use the polling observer (--polling or "
                "AIDETECT_WATCH_POLLING=1)"
            ) from exc
        self._observer = observer
        # Scan after the observer runs, so a file landing meanwhile is not missed
        # (seen twice at worst, which the content hash de-duplicates).
        self._startup_scan()
        self._thread = threading.Thread(target=self._loop, name="aidetect-watcher", daemon=True)
        self._thread.start()
        log.info("watching %s (%s)", self.inbox, "polling" if self.polling else "inotify")

    def stop(self, flush: bool = True) -> None:
        """Stop watching; with ``flush`` hand off what is complete and waiting."""
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if flush:
            with self._lock:
                ready = self.tracker.poll()
                self.debouncer.add(ready)
                batch = self.debouncer.due(force=True)
            self._hand_off(batch, final=True)
            self._retry_due(force=True)

    def __enter__(self) -> InboxWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        return bool(
            self._thread
            and self._thread.is_alive()
            and self._observer
            and self._observer.is_alive()
        )

    # -- internals ----------------------------------------------------------------------
    def _startup_scan(self) -> None:
        now = time.time()
        fresh: list[str] = []
        settled: list[str] = []
        for path in self._walk():
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            (fresh if now - mtime < self.settle_s else settled).append(path)
        skipped = 0
        if self.known is not None and settled:
            known: set[str] = set()
            for i in range(0, len(settled), 1000):
                known |= self.known(settled[i : i + 1000])
            skipped = len(known)
            settled = [p for p in settled if p not in known]
        with self._lock:
            for p in fresh:
                self.tracker.seen(p)  # stable for settle_s, or closed by its writer
            self.debouncer.add(settled)
        if settled or fresh:
            log.info(
                "start-up scan: %d new files in the inbox (%d still settling), %d already scored",
                len(settled) + len(fresh),
                len(fresh),
                skipped,
            )

    def _walk(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.inbox):
            dirnames[:] = sorted(
                d
                for d in dirnames
                if is_candidate(Path(dirpath, d, "x"), self.inbox, self.skip_output_dirs)
            )
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                # not only regular files: a FIFO or a symlink loop gets a failed row with its reason
                if is_candidate(path, self.inbox, self.skip_output_dirs) and not os.path.isdir(path):
                    yield path

    def on_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        src = os.fsdecode(event.src_path)
        with self._lock:
            if isinstance(event, FileMovedEvent):
                self.tracker.gone(src)
                dest = os.fsdecode(event.dest_path)
                if dest and self._wanted(dest):
                    self.tracker.complete(dest)
            elif isinstance(event, FileClosedEvent):
                if self._wanted(src):
                    self.tracker.complete(src)
            elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
                if self._wanted(src):
                    self.tracker.seen(src, wrote=isinstance(event, FileModifiedEvent))
            elif isinstance(event, FileDeletedEvent):
                self.tracker.gone(src)

    def _wanted(self, path: str) -> bool:
        return is_candidate(path, self.inbox, self.skip_output_dirs)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            with self._lock:
                ready = self.tracker.poll()
                self.debouncer.add(ready)
                batch = self.debouncer.due()
            self._hand_off(batch)
            self._retry_due()

    def _retry_due(self, force: bool = False) -> None:
        """Hand off again the failed batches whose wait is over (all of them with ``force``)."""
        now = time.monotonic()
        due = [r for r in self._retry if force or r[0] <= now]
        if not due:
            return
        self._retry = [r for r in self._retry if not (force or r[0] <= now)]
        for _when, attempt, batch in due:
            self.retries += 1
            self._hand_off(batch, attempt + 1, final=force)

    def _hand_off(self, batch: list[str], attempt: int = 0, final: bool = False) -> None:
        """Give ``batch`` to the sink. A failure (the store locked past its busy timeout, the
        broker down) is retried by this running watcher after RETRY_FIRST_S, doubling up to
        RETRY_MAX_S, for as long as it runs; what is still failing at stop is picked up by the
        next start's scan of the inbox. (Hand-written rather than a retry library: the retries
        must not block the loop that keeps watching.)"""
        if not batch:
            return
        try:
            self.sink(batch)
            self.handed_off += len(batch)
            if attempt:
                log.info("handed off %d files at attempt %d", len(batch), attempt + 1)
            return
        except AidetectError as exc:
            self.errors += 1
            reason = str(exc)
        except Exception as exc:  # the watcher must keep running
            self.errors += 1
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.debug("hand-off failed", exc_info=True)
        if final:
            log.error("could not hand off %d files: %s (they are picked up at next start)", len(batch), reason)
            return
        wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2**attempt)
        self._retry.append((time.monotonic() + wait, attempt, batch))
        log.warning("could not hand off %d files: %s (trying again in %.0f s)", len(batch), reason, wait)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: InboxWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher.on_event(event)
