"""Row thumbnails: decoded on the ``thumb`` lane, turned into Tk images on the Tk thread and
kept in a least-recently-used cache, so paging back and forth decodes nothing twice."""

from __future__ import annotations

import tkinter as tk
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from PIL import Image, ImageTk

from aidetect.gui import imaging
from aidetect.gui.tasks import TaskRunner

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

CAPACITY = 1500  # Tk images kept (~15 pages of 100 rows)
_BATCH = 10  # thumbnails handed to the Tk thread at once


class LruCache(Generic[K, V]):
    """At most ``capacity`` values; a read makes its key the newest, a write beyond capacity
    drops the oldest."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def missing(self, keys: Iterable[K]) -> list[K]:
        """The distinct ``keys`` not cached, in first-seen order."""
        return [k for k in dict.fromkeys(keys) if k not in self._items]


class Thumbnails:
    """Thumbnails by file path for the table. :meth:`photo` answers at once (a grey
    placeholder until decoded); :meth:`request` decodes the missing ones in the background
    and calls ``on_ready`` with the paths that got a picture."""

    def __init__(
        self,
        master: tk.Misc,
        runner: TaskRunner,
        on_ready: Callable[[set[str]], None],
        capacity: int = CAPACITY,
    ) -> None:
        self.master = master
        self.runner = runner
        self.on_ready = on_ready
        self.cache: LruCache[str, ImageTk.PhotoImage] = LruCache(capacity)
        self.placeholder = ImageTk.PhotoImage(
            Image.new("RGB", (imaging.THUMB_SIDE, imaging.THUMB_SIDE), (225, 228, 232)),
            master=master,
        )
        self._gen = 0

    def photo(self, path: str) -> ImageTk.PhotoImage:
        photo = self.cache.get(path)
        return self.placeholder if photo is None else photo

    def request(self, paths: Iterable[str]) -> None:
        """Decode the thumbnails of ``paths`` not cached yet; a newer request stops an older
        one between files."""
        self._gen += 1
        gen = self._gen
        todo = self.cache.missing(paths)
        if not todo:
            return

        def job() -> None:
            batch: list[tuple[str, Image.Image]] = []
            for path in todo:
                if gen != self._gen:
                    return
                try:
                    batch.append((path, imaging.thumbnail(path)))
                except Exception:  # noqa: BLE001 - a missing file keeps the placeholder
                    continue
                if len(batch) >= _BATCH:
                    self.runner.call_soon(self._apply, batch)
                    batch = []
            if batch:
                self.runner.call_soon(self._apply, batch)

        self.runner.submit("thumb", job)

    def _apply(self, batch: list[tuple[str, Image.Image]]) -> None:
        for path, pil in batch:
            self.cache.put(path, ImageTk.PhotoImage(pil, master=self.master))
        self.on_ready({p for p, _ in batch})
