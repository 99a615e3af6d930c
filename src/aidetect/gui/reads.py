"""The dashboard's one door to the store: every read it makes goes through
:class:`StoreReader` (the page and its count, one row, the live-update marker, the CSV export,
the active model) and so does creating the store. Called on the background lanes only.

The dashboard shows the store's ``history`` view (``aidetect.store.results``): one row per
file and stored prediction, read through the store's reader engine (never waits for a
writer)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aidetect.blobs import blob_layer
from aidetect.blobs.heatmaps import localize
from aidetect.gui.tablemodel import Paging
from aidetect.store import read_engine, results
from aidetect.store.results import ResultFilter, ResultRow
from aidetect.store.status import ModelInfo, active_model_info, change_marker, status_counts


@dataclass
class Page:
    """One page of the table as read: its rows, where it starts, the view's size, the
    filter it was read with, the store's change marker then, and how long the read took."""

    rows: list[ResultRow]
    offset: int
    total: int
    filters: ResultFilter
    marker: tuple[int, str] = (0, "")
    seconds: float = 0.0


class StoreReader:
    """Reads of the store at ``db_url``."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def _engine(self) -> Any:
        return read_engine(self.db_url)

    def init_store(self) -> None:
        """Create or upgrade the store's tables (a fresh home has none)."""
        from aidetect.store import init_db

        init_db(self.db_url)

    def page(self, filters: ResultFilter, offset: int, limit: int) -> Page:
        """The rows at ``offset`` (moved back onto the last page when the view shrank), the
        view's count, the live-update marker and how long it took."""
        t0 = time.perf_counter()
        eng = self._engine()
        mark = change_marker(eng)
        total = results.count(eng, filters)
        off = Paging(offset, total, limit).clamped()
        rows = results.fetch_page(eng, filters, off, limit, total=total)
        return Page(rows, off, total, filters, mark, time.perf_counter() - t0)

    def marker(self) -> tuple[int, str]:
        return change_marker(self._engine())

    def row(self, key: str) -> ResultRow | None:
        return results.fetch_row(self._engine(), key)

    def row_of_file(self, file_id: int) -> ResultRow | None:
        """The newest row of a file (an upload shows the file it was given)."""
        return results.fetch_row(self._engine(), f"f{file_id}")

    def export_csv(self, filters: ResultFilter, target: Path) -> int:
        rows = results.iter_rows(self._engine(), filters)
        return results.export(localize(list(rows)) if blob_layer() is not None else rows, target)

    def status_counts(self, file_ids: list[int]) -> dict[str, int]:
        """{status: files} over ``file_ids`` (how an upload went)."""
        if not file_ids:
            return {}
        return status_counts(file_ids)

    def active_model(self) -> ModelInfo | None:
        return active_model_info(self._engine())
