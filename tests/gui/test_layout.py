"""The window at the sizes it supports, down to its minimum of 1024x640: every label, button
and field is on screen whole (not squeezed, not reaching past the window or its pane), the
filter fields keep a usable width, long text wraps or is cut with an ellipsis, the table's
cells fit their columns, and the status bar is inside the window. The store holds what made
the window overflow before: long file names, failed files with long reasons, an uncertain
verdict with its heatmap. (``tests/gui/screenshots.py`` takes the pictures of it.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.gui.conftest import add_row, clipped, pump, screenshot, settle, widget_tree

pytestmark = pytest.mark.timeout(180)

LONG = "holiday_2024_summer_trip_to_the_mountains_with_the_whole_family_and_friends"
BOMB = "refused: 20000000000 pixels is over the decompression bomb limit of 89478485"
LEAVES = {
    "Label", "TLabel", "TButton", "TEntry", "TCombobox", "TSpinbox", "TCheckbutton", "TScale",
    "TProgressbar",
}


def _fill(home: Path, mini_dir: Path) -> None:
    for i in range(8):
        add_row(home, f"{LONG}_IMG_2024081{i}_1{i}3512.jpg", src=mini_dir / "ai" / f"ai_{i:03d}.jpg")
        add_row(home, f"real_{i:03d}.jpg", src=mini_dir / "real" / f"real_{i:03d}.jpg", label="real", prob_ai=0.02)
    add_row(home, f"{LONG}_panorama_stitched_from_forty_frames.png", label=None, error=BOMB)
    add_row(home, "scanned_document_from_the_office_printer_final_version.jpg", label=None,
            error="truncated or corrupt (image file is truncated (17 bytes not processed))")
    add_row(home, f"{LONG}_unsure_IMG_20240812_183512.jpg", src=mini_dir / "ai" / "ai_011.jpg",
            prob_ai=0.642, uncertain=True, reason="outside training data", cam=True)


def _open(size: tuple[int, int]):
    from aidetect.gui.app import Dashboard

    app = Dashboard(size=size, live_ms=300, status_ms=400)
    pump(app, lambda: app.table.page_loads > 0 and not app.table.loading, 60, "the first page")
    return app


def _select(app, part: str) -> None:
    key = next(k for k, r in app.table.rows.items() if part in r.name)
    app.tree.selection_set(key)
    app.tree.see(key)
    pump(app, lambda: app.detail.row is not None and app.detail.row.key == key, 10, "the row")
    pump(app, lambda: app.detail.rendered is not None or app.detail.row.error, 30, "the picture")
    settle(app, 0.5)


def _nothing_cut(app) -> None:
    root = app.root
    cut = {
        str(w): why
        for w in widget_tree(root)
        if w.winfo_class() in LEAVES and w.winfo_ismapped() and (why := clipped(w))
    }
    assert not cut, cut
    # the table's cells fit their columns (long ones elided with "…")
    cols = app.table.columns
    for cid, width in cols.widths.items():
        assert app.tree.column(cid, "width") == width
        for key in app.tree.get_children():
            text = str(app.tree.set(key, cid))
            assert cols.measure(text) <= width - 8, (cid, text, width)
    assert sum(cols.widths.values()) <= app.tree.winfo_width()


@pytest.mark.parametrize("size", [(1024, 640), (1280, 800)])
def test_nothing_is_cut(aidetect_home: Path, mini_dir: Path, size: tuple[int, int]) -> None:
    _fill(aidetect_home, mini_dir)
    app = _open(size)
    try:
        root = app.root
        assert (root.winfo_width(), root.winfo_height()) == size
        _select(app, "unsure")
        d = app.detail
        # the uncertain verdict, said in full and wrapped to the pane
        said = d.confidence_text.cget("text")
        assert said.startswith("leans AI (64.2 %), outside training data") and said.endswith("(P(ai)\u00a0=\u00a00.642)")
        assert d.verdict.cget("text") == "UNDECIDED" and d.uncertain.winfo_ismapped()
        content = d.winfo_width() - 2 * 10
        for label in (d.confidence_text, d.meta, d.caveat, d.reason):
            assert 0 < int(label.cget("wraplength")) <= content
        assert d.title.cget("text") != d.row.name and "…" in d.title.cget("text")  # one line
        assert d.has_heatmap
        # the filter fields keep a usable width
        fb = app.filter_bar
        assert fb.search_entry.winfo_width() >= 140
        for w in (fb.conf_min, fb.conf_max):
            assert w.winfo_ismapped() and w.winfo_width() >= 45
        for w in (fb.since_entry, fb.until_entry, *fb.boxes.values()):
            assert w.winfo_ismapped() and w.winfo_width() >= 50
        # the status bar and the pager inside the window
        sb = app.status_bar
        assert sb.winfo_rooty() + sb.winfo_height() <= root.winfo_rooty() + root.winfo_height()
        assert app.table.query_time.cget("text").startswith("page read in ")
        assert d.winfo_width() >= 390
        # no progress bar while nothing runs
        assert not app.toolbar.busy and not app.toolbar.progress.winfo_ismapped()
        _nothing_cut(app)
        screenshot(app, f"layout-{size[0]}x{size[1]}")

        _select(app, "panorama")  # a failed file: its long reason wraps
        assert d.reason.cget("text") == f"Reason: {BOMB}"
        _nothing_cut(app)

        # a long activity line wraps beside the buttons
        app.toolbar.fail("the store could not be read: " + "a long explanation " * 12)
        settle(app, 0.3)
        _nothing_cut(app)
        # the person drags the sash far right: the result view keeps its minimum
        app.panes.sashpos(0, root.winfo_width())
        app.panes.event_generate("<ButtonRelease-1>")
        settle(app, 0.3)
        assert app.detail.winfo_width() >= 390
        _nothing_cut(app)
    finally:
        app.close()
