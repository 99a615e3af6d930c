"""The filter bar above the table: name, label, status, uncertain, confidence range and date
range. :func:`parse_filters` turns the entered strings into a
:class:`~aidetect.store.results.ResultFilter` (no window needed); :class:`FilterBar` holds the
widgets, marks fields that do not parse and reports changes after a typing pause."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date

import ttkbootstrap as tb

from aidetect.gui.flow import FlowFrame
from aidetect.store.results import ResultFilter
from aidetect.store.tables import STATUSES

ANY = "any"
DEBOUNCE_MS = 250
SEARCH_CHARS = 18  # the name field is never narrower


@dataclass(frozen=True)
class FilterFields:
    """The filter bar's fields as entered; the defaults are the cleared bar."""

    text: str = ""
    label: str = ANY  # ANY | "ai" | "real"
    status: str = ANY  # ANY | one of STATUSES
    uncertain: str = ANY  # ANY | "yes" | "no"
    conf_min: str = "0"  # percent
    conf_max: str = "100"
    since: str = ""  # YYYY-MM-DD, UTC
    until: str = ""  # inclusive


@dataclass(frozen=True)
class ParsedFilters:
    filters: ResultFilter
    invalid: frozenset[str]  # FilterFields names that did not parse (and were ignored)


def parse_filters(entered: FilterFields, base: ResultFilter | None = None) -> ParsedFilters:
    """``base`` (its sort order kept) with the entered fields. A percentage outside 0-100 or
    not a number, or a date not ``YYYY-MM-DD``, is ignored and named in ``invalid``; the full
    0-100 % range means no confidence filter."""
    invalid: set[str] = set()

    def pct(name: str, text: str, default: float) -> float | None:
        text = text.strip()
        try:
            v = float(text) if text else default
        except ValueError:
            invalid.add(name)
            return None
        if not 0 <= v <= 100:
            invalid.add(name)
            return None
        return None if v == default else v / 100.0

    def day(name: str, text: str) -> date | None:
        text = text.strip()
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            invalid.add(name)
            return None

    def choice(value: str) -> str | None:
        return None if value == ANY else value

    filters = (base or ResultFilter()).with_(
        text=entered.text.strip(),
        label=choice(entered.label),
        status=choice(entered.status),
        uncertain=None if entered.uncertain == ANY else entered.uncertain == "yes",
        conf_min=pct("conf_min", entered.conf_min, 0.0),
        conf_max=pct("conf_max", entered.conf_max, 100.0),
        since=day("since", entered.since),
        until=day("until", entered.until),
    )
    return ParsedFilters(filters, frozenset(invalid))


class FilterBar(tb.Labelframe):
    """The filter widgets, wrapping onto more rows when the table is narrow. ``on_change``
    runs :data:`DEBOUNCE_MS` after the last edit."""

    def __init__(self, master: tk.Misc, on_change: Callable[[], None]) -> None:
        super().__init__(master, text="Filter", padding=(8, 2, 8, 6))
        self._on_change = on_change
        self._pending: str | None = None
        cleared = FilterFields()
        self.vars: dict[str, tk.StringVar] = {
            f.name: tk.StringVar(master=self, value=getattr(cleared, f.name))
            for f in fields(FilterFields)
        }
        v = self.vars
        self.search_var, self.label_var = v["text"], v["label"]
        self.status_var, self.uncertain_var = v["status"], v["uncertain"]
        self.flow = FlowFrame(self, gap=14, row_gap=5)
        self.flow.pack(fill="x")

        name = self._group("Name")
        self.search_entry = tb.Entry(name, textvariable=v["text"], width=SEARCH_CHARS)
        self.search_entry.pack(side="left", fill="x", expand=True)
        self.flow.add(name, stretch=True)  # at least SEARCH_CHARS wide, wider when the row allows
        self.boxes: dict[str, tb.Combobox] = {}
        for title, key, values, width in (
            ("Label", "label", (ANY, "ai", "real"), 5),
            ("Status", "status", (ANY, *STATUSES), 10),
            ("Uncertain", "uncertain", (ANY, "yes", "no"), 4),
        ):
            group = self._group(title)
            box = tb.Combobox(group, textvariable=v[key], values=values, width=width, state="readonly")
            box.pack(side="left")
            self.boxes[key] = box
            self.flow.add(group)

        conf = self._group("Confidence")
        self.conf_min = tb.Spinbox(
            conf, from_=0, to=100, increment=5, textvariable=v["conf_min"], width=4
        )
        self.conf_min.pack(side="left")
        tb.Label(conf, text="–").pack(side="left", padx=2)
        self.conf_max = tb.Spinbox(
            conf, from_=0, to=100, increment=5, textvariable=v["conf_max"], width=4
        )
        self.conf_max.pack(side="left")
        tb.Label(conf, text="%").pack(side="left", padx=(3, 0))
        self.flow.add(conf)
        dates = self._group("From")
        self.since_entry = tb.Entry(dates, textvariable=v["since"], width=10)
        self.since_entry.pack(side="left")
        tb.Label(dates, text="to").pack(side="left", padx=4)
        self.until_entry = tb.Entry(dates, textvariable=v["until"], width=10)
        self.until_entry.pack(side="left")
        self.flow.add(dates)
        self.clear_btn = tb.Button(
            self.flow, text="Clear", bootstyle="secondary-link", command=self.clear
        )
        self.flow.add(self.clear_btn, right=True)
        tb.ToolTip(self.since_entry, text="YYYY-MM-DD (UTC)")
        tb.ToolTip(self.until_entry, text="YYYY-MM-DD (UTC), inclusive")
        # the fields that can fail to parse, marked red when they do
        self._checked: dict[str, tk.Widget] = {
            "conf_min": self.conf_min,
            "conf_max": self.conf_max,
            "since": self.since_entry,
            "until": self.until_entry,
        }
        for var in v.values():
            var.trace_add("write", lambda *_a: self._changed())

    def _group(self, title: str) -> tb.Frame:
        """A caption and its fields, kept together on one row of the bar."""
        group = tb.Frame(self.flow)
        tb.Label(group, text=title).pack(side="left", padx=(0, 5))
        return group

    def entered(self) -> FilterFields:
        return FilterFields(**{name: var.get() for name, var in self.vars.items()})

    def read(self, base: ResultFilter) -> ResultFilter:
        """The entered filters over ``base``; fields that do not parse are marked and ignored."""
        parsed = parse_filters(self.entered(), base)
        for name, widget in self._checked.items():
            style = "danger" if name in parsed.invalid else "default"
            widget.configure(bootstyle=style)  # type: ignore[call-arg]
        return parsed.filters

    def clear(self) -> None:
        """Every field back to "any"."""
        cleared = FilterFields()
        for name, var in self.vars.items():
            var.set(getattr(cleared, name))

    def _changed(self) -> None:
        if self._pending is not None:
            self.after_cancel(self._pending)
        self._pending = self.after(DEBOUNCE_MS, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._on_change()
