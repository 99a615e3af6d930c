"""Result rows: the one read layer behind ``aidetect results``, ``scan`` and the dashboard.

A *result* is one file (a path that was scanned or dropped) with the verdict on its content.
Two views of the same rows, with the same filter type, columns, CSV and JSON:

- ``latest``: one row per file, its content's newest prediction (the CLI, exports);
- ``history``: one row per file and stored prediction (image x model version), plus one row
  per file whose content has none yet (queued, processing, failed): the dashboard.

Identical content is scored once; every file with it shows that result under its own path.
Paging is done in SQL: in ``history`` the two arms (scored, not yet scored) are filtered,
sorted and cut to ``offset + limit`` on their own before they are merged, so a page costs
an index walk rather than a sort of the whole store (``benchmarks/bench_gui.py``).

The JSON result object and the CSV columns: :mod:`aidetect.result`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Engine,
    Float,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import aliased

from aidetect.result import RESULT_FIELDS, SCHEMA_FILE, confidence, result_object
from aidetect.store.status import as_utc, iso
from aidetect.store.tables import STATUSES, File, Image, Prediction
from aidetect.store.writes import chunks

LABELS = ("ai", "real")
VIEWS = ("latest", "history")
SORT_KEYS = (
    "time", "id", "path", "name", "first_seen", "status", "label", "prob_ai", "confidence",
    "uncertain", "model_version",
)
_UNSCORED = ("queued", "processing", "failed")
_NULLABLE = ("label", "prob_ai", "confidence", "uncertain", "model_version")


@dataclass(frozen=True)
class ResultFilter:
    """Which results to show and in which order. ``None``/empty means "any".

    ``prob_min``/``prob_max`` bound P(ai); ``conf_min``/``conf_max`` bound the confidence of
    the class the verdict names or leans to (0.5..1, what a person reads as "how sure").
    ``since``/``until`` bound the row's time (when it was scored, or its last status change):
    a date is a whole UTC day, inclusive; a datetime an inclusive instant; a string either.
    ``path_glob`` is a glob on the whole path (``*``, ``?``); ``text`` a case-insensitive
    substring of it. Filters on the verdict only match scored rows."""

    label: str | None = None
    status: str | tuple[str, ...] | None = None
    prob_min: float | None = None
    prob_max: float | None = None
    conf_min: float | None = None
    conf_max: float | None = None
    since: date | datetime | str | None = None
    until: date | datetime | str | None = None
    path_glob: str | None = None
    text: str = ""
    uncertain: bool | None = None
    model_version: str | None = None
    decided_by: str | None = None  # "model" | "provenance"
    file_ids: tuple[int, ...] | None = None
    sort: str = "time"
    descending: bool = True

    def with_(self, **changes: Any) -> ResultFilter:
        return replace(self, **changes)

    def statuses(self) -> tuple[str, ...] | None:
        if not self.status:
            return None
        return (self.status,) if isinstance(self.status, str) else tuple(self.status)

    def on_verdict(self) -> bool:
        """Whether a filter asks about the verdict (so only scored rows can match)."""
        return any(
            v is not None and v != ""
            for v in (self.label, self.prob_min, self.prob_max, self.conf_min, self.conf_max, self.uncertain,
                      self.model_version, self.decided_by)
        )


@dataclass
class ResultRow:
    file_id: int
    image_id: int
    prediction_id: int | None
    path: str
    sha256: str | None
    status: str
    label: str | None
    decided_by: str | None  # "model" | "provenance": who decided the label
    prob_ai: float | None
    uncertain: bool | None
    uncertain_reason: str | None  # aidetect.wording.UNCERTAIN_REASONS
    ood_score: float | None  # distance from the training data (NULL: the model has no such check)
    model_version: str | None
    scored_by: str | None  # the model that scored it (small images go to another model)
    error: str | None
    evidence: list[dict[str, Any]] | None  # provenance items of the content
    time: datetime | None
    first_seen: datetime | None
    size: int | None
    width: int | None
    height: int | None
    format: str | None
    cam_path: str | None
    overlay_path: str | None
    heatmap_error: str | None = None  # the verdict stands; its heatmap files could not be written
    branches: dict[str, Any] | None = None  # fused models: each branch's logit, contribution, share

    @property
    def key(self) -> str:
        """Identifies the row in a view: ``f<file id>`` or ``f<file id>p<prediction id>``."""
        return f"f{self.file_id}" + (f"p{self.prediction_id}" if self.prediction_id is not None else "")

    @property
    def name(self) -> str:
        return os.path.basename(self.path) or self.path

    @property
    def confidence(self) -> float | None:
        return confidence(self.label, self.prob_ai)

    def as_json(self) -> dict[str, Any]:
        """The JSON result object (``aidetect.result``)."""
        values = {k: getattr(self, k) for k in RESULT_FIELDS if k != "confidence"}
        return result_object({k: iso(v) if isinstance(v, datetime) else v for k, v in values.items()})

    def csv_record(self) -> dict[str, str]:
        """The CSV columns (``RESULT_FIELDS``) as text: what :meth:`as_json` holds, with
        booleans as true/false, the evidence as one JSON cell, null as empty."""
        return dict(zip(RESULT_FIELDS, self.csv_cells(), strict=True))

    def csv_cells(self) -> list[str]:
        """:meth:`csv_record`'s values in column order (the export's fast path)."""
        return [_cell(getattr(self, k)) for k in RESULT_FIELDS]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return (v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False) if v else ""
    return str(v)


# -- the row sources --------------------------------------------------------------------------
def _null(kind: Any) -> Any:
    """A typed NULL: PostgreSQL cannot match an untyped NULL column across a UNION."""
    return cast(null(), kind)


def _conf(prob: Any) -> Any:
    return case((prob >= 0.5, prob), else_=1.0 - prob)


@dataclass
class _Source:
    """One SELECT with the row columns, and the expressions its filters and sorts use
    (``None``: always NULL in this source; a str: a constant)."""

    stmt: Select[Any]
    cols: dict[str, Any]
    tie: list[Any]
    scored_only: Any = None  # the condition that makes a row scored (latest view)


def _select(cols: dict[str, Any]) -> Select[Any]:
    kinds = {
        "pid": Integer, "label": String, "decided_by": String, "prob_ai": Float, "ood_score": Float, "evidence": JSON, "uncertain": Boolean, "uncertain_reason": String,
        "model_version": String, "scored_by": String, "error": Text, "cam_path": Text, "overlay_path": Text, "heatmap_error": Text, "branches": JSON,
    }
    parts = []
    for name in ("file_id", "pid", "image_id", "path", "sha256", "status", "label", "decided_by", "prob_ai", "uncertain",
                 "uncertain_reason", "ood_score", "model_version", "scored_by", "error", "evidence", "time", "first_seen", "size",
                 "width", "height", "format", "cam_path", "overlay_path", "heatmap_error", "branches"):
        expr = cols.get(name)
        if expr is None:
            expr = _null(kinds.get(name, String))
        elif isinstance(expr, str):
            expr = literal(expr)
        parts.append(expr.label(name))
    return select(*parts)


def _file_cols() -> dict[str, Any]:
    return {
        "file_id": File.id, "id": File.id, "image_id": Image.id, "path": File.path, "sha256": Image.sha256,
        "first_seen": File.first_seen, "size": File.size, "width": Image.width, "height": Image.height,
        "format": Image.format, "evidence": Image.evidence,
    }


def _pred_cols(p: Any) -> dict[str, Any]:
    return {
        "pid": p.id, "label": p.label, "decided_by": p.decided_by, "prob_ai": p.prob_ai, "uncertain": p.uncertain,
        "uncertain_reason": p.uncertain_reason, "ood_score": p.ood_score, "model_version": p.model_version, "scored_by": p.scored_by,
        "cam_path": p.cam_path, "overlay_path": p.overlay_path, "heatmap_error": p.heatmap_error,
        "branches": p.branches,
        "confidence": _conf(p.prob_ai),
    }


def _latest_source() -> _Source:
    p = aliased(Prediction)
    newest = select(func.max(Prediction.id)).where(Prediction.image_id == Image.id).correlate(Image).scalar_subquery()
    when = case((and_(Image.status == "done", p.id.is_not(None)), p.created), else_=Image.updated)
    cols = {**_file_cols(), **_pred_cols(p), "status": Image.status, "error": Image.error, "time": when}
    stmt = (
        _select(cols)
        .select_from(File)
        .join(Image, Image.id == File.image_id)
        .outerjoin(p, p.id == newest)
    )
    return _Source(stmt, cols, [File.id], scored_only=Image.status == "done")


def _history_sources() -> list[_Source]:
    scored_cols = {**_file_cols(), **_pred_cols(Prediction), "status": "done", "time": Prediction.created}
    scored = (
        _select(scored_cols)
        .select_from(Prediction)
        .join(Image, Image.id == Prediction.image_id)
        .join(File, File.image_id == Image.id)
    )
    bare_cols = {**_file_cols(), "status": Image.status, "error": Image.error, "time": Image.updated}
    has_pred = select(Prediction.id).where(Prediction.image_id == Image.id).exists()
    bare = (
        _select(bare_cols)
        .select_from(File)
        .join(Image, Image.id == File.image_id)
        .where(Image.status.in_(_UNSCORED), ~has_pred)
    )
    return [_Source(scored, scored_cols, [Prediction.id, File.id]), _Source(bare, bare_cols, [Image.id, File.id])]


# -- filters ----------------------------------------------------------------------------------
def _glob_to_like(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _bound(value: date | datetime | str, end: bool) -> tuple[datetime, bool]:
    """(instant, inclusive) for a since/until value: a date covers its whole UTC day."""
    if isinstance(value, str):
        text = value.strip()
        value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, datetime):
        t = as_utc(value)
        assert t is not None
        return t, True
    day = datetime.combine(value, time.min, tzinfo=UTC)
    return (day + timedelta(days=1), False) if end else (day, True)


def _conditions(f: ResultFilter, src: _Source, dialect: str) -> list[Any] | None:
    """The WHERE conditions of ``f`` on ``src``; None when no row of it can match."""
    c = src.cols
    conds: list[Any] = []
    wanted = f.statuses()
    if wanted is not None:
        if isinstance(c["status"], str):
            if c["status"] not in wanted:
                return None
        else:
            conds.append(c["status"].in_(list(wanted)))
    checks = (
        ("label", f.label, lambda e, v: e == v),
        ("prob_ai", f.prob_min, lambda e, v: e >= v),
        ("prob_ai", f.prob_max, lambda e, v: e <= v),
        ("confidence", f.conf_min, lambda e, v: e >= v),
        ("confidence", f.conf_max, lambda e, v: e <= v),
        ("uncertain", f.uncertain, lambda e, v: e.is_(v)),
        ("model_version", f.model_version, lambda e, v: e == v),
        ("decided_by", f.decided_by, lambda e, v: e == v),
    )
    for col, value, test in checks:
        if value is None or value == "":
            continue
        if c.get(col) is None:
            return None
        conds.append(test(c[col], value))
    if f.on_verdict() and src.scored_only is not None:
        conds.append(src.scored_only)
    if f.text:  # SQLite's LIKE already ignores ASCII case; lower() on every row would double the scan
        conds.append(File.path.contains(f.text, autoescape=True) if dialect == "sqlite" else File.path.icontains(f.text, autoescape=True))
    if f.path_glob:
        conds.append(File.path.like(_glob_to_like(f.path_glob), escape="\\"))
    if f.since is not None:
        t, _ = _bound(f.since, end=False)
        conds.append(c["time"] >= t)
    if f.until is not None:
        t, inclusive = _bound(f.until, end=True)
        conds.append(c["time"] <= t if inclusive else c["time"] < t)
    if f.file_ids is not None:
        conds.append(File.id.in_(list(f.file_ids)))
    return conds


def _sort_col(f: ResultFilter, cols: dict[str, Any]) -> Any:
    key = {"name": "path"}.get(f.sort, f.sort)
    if key not in SORT_KEYS:
        raise ValueError(f"cannot sort by {f.sort!r} (one of {', '.join(SORT_KEYS)})")
    col = cols.get(key)
    return None if isinstance(col, str) else col  # a constant does not order (PostgreSQL rejects it)


def _order(f: ResultFilter, src: _Source) -> list[Any]:
    main = _sort_col(f, src.cols)
    tie = [k.desc() if f.descending else k.asc() for k in src.tie]
    if main is None:
        return tie
    first = main.desc() if f.descending else main.asc()
    if f.sort in _NULLABLE:  # rows without a verdict last; never-NULL keys keep their index order
        first = first.nulls_last()
    return [first, *tie]


def _filtered(f: ResultFilter, view: str, dialect: str) -> list[tuple[_Source, Select[Any]]]:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r} (one of {', '.join(VIEWS)})")
    sources = [_latest_source()] if view == "latest" else _history_sources()
    out = []
    for src in sources:
        conds = _conditions(f, src, dialect)
        if conds is not None:
            out.append((src, src.stmt.where(and_(*conds)) if conds else src.stmt))
    return out


def _merged_order(f: ResultFilter, sub: Any) -> list[Any]:
    c = sub.c
    cols = {name: c[name] for name in ("time", "path", "first_seen", "status", "label", "prob_ai", "uncertain", "model_version")}
    cols.update(id=c.file_id, confidence=_conf(c.prob_ai))
    main = _sort_col(f, cols)
    keys = [main, c.pid, c.image_id, c.file_id]
    return [k.desc() if f.descending else k.asc() for k in keys]


def _statement(f: ResultFilter, view: str, dialect: str, offset: int = 0, limit: int | None = None) -> Any | None:
    arms = _filtered(f, view, dialect)
    if not arms:
        return None
    if len(arms) == 1:
        src, stmt = arms[0]
        stmt = stmt.order_by(*_order(f, src))
        if offset:
            stmt = stmt.offset(offset)
        return stmt.limit(limit) if limit is not None else stmt
    if limit is None:
        merged = union_all(*(s for _, s in arms)).subquery("rows")
        return select(merged).order_by(*_merged_order(f, merged))
    # each arm sorted and cut to offset + limit on its own, then merged
    subs = [s.order_by(*_order(f, src)).limit(offset + limit).subquery(f"arm{i}") for i, (src, s) in enumerate(arms)]
    merged = union_all(*(select(s) for s in subs)).subquery("rows")
    return select(merged).order_by(*_merged_order(f, merged)).offset(offset).limit(limit)


def _as_dt(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    try:  # a raw SQLite string from a UNION (no type processing across compounds)
        return datetime.fromisoformat(str(v))
    except ValueError:
        return None


def _as_json(v: Any, kind: type) -> Any:
    """A JSON column's value as ``kind`` (list or dict), also when a UNION on SQLite hands back its
    raw text; None when it is neither."""
    if v is None or isinstance(v, kind):
        return v
    try:
        got = json.loads(v)
    except (TypeError, ValueError):
        return None
    return got if isinstance(got, kind) else None


def _row(m: Any, view: str) -> ResultRow:
    scored = view == "history" or m["status"] == "done"
    return ResultRow(
        file_id=m["file_id"], image_id=m["image_id"], prediction_id=m["pid"], path=m["path"], sha256=m["sha256"],
        status=m["status"],
        label=m["label"] if scored else None,
        decided_by=m["decided_by"] if scored else None,
        prob_ai=m["prob_ai"] if scored else None,
        uncertain=None if m["uncertain"] is None or not scored else bool(m["uncertain"]),
        uncertain_reason=m["uncertain_reason"] if scored else None,
        ood_score=m["ood_score"] if scored else None,
        model_version=m["model_version"], scored_by=m["scored_by"], error=m["error"],
        evidence=_as_json(m["evidence"], list),
        time=_as_dt(m["time"]), first_seen=_as_dt(m["first_seen"]), size=m["size"], width=m["width"],
        height=m["height"], format=m["format"], cam_path=m["cam_path"], overlay_path=m["overlay_path"],
        heatmap_error=m["heatmap_error"], branches=_as_json(m["branches"], dict) if scored else None,
    )


# -- public reads -------------------------------------------------------------------------------
def fetch_page(
    engine: Engine, f: ResultFilter, offset: int = 0, limit: int = 100, total: int | None = None, view: str = "history"
) -> list[ResultRow]:
    """Rows ``offset .. offset + limit`` of the filtered, sorted view. With ``total`` (the
    view's count), a page in the back half is read from the other end in reverse order, so
    the last page costs what the first one does."""
    offset, limit = max(0, offset), max(1, limit)
    reverse = total is not None and offset + limit / 2 > total / 2 and offset < total
    if reverse:
        assert total is not None
        limit = min(limit, total - offset)
        offset = max(0, total - offset - limit)
        f = f.with_(descending=not f.descending)
    stmt = _statement(f, view, engine.dialect.name, offset, limit)
    if stmt is None:
        return []
    with engine.connect() as conn:
        rows = [_row(m, view) for m in conn.execute(stmt).mappings()]
    return rows[::-1] if reverse else rows


def count(engine: Engine, f: ResultFilter, view: str = "history") -> int:
    total = 0
    with engine.connect() as conn:
        for _, stmt in _filtered(f, view, engine.dialect.name):
            total += conn.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    return int(total)


def iter_rows(engine: Engine, f: ResultFilter, view: str = "history", chunk: int = 2000) -> Iterator[ResultRow]:
    """Every row matching ``f`` in its order, streamed from one query rather than paged."""
    stmt = _statement(f, view, engine.dialect.name)
    if stmt is None:
        return
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(stmt)
        for m in result.mappings():
            yield _row(m, view)


def rows_for_files(engine: Engine, file_ids: Sequence[int]) -> list[ResultRow]:
    """The ``latest`` row of each file in ``file_ids``, in that order (each file once)."""
    got: dict[int, ResultRow] = {}
    for chunk in chunks(list(dict.fromkeys(file_ids))):
        for r in iter_rows(engine, ResultFilter(file_ids=tuple(chunk), sort="id"), view="latest"):
            got[r.file_id] = r
    return [got[i] for i in dict.fromkeys(file_ids) if i in got]


def fetch_row(engine: Engine, key: str) -> ResultRow | None:
    """One ``history`` row by its key; for a file scored since its key was read, its newest
    scored row."""
    body = key[1:] if key.startswith("f") else key
    file_part, _, pred_part = body.partition("p")
    file_id = int(file_part)
    scored, bare = _history_sources()
    with engine.connect() as conn:
        m = None
        if pred_part:
            m = conn.execute(scored.stmt.where(File.id == file_id, Prediction.id == int(pred_part))).mappings().first()
        else:
            m = conn.execute(bare.stmt.where(File.id == file_id)).mappings().first()
        if m is None:
            m = conn.execute(scored.stmt.where(File.id == file_id).order_by(Prediction.id.desc()).limit(1)).mappings().first()
    return _row(m, "history") if m is not None else None


# -- export -----------------------------------------------------------------------------------
def write_csv(rows: Iterator[ResultRow] | Sequence[ResultRow], out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RESULT_FIELDS)
    n = 0
    for r in rows:
        writer.writerow(r.csv_cells())
        n += 1
    return n


def to_csv(rows: Sequence[ResultRow]) -> str:
    buf = io.StringIO()
    write_csv(rows, buf)
    return buf.getvalue()


def to_json(rows: Sequence[ResultRow]) -> str:
    return json.dumps([r.as_json() for r in rows], indent=2, ensure_ascii=False)


def export(
    rows: Iterator[ResultRow] | Sequence[ResultRow],
    path: str | Path,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``rows`` to ``path`` as CSV or JSON (by its suffix), via a temporary file then a
    rename, so a reader never sees half an export. Returns the number of rows."""
    target = Path(path)
    fmt = target.suffix.lower()
    if fmt not in (".csv", ".json"):
        raise ValueError(f"{target}: an export must end in .csv or .json")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    n = 0

    def counted() -> Iterator[ResultRow]:
        nonlocal n
        for r in rows:
            n += 1
            if progress is not None and n % 5000 == 0:
                progress(n)
            yield r

    with tmp.open("w", newline="", encoding="utf-8") as fh:
        if fmt == ".csv":
            write_csv(counted(), fh)
        else:
            fh.write("[")
            for i, r in enumerate(counted()):
                fh.write(("," if i else "") + "\n  " + json.dumps(r.as_json(), ensure_ascii=False))
            fh.write("\n]\n" if n else "]\n")
    os.replace(tmp, target)
    return n


__all__ = [
    "LABELS", "RESULT_FIELDS", "SCHEMA_FILE", "SORT_KEYS", "STATUSES", "VIEWS", "ResultFilter", "ResultRow",
    "count", "export", "fetch_page", "fetch_row", "iter_rows", "rows_for_files", "to_csv", "to_json", "write_csv",
]
