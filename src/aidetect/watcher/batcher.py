"""Debounce: many files arriving together become a few batched hand-offs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Debouncer:
    """Collects paths; :meth:`due` releases them once arrivals pause for ``quiet_s``, or the
    oldest has waited ``max_wait_s``, or ``max_items`` are waiting (a steady stream still
    flows, a burst becomes one hand-off)."""

    quiet_s: float = 0.3
    max_wait_s: float = 1.0
    max_items: int = 512
    clock: Callable[[], float] = time.monotonic
    _items: dict[str, None] = field(default_factory=dict)  # ordered set
    _first: float = 0.0
    _last: float = 0.0

    def add(self, paths: list[str]) -> None:
        if not paths:
            return
        now = self.clock()
        if not self._items:
            self._first = now
        self._last = now
        for p in paths:
            self._items[p] = None

    def due(self, force: bool = False) -> list[str]:
        if not self._items:
            return []
        now = self.clock()
        if (
            force
            or len(self._items) >= self.max_items
            or now - self._last >= self.quiet_s
            or now - self._first >= self.max_wait_s
        ):
            out = list(self._items)
            self._items.clear()
            return out
        return []

    def __len__(self) -> int:
        return len(self._items)
