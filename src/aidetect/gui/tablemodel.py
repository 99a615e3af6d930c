"""What the browse table shows, without Tk: its columns, a row's cell values and colour tags,
the headings' sort arrows, the next sort order, the paging arithmetic and which row to select
after a page loads. :mod:`aidetect.gui.table` puts these on screen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aidetect.store.results import ResultFilter, ResultRow
from aidetect.wording import short_label

COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    # id, heading, width, anchor
    ("name", "File", 104, "w"),
    ("label", "Label", 52, "center"),
    ("confidence", "Confidence", 110, "e"),
    ("uncertain", "Uncertain", 86, "center"),
    ("model_version", "Model", 86, "w"),
    ("time", "Time", 135, "w"),
    ("status", "Status", 62, "center"),
)
# Sorting by one of these starts with the largest first.
_DESCENDING_FIRST = ("time", "confidence")


def row_values(r: ResultRow) -> tuple[str, ...]:
    """The cells of ``r``, in :data:`COLUMNS` order."""
    conf = r.confidence
    return (
        r.name,
        short_label(r.label, r.prob_ai, r.uncertain),
        f"{conf * 100:.1f} %" if conf is not None else "–",
        "yes" if r.uncertain else ("no" if r.uncertain is not None else "–"),
        r.model_version or "–",
        r.time.strftime("%Y-%m-%d %H:%M") if r.time else "–",
        r.status,
    )


def row_tags(r: ResultRow) -> tuple[str, ...]:
    """The Treeview tags that colour ``r``: its label, failed or pending, and uncertain."""
    tags: list[str] = []
    if r.status == "failed":
        tags.append("failed")
    elif r.label is None:
        tags.append("pending")
    else:
        tags.append(r.label)
    if r.uncertain:
        tags.append("uncertain")
    return tuple(tags)


def needs_reshow(row: ResultRow, shown: ResultRow) -> bool:
    """Whether the result view showing ``shown`` must redraw for the reloaded ``row``."""
    return row_values(row) != row_values(shown) or row.cam_path != shown.cam_path


def sorted_by(filters: ResultFilter, column: str) -> ResultFilter:
    """``filters`` after a click on ``column``'s heading: the same column again reverses the
    order; a new one sorts by it (time and confidence largest first)."""
    if filters.sort == column:
        return filters.with_(descending=not filters.descending)
    return filters.with_(sort=column, descending=column in _DESCENDING_FIRST)


def headings(filters: ResultFilter) -> dict[str, str]:
    """Each column's heading text, the sorted one with ▼ (descending) or ▲."""
    out: dict[str, str] = {}
    for cid, heading, _w, _a in COLUMNS:
        arrow = ""
        if cid == filters.sort:
            arrow = " ▼" if filters.descending else " ▲"
        out[cid] = heading + arrow
    return out


@dataclass(frozen=True)
class Paging:
    """A page's place in the filtered view: first row ``offset`` of ``total``, ``size`` a page."""

    offset: int
    total: int
    size: int

    def last(self) -> int:
        """Offset of the last page (0 for an empty view)."""
        return max(0, (self.total - 1) // self.size * self.size)

    def clamped(self) -> int:
        """``offset``, moved back to the last page when the view has shrunk below it."""
        return min(self.offset, self.last())

    def prev(self) -> int | None:
        """Offset of the page before, or None on the first page."""
        return max(0, self.offset - self.size) if self.offset > 0 else None

    def next(self) -> int | None:
        """Offset of the page after, or None on the last page."""
        after = self.offset + self.size
        return after if after < self.total else None

    def more_after(self, shown: int) -> bool:
        """Whether rows follow the ``shown`` rows of this page."""
        return self.offset + shown < self.total

    def span(self, shown: int) -> str:
        """The pager's text, e.g. ``13–24 of 30``."""
        first = self.offset + 1 if shown else 0
        return f"{first:,}–{self.offset + shown:,} of {self.total:,}"


@dataclass(frozen=True)
class Pick:
    """Which row to select after a page loads: ``key`` on this page, or ``file_id`` (a file) to show
    in the result view although no row of this page holds it; neither when both are None."""

    key: str | None = None
    file_id: int | None = None


def pick_selection(
    want: str | None, file_id: int | None, rows: Mapping[str, ResultRow], shown: ResultRow | None
) -> Pick:
    """The selection after a reload. ``want`` is the key selected before (or ``"first"`` /
    ``"last"`` after a page change), ``file_id`` an uploaded file to show, ``rows`` the
    new page in table order, ``shown`` the row in the result view. A file whose row changed
    (queued -> scored) is followed."""
    keys = list(rows)

    def row_of(file_id: int) -> str | None:
        return next((k for k in keys if rows[k].file_id == file_id), None)

    if file_id is not None:
        hit = row_of(file_id)
        if hit is None:
            return Pick(file_id=file_id)
        want = hit
    if want and want not in ("first", "last") and want not in rows and shown is not None:
        want = row_of(shown.file_id)
    elif not want and shown is not None and shown.prediction_id is None:
        hit = row_of(shown.file_id)
        if hit is not None and hit != shown.key:
            want = hit
    if want == "first" and keys:
        want = keys[0]
    elif want == "last" and keys:
        want = keys[-1]
    return Pick(key=want if want in rows else None)
