"""The window's bookkeeping, on rows written straight into a real store (no model needed):
the table's selection and the result view always agree (after a filter, a page change or an
upload), Ctrl+Q / Ctrl+W close the window as its close button does, and the status bar counts
worker nodes and their processes and shows no progress bar while nothing runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.gui.conftest import add_row, pump, settle

from aidetect.gui.detail import NOT_IN_VIEW
from aidetect.gui.upload import UploadResult

pytestmark = pytest.mark.timeout(120)


def _agree(app) -> bool:
    """The result view shows the selected row, or (nothing selected) nothing or an image
    with the note that it is not in the table's view."""
    sel, shown, note = app.tree.selection(), app.detail.row, app.detail.note_text
    if sel:
        return shown is not None and shown.key == sel[0] and not note
    return shown is None or note == NOT_IN_VIEW


def _loaded(app, before: int, what: str) -> None:
    pump(app, lambda: app.table.page_loads > before and not app.table.loading, 20, what)
    settle(app, 0.1)


def _key_of(app, name: str) -> str:
    return next(k for k, r in app.table.rows.items() if r.name == name)


@pytest.fixture
def three(aidetect_home: Path, mini_dir: Path, dashboard):
    """The dashboard with alpha, beta and gamma in its store, on screen."""
    ids = {
        n: add_row(aidetect_home, f"{n}.jpg", src=mini_dir / "ai" / f"ai_{i:03d}.jpg")
        for i, n in enumerate(("alpha", "beta", "gamma"))
    }
    app = dashboard
    pump(app, lambda: app.table.total == 3 and not app.table.loading, 20, "3 rows")
    return app, ids


def test_a_filter_that_removes_the_shown_image_says_so(three) -> None:
    app, _ids = three
    beta = _key_of(app, "beta.jpg")
    app.tree.selection_set(beta)
    pump(app, lambda: app.detail.row is not None and app.detail.row.key == beta, 10, "beta shown")
    assert _agree(app)

    before = app.table.page_loads
    app.search_var.set("alpha")  # beta leaves the table
    _loaded(app, before, "the name filter")
    assert list(app.table.rows) == [_key_of(app, "alpha.jpg")]
    assert app.tree.selection() == ()
    assert app.detail.row.key == beta and app.detail.note_text == NOT_IN_VIEW
    assert app.detail.note.winfo_ismapped()
    assert _agree(app)

    before = app.table.page_loads
    app.clear_filters()  # back in view: selected again, the note gone
    _loaded(app, before, "the cleared filter")
    assert app.tree.selection() == (beta,)
    assert app.detail.row.key == beta and app.detail.note_text == ""
    assert _agree(app)

    # selecting another row replaces the shown one
    alpha = _key_of(app, "alpha.jpg")
    app.tree.selection_set(alpha)
    pump(app, lambda: app.detail.row.key == alpha, 10, "alpha shown")
    assert _agree(app)


def test_after_an_upload_the_table_highlights_the_image_shown(three) -> None:
    app, ids = three
    alpha = _key_of(app, "alpha.jpg")
    app.tree.selection_set(alpha)
    pump(app, lambda: app.detail.row is not None and app.detail.row.key == alpha, 10, "alpha shown")

    # an upload of gamma (what _uploaded gets once the files are scored): gamma is selected
    before = app.table.page_loads
    app._uploaded(UploadResult([ids["gamma"]], "inline", 1, {"done": 1}))
    _loaded(app, before, "the page after the upload")
    gamma = _key_of(app, "gamma.jpg")
    pump(app, lambda: app.detail.row is not None and app.detail.row.key == gamma, 10, "gamma shown")
    assert app.tree.selection() == (gamma,)
    assert _agree(app)
    assert app.toolbar.activity.cget("text") == "Scored 1 image in this window (no worker running)"

    # an upload the filters hide: shown with the note, and the table highlights nothing
    # (before, it kept alpha highlighted while showing the upload)
    before = app.table.page_loads
    app.search_var.set("alpha")
    _loaded(app, before, "the name filter")
    app.tree.selection_set(_key_of(app, "alpha.jpg"))
    pump(app, lambda: app.detail.row.key == alpha, 10, "alpha shown")
    before = app.table.page_loads
    app._uploaded(UploadResult([ids["beta"]], "inline", 2, {"done": 1, "failed": 1}))
    _loaded(app, before, "the page after the hidden upload")
    pump(app, lambda: app.detail.row.file_id == ids["beta"], 10, "beta shown")
    assert app.tree.selection() == ()
    assert app.detail.note_text == NOT_IN_VIEW
    assert _agree(app)
    assert app.toolbar.activity.cget("text") == "Scored 1 of 2 images; 1 failed (see the table)"


def test_turning_the_page_keeps_them_in_step(aidetect_home: Path, mini_dir: Path, dashboard) -> None:
    app = dashboard
    app.table.page_size = 4
    for i in range(6):
        add_row(aidetect_home, f"img_{i}.jpg", src=mini_dir / "real" / f"real_{i:03d}.jpg", label="real", prob_ai=0.1)
    pump(app, lambda: app.table.total == 6 and not app.table.loading, 20, "6 rows")
    app.refresh()
    pump(app, lambda: len(app.table.rows) == 4 and not app.table.loading, 20, "a page of 4")
    first = app.tree.get_children()[0]
    app.tree.selection_set(first)
    pump(app, lambda: app.detail.row is not None and app.detail.row.key == first, 10, "first shown")
    before = app.table.page_loads
    app.table.next_btn.invoke()  # the button selects nothing on the new page
    _loaded(app, before, "page 2")
    assert app.tree.selection() == () and app.detail.note_text == NOT_IN_VIEW
    assert _agree(app)
    before = app.table.page_loads
    app.table.prev_btn.invoke()
    _loaded(app, before, "page 1")
    assert app.tree.selection() == (first,) and _agree(app)


@pytest.mark.parametrize("keys", ["<Control-q>", "<Control-w>"])
def test_ctrl_q_and_ctrl_w_close_the_window(aidetect_home: Path, keys: str) -> None:
    from aidetect.gui.app import Dashboard

    app = Dashboard(live_ms=300, status_ms=400)
    pump(app, lambda: app.table.page_loads > 0, 30, "the first page")
    app.root.focus_force()
    app.tree.focus_set()
    settle(app, 0.2)
    app.tree.event_generate(keys)
    assert app.closed
    with pytest.raises(Exception, match="destroyed|bad window|invalid command"):
        app.root.winfo_exists()
    assert not app.scorer.running and app.runner._closed
    app.close()  # again: nothing happens


def test_status_bar_counts_nodes_and_processes(aidetect_home: Path, dashboard) -> None:
    """``aidetect up`` runs one worker node with 2 processes (its heartbeat's concurrency)."""
    from aidetect.store import session_scope
    from aidetect.store.tables import WorkerBeat

    app = dashboard
    assert not app.toolbar.busy and not app.toolbar.progress.winfo_ismapped()  # idle: no bar
    with session_scope() as s:
        s.add(WorkerBeat(name="celery@test", pid=4242, concurrency=2, last_seen=datetime.now(UTC)))
    pump(app, lambda: app.workers_label.cget("text") == "Workers: 1 node, 2 processes", 20,
         f"the worker count (have {app.workers_label.cget('text')!r})")
    app.toolbar.working("Scoring in this window: 1/4", 25)
    settle(app, 0.1)
    assert app.toolbar.busy and app.toolbar.progress.winfo_ismapped()
    app.toolbar.say("done")
    settle(app, 0.1)
    assert not app.toolbar.progress.winfo_ismapped()
