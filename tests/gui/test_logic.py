"""The dashboard's logic that needs no window: parsing the filter bar, the table's cells and
tags, sorting by a heading, paging arithmetic, the selection after a reload, the thumbnail
cache and the status bar's text."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, date, datetime

import pytest

from aidetect.config import redact_url
from aidetect.gui import tablemodel as tm
from aidetect.gui.filterbar import FilterFields, parse_filters
from aidetect.gui.statusbar import StatusReading, short_url, status_texts
from aidetect.gui.thumbs import LruCache
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
    texts = status_texts(StatusReading(model=model, workers=2, queue_read=True, queue=5))
    assert texts == {
        "queue": "Queue: 5 batches",
        "workers": "Workers: 2 alive",
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


def test_short_url_names_the_store_without_its_password() -> None:
    assert short_url("sqlite:////home/me/.aidetect/aidetect.db") == "Store: aidetect.db"
    assert short_url("postgresql://u:secret@db.local:5432/aid") == "Store: postgresql://db.local:5432/aid"
    assert redact_url("redis://:pw@h:6379/0") == "redis://h:6379/0" and redact_url("filesystem://") == "filesystem://"
