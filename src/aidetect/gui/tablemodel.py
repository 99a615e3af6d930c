"""What the browse table shows, without Tk: its columns, a row's cell values and colour tags,
the headings' sort arrows, the next sort order, the paging arithmetic and which row to select
after a page loads. :mod:`aidetect.gui.table` puts these on screen."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aidetect.gui.layout import ColumnSpec, elide
from aidetect.store.results import ResultFilter, ResultRow
from aidetect.store.tables import STATUSES
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
# What a column must fit besides its heading (with a sort arrow); the name and model columns
# fit their longest text when there is room and are elided (with a tooltip) when not.
_SAMPLES: dict[str, tuple[str, ...]] = {
    "label": ("real?",),
    "confidence": ("100.0 %",),
    "uncertain": ("yes",),
    "time": ("2026-12-31 23:59",),
    "status": STATUSES,
}
# Hidden on a narrow table, first to last; what they say stays in the result view (and the
# label's "?" and the row's colour say "uncertain").
_DROP = {"uncertain": 1, "model_version": 2, "time": 3}
NAME_MIN_CHARS = "abcdefghij.jpg"  # the file column is never narrower than this text
NAME_KEEP_CHARS = "abcdefghijklmnopqrstuvw.jpg"  # "uncertain" is hidden before it gets narrower
MODEL_MIN = "npr_resnet…"
_NAME_MOST = 400
CELL_PAD = 16  # a cell's text to its column's edges, both sides together


def row_values(r: ResultRow) -> tuple[str, ...]:
    """The cells of ``r``, in :data:`COLUMNS` order."""
    conf = r.confidence
    return (
        r.name,
        short_label(r.label, r.prob_ai, r.uncertain, r.decided_by),
        f"{conf * 100:.1f} %" if conf is not None else "–",
        "yes" if r.uncertain else ("no" if r.uncertain is not None else "–"),
        r.model_version or "–",
        r.time.strftime("%Y-%m-%d %H:%M") if r.time else "–",
        r.status,
    )


_SAYS = {"ai": "says AI", "real": "says real", "none": "notes"}


def provenance_text(row: ResultRow) -> str:
    """What the file's own metadata says, in plain words, one line per item, for the
    result view: e.g. "Provenance decided: AI" then "• C2PA manifest: made with ChatGPT
    (OpenAI); certificate untrusted". Empty when the file was not read for it (failed,
    pending, or scored before provenance was read)."""
    if row.evidence is None or row.status != "done":
        return ""
    if not row.evidence:
        return "Provenance: the file's metadata says nothing about its origin (stripped metadata proves nothing)"
    head = (f"Provenance decided: {str(row.label).upper()} (the pixel model's P(ai) is shown above)"
            if row.decided_by == "provenance" else "Provenance: nothing decisive; the pixel model decided")
    items = [f"• {e.get('detail', '')}" + (f"  [{_SAYS.get(e.get('says', ''), '')}]" if e.get("says") == "ai" else "")
             for e in row.evidence]
    return "\n".join([head, *items])


def column_specs(
    measure: Callable[[str], int],
    rows: Iterable[ResultRow],
    heading_measure: Callable[[str], int] | None = None,
    sort: str | None = None,
) -> list[ColumnSpec]:
    """How wide each column must and would like to be for ``rows``, in :data:`COLUMNS`
    order, with ``measure`` the cells' font (``heading_measure`` the headings'); the
    ``sort`` column's heading has an arrow to fit too."""
    head = heading_measure or measure
    values = [row_values(r) for r in rows]
    specs = []
    for i, (cid, heading, _w, _a) in enumerate(COLUMNS):
        least = head(heading + (" ▼" if cid == sort else "")) + CELL_PAD
        texts = [v[i] for v in values]
        longest = max((measure(t) for t in texts), default=0) + CELL_PAD
        if cid == "name":
            low = max(least, measure(NAME_MIN_CHARS) + CELL_PAD)
            keep = measure(NAME_KEEP_CHARS) + CELL_PAD
            want = max(low, min(longest, _NAME_MOST))
            specs.append(ColumnSpec(cid, low, want, grow=True, keep=min(keep, want)))
        elif cid == "model_version":
            low = max(least, measure(MODEL_MIN) + CELL_PAD)
            specs.append(ColumnSpec(cid, low, max(low, longest), drop=_DROP[cid]))
        else:
            need = max([least, longest] + [measure(t) + CELL_PAD for t in _SAMPLES[cid]])
            specs.append(ColumnSpec(cid, need, need, drop=_DROP.get(cid), soft=cid == "uncertain"))
    return specs


def fit_values(
    values: Sequence[str], widths: Mapping[str, int], measure: Callable[[str], int]
) -> tuple[str, ...]:
    """``values`` (:data:`COLUMNS` order) cut with an ellipsis to the shown columns'
    ``widths``: a file name in its middle (its extension stays), the rest at the end."""
    out = []
    for (cid, *_rest), text in zip(COLUMNS, values, strict=True):
        width = widths.get(cid)
        fits = width is None or measure(text) <= width - CELL_PAD
        out.append(text if fits else elide(text, (width or 0) - CELL_PAD, measure, middle=cid == "name"))
    return tuple(out)


def cell_tip(row: ResultRow, cid: str, shown: str, hidden: Iterable[str] = ()) -> str | None:
    """The tooltip over the cell ``cid`` of ``row`` showing ``shown``: a failed image's
    reason, a cut text in full, or what a hidden column would say; None: nothing to add."""
    if row.status == "failed":
        return f"{row.name}\nFailed: {row.error or 'no reason given'}"
    full = dict(zip((c[0] for c in COLUMNS), row_values(row), strict=True))
    if cid in full and shown != full[cid]:
        return full[cid]
    hidden = set(hidden)
    extra = []
    if "uncertain" in hidden and row.uncertain:
        extra.append(f"uncertain ({row.uncertain_reason or 'low confidence'})")
    if "model_version" in hidden and row.model_version:
        extra.append(f"model {row.model_version}")
    return " · ".join(extra) or None


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
    in the result view although no row of this page holds it; neither when both are None
    (nothing is selected, and a result view showing a row that is not on the page says so)."""

    key: str | None = None
    file_id: int | None = None


def pick_selection(
    want: str | None, file_id: int | None, rows: Mapping[str, ResultRow], shown: ResultRow | None
) -> Pick:
    """The selection after a reload. ``want`` is the key selected before (or ``"first"`` /
    ``"last"`` after a page change), ``file_id`` an uploaded file to show, ``rows`` the
    new page in table order, ``shown`` the row in the result view. A file whose row changed
    (queued -> scored) is followed, and the row in the result view is selected again when
    it is back on the page (a filter cleared, a page turned back)."""
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
    elif not want and shown is not None:
        if shown.key in rows:
            want = shown.key
        elif shown.prediction_id is None:
            want = row_of(shown.file_id)
    if want == "first" and keys:
        want = keys[0]
    elif want == "last" and keys:
        want = keys[-1]
    return Pick(key=want if want in rows else None)
