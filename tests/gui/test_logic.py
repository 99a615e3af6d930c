"""The dashboard's logic that needs no window: parsing the filter bar, the table's cells and
tags, sorting by a heading, paging arithmetic, the selection after a reload, the thumbnail
cache, the status bar's text, the layout arithmetic (wrapping bars, column widths, eliding,
the sash) and the activity line after an upload."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, date, datetime

import pytest

from aidetect.config import redact_url
from aidetect.gui import layout as lay
from aidetect.gui import tablemodel as tm
from aidetect.gui.filterbar import FilterFields, parse_filters
from aidetect.gui.statusbar import (
    StatusReading,
    short_url,
    status_texts,
    worker_processes,
    workers_text,
)
from aidetect.gui.thumbs import LruCache
from aidetect.gui.upload import UploadResult, upload_summary
from aidetect.store.results import ResultFilter, ResultRow
from aidetect.store.status import ModelInfo


def _row(**kw: object) -> ResultRow:
    """A table row with every field the store gives; ``kw`` overrides."""
    values: dict[str, object] = {f.name: None for f in fields(ResultRow)}
    values.update(
        file_id=1,
        image_id=1,
        path="/photos/holiday/beach.jpg",
        status="done",
        label="ai",
        prob_ai=0.9,
        uncertain=False,
        model_version="v2",
        time=datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
    )
    values.update(kw)
    return ResultRow(**values)  # type: ignore[arg-type]


# -- filter bar -------------------------------------------------------------------------
def test_cleared_bar_filters_nothing_and_keeps_the_sort() -> None:
    base = ResultFilter(sort="confidence", descending=False)
    parsed = parse_filters(FilterFields(), base)
    assert parsed.filters == base
    assert parsed.invalid == frozenset()


def test_entered_fields_become_filters() -> None:
    parsed = parse_filters(
        FilterFields(
            text="  IMG_01 ",
            label="real",
            status="failed",
            uncertain="no",
            conf_min="80",
            conf_max=" 95.5 ",
            since="2025-01-02",
            until="2025-01-31",
        )
    )
    f = parsed.filters
    assert (f.text, f.label, f.status, f.uncertain) == ("IMG_01", "real", "failed", False)
    assert f.conf_min == pytest.approx(0.8) and f.conf_max == pytest.approx(0.955)
    assert (f.since, f.until) == (date(2025, 1, 2), date(2025, 1, 31))
    assert parsed.invalid == frozenset()
    assert parse_filters(FilterFields(uncertain="yes")).filters.uncertain is True


@pytest.mark.parametrize(
    ("entered", "bad"),
    [
        (FilterFields(conf_min="abc"), "conf_min"),
        (FilterFields(conf_min="-5"), "conf_min"),
        (FilterFields(conf_max="101"), "conf_max"),
        (FilterFields(conf_max="nan"), "conf_max"),
        (FilterFields(since="yesterday"), "since"),
        (FilterFields(until="2025-02-30"), "until"),
    ],
)
def test_a_field_that_does_not_parse_is_named_and_ignored(entered: FilterFields, bad: str) -> None:
    parsed = parse_filters(entered)
    assert parsed.invalid == {bad}
    assert parsed.filters == ResultFilter()


def test_full_confidence_range_or_empty_fields_mean_no_filter() -> None:
    parsed = parse_filters(FilterFields(conf_min="", conf_max="100.0", since="  ", until=""))
    assert parsed.filters == ResultFilter() and not parsed.invalid


# -- table cells, tags, tm.headings, sorting -----------------------------------------------
def test_row_values_follow_the_columns() -> None:
    assert len(tm.row_values(_row())) == len(tm.COLUMNS)
    assert tm.row_values(_row()) == ("beach.jpg", "ai", "90.0 %", "no", "v2", "2025-03-04 05:06", "done")
    leans_real = tm.row_values(_row(label="real", prob_ai=0.3, uncertain=True))
    assert leans_real[2:4] == ("70.0 %", "yes")
    queued = tm.row_values(
        _row(status="queued", label=None, prob_ai=None, uncertain=None, model_version=None, time=None)
    )
    assert queued[2:] == ("–", "–", "–", "–", "queued")


def test_row_tags_colour_label_failure_pending_and_doubt() -> None:
    assert tm.row_tags(_row()) == ("ai",)
    assert tm.row_tags(_row(label="real", uncertain=True)) == ("real", "uncertain")
    assert tm.row_tags(_row(status="failed", label=None, error="not an image")) == ("failed",)
    assert tm.row_tags(_row(status="queued", label=None)) == ("pending",)


def test_result_view_redraws_only_when_the_row_changed() -> None:
    shown = _row()
    assert not tm.needs_reshow(replace(shown), shown)
    assert tm.needs_reshow(replace(shown, prob_ai=0.6), shown)
    assert tm.needs_reshow(replace(shown, cam_path="/h/ab.cam.png"), shown)


def test_sorting_by_a_heading() -> None:
    by_time = ResultFilter()
    by_name = tm.sorted_by(by_time, "name")
    assert (by_name.sort, by_name.descending) == ("name", False)
    assert tm.sorted_by(by_name, "name").descending is True  # again: reversed
    by_conf = tm.sorted_by(by_name, "confidence")
    assert (by_conf.sort, by_conf.descending) == ("confidence", True)  # largest first
    assert tm.headings(by_conf)["confidence"] == "Confidence ▼"
    assert tm.headings(tm.sorted_by(by_conf, "confidence"))["confidence"] == "Confidence ▲"
    assert tm.headings(by_conf)["name"] == "File"


# -- paging -------------------------------------------------------------------------------
def test_paging_arithmetic() -> None:
    first = tm.Paging(0, 30, 12)
    assert (first.prev(), first.next(), first.last()) == (None, 12, 24)
    assert first.span(12) == "1–12 of 30" and first.more_after(12)
    last = tm.Paging(24, 30, 12)
    assert (last.prev(), last.next()) == (12, None)
    assert last.span(6) == "25–30 of 30" and not last.more_after(6)
    assert tm.Paging(5, 30, 12).prev() == 0  # after a page-size change: never below 0
    assert tm.Paging(36, 30, 12).clamped() == 24  # the view shrank under the page
    assert tm.Paging(12, 30, 12).clamped() == 12
    empty = tm.Paging(0, 0, 100)
    assert (empty.last(), empty.next(), empty.span(0)) == (0, None, "0–0 of 0")
    assert tm.Paging(0, 100_000, 100).span(100) == "1–100 of 100,000"


# -- selection after a reload -------------------------------------------------------------
def _page(*rows: ResultRow) -> dict[str, ResultRow]:
    return {r.key: r for r in rows}


def test_selection_kept_first_last_and_none() -> None:
    a, b = _row(file_id=1, image_id=1, prediction_id=10), _row(file_id=2, image_id=2, prediction_id=20)
    page = _page(a, b)
    assert tm.pick_selection(b.key, None, page, None).key == b.key
    assert tm.pick_selection("first", None, page, None).key == a.key
    assert tm.pick_selection("last", None, page, None).key == b.key
    assert tm.pick_selection("first", None, {}, None).key is None
    assert tm.pick_selection(None, None, page, None).key is None


def test_selection_follows_an_upload_and_a_newly_scored_image() -> None:
    a = _row(file_id=1, image_id=1, prediction_id=10)
    queued = _row(file_id=2, image_id=2, prediction_id=None, status="queued", label=None)
    scored = _row(file_id=2, image_id=2, prediction_id=21)
    page = _page(a, scored)
    assert tm.pick_selection(None, 2, page, None).key == scored.key  # the uploaded file's row
    assert tm.pick_selection(None, 7, page, None).file_id == 7  # not on this page: show it anyway
    # the shown image was queued and is scored now: its new row is selected
    assert tm.pick_selection(queued.key, None, page, queued).key == scored.key
    assert tm.pick_selection(None, None, page, queued).key == scored.key
    # a selected row gone from the page, its image nowhere on it: nothing to select
    assert tm.pick_selection("f9p90", None, _page(a), _row(file_id=9, image_id=9)).key is None


def test_the_image_in_the_result_view_is_selected_again_when_back_in_view() -> None:
    """A filter took the shown row off the page (nothing selected, the view says so); when
    the filter is cleared or the page turned back, that row is selected again."""
    a, b = _row(file_id=1, image_id=1, prediction_id=10), _row(file_id=2, image_id=2, prediction_id=20)
    assert tm.pick_selection(b.key, None, _page(a), b) == tm.Pick()  # filtered out: none
    assert tm.pick_selection(None, None, _page(a, b), b).key == b.key  # back: selected
    # an upload the filters hide: shown by its file, nothing selected
    assert tm.pick_selection(a.key, 7, _page(a, b), a) == tm.Pick(file_id=7)


# -- thumbnail cache ------------------------------------------------------------------------
def test_lru_cache_keeps_the_recently_used() -> None:
    cache: LruCache[str, int] = LruCache(capacity=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the newest
    cache.put("c", 3)  # drops the oldest: "b"
    assert "b" not in cache and len(cache) == 2
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert cache.missing(["c", "d", "a", "d", "e"]) == ["d", "e"]


# -- status bar ---------------------------------------------------------------------------
def test_status_texts() -> None:
    model = ModelInfo("v2", 0.9698, "test accuracy on cifake")
    texts = status_texts(StatusReading(model=model, workers=1, processes=2, queue_read=True, queue=5))
    assert texts == {
        "queue": "Queue: 5 batches",
        "workers": "Workers: 1 node, 2 processes",
        "model": "Model: v2 · test accuracy on cifake: 96.98 %",
    }
    no_worker = status_texts(StatusReading(workers=0, queue_read=True, queue=None))
    assert no_worker == {
        "queue": "Queue: n/a",
        "workers": "Workers: none (uploads are scored in this window)",
    }
    down = status_texts(StatusReading(broker_error="Error 111 connecting to localhost:6379"))
    assert down == {"queue": "Queue: unavailable (Error 111 connecting to localhost:6379)"}
    assert status_texts(StatusReading(model=ModelInfo("v1", None, "accuracy")))["model"] == (
        "Model: v1 · accuracy: n/a"
    )
    assert status_texts(StatusReading()) == {}


def test_workers_are_counted_as_nodes_and_their_processes() -> None:
    """``aidetect up`` runs one worker node with 2 processes: its heartbeat's concurrency."""
    up = [{"name": "celery@host", "pid": 10, "concurrency": 2}]
    assert worker_processes(up) == 2
    assert workers_text(1, worker_processes(up)) == "Workers: 1 node, 2 processes"
    two = up + [{"name": "celery@other", "pid": 11, "concurrency": 1}]
    assert workers_text(2, worker_processes(two)) == "Workers: 2 nodes, 3 processes"
    assert workers_text(1, 1) == "Workers: 1 node, 1 process"
    assert worker_processes([{"name": "old", "pid": 1, "concurrency": None}]) is None
    assert workers_text(1, None) == "Workers: 1 node, processes unknown"
    assert workers_text(0, 0) == "Workers: none (uploads are scored in this window)"


def test_short_url_names_the_store_without_its_password() -> None:
    assert short_url("sqlite:////home/me/.aidetect/aidetect.db") == "Store: aidetect.db"
    assert short_url("postgresql://u:secret@db.local:5432/aid") == "Store: postgresql://db.local:5432/aid"
    assert redact_url("redis://:pw@h:6379/0") == "redis://h:6379/0" and redact_url("filesystem://") == "filesystem://"


# -- layout ---------------------------------------------------------------------------------
def test_flow_breaks_rows_where_the_next_item_does_not_fit() -> None:
    assert lay.flow([100, 100, 100], 1000, gap=10) == [[0, 1, 2]]
    assert lay.flow([100, 100, 100], 210, gap=10) == [[0, 1], [2]]
    assert lay.flow([100, 100, 100], 209, gap=10) == [[0], [1], [2]]
    assert lay.flow([300, 50], 200) == [[0], [1]]  # too wide: a row of its own
    assert lay.flow([], 100) == []


def _specs(sort: str | None = "time") -> list[lay.ColumnSpec]:
    measure = lambda text: 7 * len(text)  # noqa: E731 - a monospaced font
    rows = [_row(path="/p/" + "x" * 60 + ".jpg", model_version="efficientnet_lite-dac71e34da29")]
    return tm.column_specs(measure, rows, sort=sort)


def test_columns_fit_a_narrow_table_by_hiding_the_least_needed() -> None:
    specs = _specs()
    by = {s.cid: s for s in specs}
    assert by["time"].min >= 7 * len("2026-12-31 23:59") + tm.CELL_PAD  # never cut
    assert by["status"].min >= 7 * len("processing") + tm.CELL_PAD
    assert by["name"].grow and by["name"].want > by["name"].min
    wide = lay.fit_columns(specs, 2000)
    assert list(wide) == [c[0] for c in tm.COLUMNS] and sum(wide.values()) == 2000
    assert wide["model_version"] == by["model_version"].want  # room for every text
    mins = sum(s.min for s in specs)
    # a little narrower than every column's minimum: "uncertain" goes first
    fit = lay.fit_columns(specs, mins - 1)
    assert "uncertain" not in fit and sum(fit.values()) == mins - 1
    assert all(fit[s.cid] >= s.min for s in specs if s.cid in fit)
    # narrower still: then the model column, then the time; never name, label, confidence, status
    always = sum(by[c].min for c in ("name", "label", "confidence", "status"))
    assert list(lay.fit_columns(specs, always + by["time"].min)) == ["name", "label", "confidence", "time", "status"]
    assert list(lay.fit_columns(specs, always)) == ["name", "label", "confidence", "status"]
    assert list(lay.fit_columns(specs, 10)) == ["name", "label", "confidence", "status"]
    # "uncertain" also gives way while the name column would be under its comfortable width
    cramped = mins + by["name"].keep - by["name"].min - 1
    assert "uncertain" not in lay.fit_columns(specs, cramped)
    assert "uncertain" in lay.fit_columns(specs, mins + by["name"].keep - by["name"].min + 200)


def test_the_sorted_heading_gets_room_for_its_arrow() -> None:
    by_time = {s.cid: s.min for s in _specs("time")}
    by_label = {s.cid: s.min for s in _specs("label")}
    assert by_label["label"] > by_time["label"]


def test_cells_are_elided_to_their_column() -> None:
    measure = lambda text: 7 * len(text)  # noqa: E731
    row = _row(path="/p/holiday_2024_summer_trip_to_the_mountains_IMG_0001.jpg")
    widths = {"name": 7 * 20 + tm.CELL_PAD, "label": 60, "confidence": 100, "status": 80}
    shown = tm.fit_values(tm.row_values(row), widths, measure)
    assert len(shown[0]) == 20 and "…" in shown[0] and shown[0].endswith(".jpg")
    assert shown[1:] == tm.row_values(row)[1:]  # the others fit (hidden ones are kept whole)
    assert lay.elide("short.jpg", 200, measure) == "short.jpg"
    assert lay.elide("abcdefghij", 7 * 5, measure) == "abcd…"
    assert lay.elide("abcdefghij", 3, measure) == ""
    # the tooltip says it in full, a failed image's reason, what hidden columns would say
    assert tm.cell_tip(row, "name", shown[0]) == row.name
    assert tm.cell_tip(row, "name", row.name) is None
    failed = _row(status="failed", label=None, prob_ai=None, error="truncated or corrupt (x)")
    assert tm.cell_tip(failed, "status", "failed") == f"{failed.name}\nFailed: truncated or corrupt (x)"
    unsure = _row(uncertain=True, uncertain_reason="low confidence")
    assert tm.cell_tip(unsure, "label", "ai?", hidden=["uncertain", "model_version"]) == (
        "uncertain (low confidence) · model v2"
    )


def test_the_sash_keeps_both_panes_usable() -> None:
    assert lay.first_sash(1900) == int(1900 * lay.TABLE_SHARE)
    assert lay.first_sash(1012) == 1012 - lay.MIN_DETAIL  # 1024 wide: the result view keeps 400
    assert lay.clamp_sash(950, 1012) == 1012 - lay.MIN_DETAIL
    assert lay.clamp_sash(100, 1012) == lay.MIN_TABLE
    assert lay.clamp_sash(700, 800) == 800 - lay.MIN_DETAIL  # both cannot: the result view wins
    assert lay.wrap_width(420, 10) == 400 and lay.wrap_width(50, 10) == 80
    assert lay.legend_bar_width(400, 150, 140, 6) == 98
    assert lay.legend_bar_width(1000, 150, 140, 6) == 160 and lay.legend_bar_width(100, 150, 140, 6) == 40


# -- upload summary -----------------------------------------------------------------------
def test_the_upload_summary_counts_what_became_of_the_files() -> None:
    def said(mode: str, files: int, **counts: int) -> str:
        return upload_summary(UploadResult(list(range(files)), mode, files, dict(counts)))

    assert said("inline", 5, done=4, failed=1) == "Scored 4 of 5 images; 1 failed (see the table)"
    assert said("inline", 5, done=5) == "Scored 5 images in this window (no worker running)"
    assert said("inline", 1, done=1) == "Scored 1 image in this window (no worker running)"
    assert said("inline", 2, failed=2) == "Scored 0 of 2 images; 2 failed (see the table)"
    assert said("inline", 3, done=1, queued=2) == "Scored 1 of 3 images; 2 not scored (see the table)"
    assert said("workers", 3, queued=3) == "Sent 3 images to the workers; results appear as they finish"
    assert said("known", 2, done=1, failed=1) == "2 images already in the store; 1 of them failed (see the table)"
    assert said("known", 1, done=1) == "1 image already in the store"


def test_a_short_name_column_is_filled_before_the_others_grow() -> None:
    specs = [
        lay.ColumnSpec("name", 100, 150, grow=True, keep=150),
        lay.ColumnSpec("model", 100, 300, drop=2),
    ]
    assert lay.fit_columns(specs, 260) == {"name": 150, "model": 110}
    assert lay.fit_columns(specs, 220) == {"name": 120, "model": 100}
    wide = lay.fit_columns(specs, 1000)
    assert wide["model"] == 300 and wide["name"] == 700


def test_provenance_text_says_who_decided_in_plain_words() -> None:
    item = {"kind": "c2pa", "says": "ai", "generator": "ChatGPT",
            "detail": "C2PA manifest: made with ChatGPT (OpenAI); certificate untrusted"}
    decided = _row(label="ai", prob_ai=0.2, decided_by="provenance", evidence=[item])
    text = tm.provenance_text(decided)
    assert text.splitlines()[0].startswith("Provenance decided: AI")
    assert "made with ChatGPT" in text and "says AI" in text
    assert tm.row_values(decided)[1] == "ai (file)"
    camera = _row(decided_by="model", evidence=[{"kind": "exif", "says": "none", "generator": None,
                                                  "detail": "camera: Canon EOS R5"}])
    assert "the pixel model decided" in tm.provenance_text(camera) and "Canon EOS R5" in tm.provenance_text(camera)
    assert "says nothing" in tm.provenance_text(_row(evidence=[]))
    assert tm.provenance_text(_row(evidence=None)) == ""  # scored before provenance was read
    assert tm.provenance_text(_row(status="failed", evidence=[item])) == ""


def test_result_view_marks_what_the_model_did_not_see(tmp_path) -> None:  # noqa: ANN001
    """The dashboard re-blends the saved raw CAM: parts the model did not see (alpha 0 in the
    file) come out gray and hatched, never in heat colours, as in the overlay files."""
    import numpy as np
    from PIL import Image

    from aidetect.explain.overlay import cam_file_array, read_cam_png, write_image
    from aidetect.gui.detail import _Source, render

    cam = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    cam[:, 32:] = np.nan  # the right half was not seen
    path = tmp_path / "x.cam.png"
    write_image(path, cam_file_array(cam))
    picture = Image.new("RGB", (200, 200), (230, 40, 40))  # red: heat colours and the picture differ from gray
    src = _Source(_row(cam_path=str(path)), picture, read_cam_png(path), None, None)
    out = np.asarray(render(src, (200, 200), show_heat=True, alpha=0.45, side=False)).astype(int)
    right, left = out[:, 110:], out[:, :90]
    assert (np.abs(right[..., 0] - right[..., 2]) <= 2).all()  # gray (R == B) where not seen
    assert np.abs(left[..., 0] - left[..., 2]).mean() > 20  # coloured where seen
