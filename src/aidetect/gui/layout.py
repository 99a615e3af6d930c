"""How the window fits its space, without Tk: rows of a wrapping bar, the table's column
widths (dropping the least needed columns when the table is narrow), text elided to a width,
and where the sash between the table and the result view may go. The widgets
(:mod:`~aidetect.gui.flow`, :mod:`~aidetect.gui.table`, :mod:`~aidetect.gui.app`) measure and
apply; these functions decide. Widths are pixels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

ELLIPSIS = "…"
# The result view never gets narrower than this, nor the table (the sash stops there).
MIN_DETAIL = 400
MIN_TABLE = 460
TABLE_SHARE = 0.63  # of the width, when the window first shows


def flow(widths: Sequence[int], avail: int, gap: int = 0) -> list[list[int]]:
    """Items of ``widths``, in order, broken into rows no wider than ``avail`` (``gap``
    between neighbours): the fewest rows for that order. An item wider than ``avail`` gets
    a row of its own."""
    rows: list[list[int]] = []
    used = 0
    for i, w in enumerate(widths):
        if rows and used + gap + w <= avail:
            rows[-1].append(i)
            used += gap + w
        else:
            rows.append([i])
            used = w
    return rows


@dataclass(frozen=True)
class ColumnSpec:
    """A table column: never narrower than ``min``, happy at ``want``; ``drop`` says when it
    is hidden on a narrow table (1 first; None: always shown); ``grow``: takes what is left,
    and a ``soft`` column is hidden too when it would leave a ``grow`` column under ``keep``."""

    cid: str
    min: int
    want: int
    drop: int | None = None
    grow: bool = False
    keep: int = 0
    soft: bool = False


def fit_columns(specs: Sequence[ColumnSpec], avail: int) -> dict[str, int]:
    """The columns to show, in ``specs`` order, with their widths (summing to ``avail`` when
    they fit). Columns are dropped, lowest ``drop`` first, until the minimum widths fit, and
    ``soft`` ones also while a ``grow`` column would get less than its ``keep``; the room
    left goes to the ``grow`` columns up to their ``keep``, then is shared out towards each
    column's ``want`` (in proportion to what each lacks), and what is left after that goes to
    the ``grow`` columns."""
    shown = list(specs)
    droppable = sorted((s for s in specs if s.drop is not None), key=lambda s: s.drop or 0)
    while sum(s.min for s in shown) > avail and droppable:
        shown.remove(droppable.pop(0))

    def cramped() -> bool:
        growers = [s for s in shown if s.grow]
        rest = avail - sum(s.min for s in shown if not s.grow)
        return bool(growers) and rest < sum(max(s.min, s.keep) for s in growers)

    soft = [s for s in droppable if s.soft]
    while soft and cramped():
        shown.remove(soft.pop(0))
    widths = {s.cid: s.min for s in shown}
    room = avail - sum(widths.values())
    if room <= 0:
        return widths
    for s in shown:  # a grow column gets to its keep width first
        if s.grow:
            add = min(room, max(0, s.keep - s.min))
            widths[s.cid] += add
            room -= add
    lack = {s.cid: max(0, s.want - widths[s.cid]) for s in shown}
    total_lack = sum(lack.values())
    if total_lack:
        share = min(1.0, room / total_lack)
        for cid, n in lack.items():
            widths[cid] += int(n * share)
    room = avail - sum(widths.values())
    growers = [s.cid for s in shown if s.grow] or [shown[-1].cid]
    for i, cid in enumerate(growers):
        widths[cid] += room // len(growers) + (1 if i < room % len(growers) else 0)
    return widths


def elide(text: str, width: int, measure: Callable[[str], int], middle: bool = False) -> str:
    """``text`` if it fits ``width``, else the longest cut of it with an ellipsis that does:
    its end cut off, or with ``middle`` its middle (a file name keeps its extension)."""
    if measure(text) <= width:
        return text
    if measure(ELLIPSIS) > width:
        return ""

    def cut(n: int) -> str:
        if not middle:
            return text[:n] + ELLIPSIS
        tail = min(len(text) - n, max(1, n // 3)) if n else 0
        head = n - tail
        return text[:head] + ELLIPSIS + (text[len(text) - tail :] if tail else "")

    lo, hi = 0, len(text) - 1  # characters kept: the largest n whose cut fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(cut(mid)) <= width:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


def first_sash(total: int) -> int:
    """Where the sash goes when the window first shows: the table gets
    :data:`TABLE_SHARE` of ``total``, within the limits of :func:`clamp_sash`."""
    return clamp_sash(int(total * TABLE_SHARE), total)


def clamp_sash(pos: int, total: int, min_table: int = MIN_TABLE, min_detail: int = MIN_DETAIL) -> int:
    """``pos`` moved so the result view keeps ``min_detail`` and the table ``min_table``;
    when both cannot, the result view wins (its text wraps, the table's columns drop)."""
    return max(min(pos, total - min_detail), min(min_table, max(0, total - min_detail)))


def wrap_width(width: int, pad: int = 0, least: int = 80) -> int:
    """A label's ``wraplength`` for a space ``width`` wide with ``pad`` taken off each side."""
    return max(least, width - 2 * pad)


def legend_bar_width(avail: int, left: int, right: int, gap: int, least: int = 40, most: int = 160) -> int:
    """The colour bar between the legend's two captions: what the row leaves, within
    ``least`` .. ``most``."""
    return max(least, min(most, avail - left - right - 2 * gap))
