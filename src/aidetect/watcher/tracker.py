"""File completeness: decide when a file in the inbox is finished being written.

A file is complete when
- a writer closed it after writing (inotify ``closed`` event), or
- it was renamed into place (``moved`` event, its ``dest_path``), or
- (polling observer, or a ``created`` event with no close, e.g. a file moved in from
  outside the watched tree) its size and mtime stayed the same across two checks.

A ``created``/``modified`` event about a file already handed off whose size and mtime are
still those it had then is stale (the polling observer compares snapshots, and a snapshot
taken late reports a write the tracker already waited out): it is ignored, so a file is
handed off once. A file that really changed after its hand-off is tracked again.

The tracker is pure bookkeeping with an injected clock, so its rules are testable
without sleeping; :mod:`aidetect.watcher.service` feeds it watchdog events.
"""

from __future__ import annotations

import errno
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

HANDED_MEMORY = 100_000  # handed-off paths whose size + mtime are remembered (the most recent)


@dataclass
class _Pending:
    first_seen: float
    last_event: float
    saw_write: bool = False
    last_stat: tuple[int, int] | None = None
    last_check: float = 0.0


@dataclass
class CompletenessTracker:
    """Collects events per path and answers which paths are complete now.

    ``polling``: size+mtime must be unchanged across two checks ``stable_s`` apart.
    inotify: paths finish on ``closed``/``moved``; a path seen only as ``created`` (moved in
    from outside, hard-linked) is complete once non-empty and unchanged for ``settle_s``;
    a path written to but never closed (rare: mmap writers) after ``quiet_s`` of quiet.
    """

    polling: bool = False
    stable_s: float = 1.0
    settle_s: float = 1.0
    quiet_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    stat: Callable[[str], tuple[int, int] | None] = field(default=None)  # type: ignore[assignment]
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _ready: list[str] = field(default_factory=list)
    _handed: OrderedDict[str, tuple[int, int]] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.stat is None:
            self.stat = _stat

    # -- events -------------------------------------------------------------------------
    def seen(self, path: str, wrote: bool = False) -> None:
        """A ``created`` (wrote=False) or ``modified`` (wrote=True) event."""
        if path in self._handed:
            if self.stat(path) == self._handed[path]:
                return  # about the file as it was handed off: a late snapshot, not a new write
            del self._handed[path]
        now = self.clock()
        entry = self._pending.get(path)
        if entry is None:
            entry = self._pending[path] = _Pending(first_seen=now, last_event=now)
        entry.last_event = now
        entry.saw_write = entry.saw_write or wrote

    def complete(self, path: str) -> None:
        """A ``closed`` event or the destination of a ``moved`` event: ready now."""
        self._handed.pop(path, None)
        self._pending.pop(path, None)
        self._ready.append(path)

    def gone(self, path: str) -> None:
        """A ``deleted`` event, or the source of a ``moved`` event."""
        self._handed.pop(path, None)
        self._pending.pop(path, None)

    # -- checks -------------------------------------------------------------------------
    def poll(self) -> list[str]:
        """Paths that became complete since the last call (each once, in arrival order)."""
        now = self.clock()
        for path, entry in list(self._pending.items()):
            st = self.stat(path)
            if st is None:  # vanished without a delete event (polling): forget it
                del self._pending[path]
                continue
            if self._is_stable(entry, st, now):
                del self._pending[path]
                self._ready.append(path)
        ready, self._ready = self._ready, []
        seen: set[str] = set()
        out = [p for p in ready if not (p in seen or seen.add(p))]
        for p in out:
            st = self.stat(p)
            if st is not None:
                self._handed[p] = st
                self._handed.move_to_end(p)
        while len(self._handed) > HANDED_MEMORY:
            self._handed.popitem(last=False)
        return out

    def _is_stable(self, entry: _Pending, st: tuple[int, int], now: float) -> bool:
        changed = st != entry.last_stat
        if changed:
            entry.last_stat = st
            entry.last_check = now
            return False
        unchanged_for = now - entry.last_check
        quiet_for = now - entry.last_event
        if self.polling:
            return unchanged_for >= self.stable_s
        if not entry.saw_write and st[0] > 0:
            return unchanged_for >= self.settle_s and quiet_for >= self.settle_s
        return unchanged_for >= self.quiet_s and quiet_for >= self.quiet_s

    @property
    def pending(self) -> int:
        return len(self._pending)


def _stat(path: str) -> tuple[int, int] | None:
    """(size, mtime) of what ``path`` leads to; of the link itself for a symlink loop (it is
    complete as it is, and registration fails it with that reason); None when it is gone."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return None
        try:
            st = os.lstat(path)
        except OSError:
            return None
    return (st.st_size, st.st_mtime_ns)
