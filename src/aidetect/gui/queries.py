"""The dashboard's reads: one page of the browse table, its count, one row's details, the
live-update marker and the CSV export, all filtered and sorted in SQL.

A row of the table is one stored prediction (image x model version) or, for an image that
has none yet (queued, processing, failed), the image itself with its status and reason.
Both arms of that ``UNION ALL`` are filtered, sorted and limited on their own before they
are merged, so a page costs an index walk of ``offset + limit`` rows per arm rather than a
sort of the whole store (see ``benchmarks/bench_gui.py``).

Reads use their own engine: on SQLite, the store's engine starts every transaction with
``BEGIN IMMEDIATE`` (right for writers, which must not fail an upgrade), which would make
the dashboard's reads queue behind the workers' writes. WAL readers need no lock at all,
so this engine reads in autocommit mode and never waits for a writer.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Engine,
    Float,
    Integer,
    Select,
    String,
    Text,
    case,
    cast,
    create_engine,
    event,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.engine import make_url

from aidetect.db.models import Image, ModelVersion, Prediction

LABELS = ("ai", "real")
STATUSES = ("done", "failed", "queued", "processing")
# Sortable columns of the table -> the SQL expression name in the merged row.
SORT_KEYS = ("name", "label", "confidence", "uncertain", "model_version", "time", "status")
CSV_COLUMNS = (
    "path",
    "sha256",
    "status",
    "label",
    "prob_ai",
    "confidence",
    "uncertain",
    "uncertain_reason",
    "model_version",
    "time",
    "error",
    "heatmap_path",
    "overlay_path",
    "width",
    "height",
)


@dataclass(frozen=True)
class Filters:
    """What the table shows. ``None``/empty means "any"."""

    label: str | None = None  # "ai" | "real"
    status: str | None = None  # one of STATUSES
    conf_min: float | None = None  # calibrated confidence of the class leaned to, 0.5..1
    conf_max: float | None = None
    text: str = ""  # substring of the path, case-insensitive
    since: date | None = None  # inclusive, UTC days
    until: date | None = None  # inclusive
    uncertain: bool | None = None
    sort: str = "time"
    descending: bool = True

    def with_(self, **changes: Any) -> Filters:
        return replace(self, **changes)


@dataclass
class Row:
    key: str  # "p<prediction id>" or "i<image id>"
    image_id: int
    prediction_id: int | None
    path: str
    sha256: str | None
    status: str
    label: str | None
    prob_ai: float | None
    uncertain: bool | None
    model_version: str | None
    time: datetime | None
    error: str | None
    heatmap_path: str | None
    overlay_path: str | None
    width: int | None
    height: int | None
    uncertain_reason: str | None = None  # "outside training data" | "low confidence"
    scored_by: str | None = None  # the model that scored it when not model_version (small images)

    @property
    def name(self) -> str:
        return os.path.basename(self.path) or self.path

    @property
    def confidence(self) -> float | None:
        """Calibrated probability of the class the verdict names or leans to (aidetect.wording):
        what a person reads as 'how sure', never under 0.5."""
        if self.prob_ai is None or self.label is None:
            return None
        return self.prob_ai if self.prob_ai >= 0.5 else 1.0 - self.prob_ai

    def csv_record(self) -> dict[str, Any]:
        conf = self.confidence
        return {
            "path": self.path,
            "sha256": self.sha256 or "",
            "status": self.status,
            "label": self.label or "",
            "prob_ai": "" if self.prob_ai is None else f"{self.prob_ai:.6f}",
            "confidence": "" if conf is None else f"{conf:.6f}",
            "uncertain": "" if self.uncertain is None else str(bool(self.uncertain)).lower(),
            "uncertain_reason": self.uncertain_reason or "",
            "model_version": self.model_version or "",
            "time": _iso(self.time),
            "error": self.error or "",
            "heatmap_path": self.heatmap_path or "",
            "overlay_path": self.overlay_path or "",
            "width": "" if self.width is None else self.width,
            "height": "" if self.height is None else self.height,
        }


@dataclass
class Page:
    rows: list[Row]
    offset: int
    total: int
    filters: Filters
    marker: tuple[int, str] = (0, "")
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _iso(t: datetime | None) -> str:
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.isoformat(timespec="seconds")


# -- engine ---------------------------------------------------------------------------------
_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}


def read_engine(url: str) -> Engine:
    """An engine for the dashboard's reads (cached per process and URL)."""
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        if make_url(url).get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 30.0, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
                dbapi_conn.isolation_level = None  # autocommit: WAL reads take no lock
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA busy_timeout = 30000")
                cur.close()
        else:
            from aidetect.db.engine import get_engine

            engine = get_engine(url)
        _engines[key] = engine
        return engine


# -- the merged row source --------------------------------------------------------------
def _null(kind: Any) -> Any:
    """A typed NULL: PostgreSQL cannot match an untyped NULL column across a UNION."""
    return cast(null(), kind)


_UNSCORED = ("queued", "processing", "failed")


def _arms() -> tuple[Select[Any], Select[Any]]:
    """(predictions joined to their image, images with no prediction) with the same columns."""
    pred = (
        select(
            Prediction.id.label("pid"),
            Image.id.label("image_id"),
            Image.path.label("path"),
            Image.sha256.label("sha256"),
            literal("done").label("status"),
            Prediction.label.label("label"),
            Prediction.prob_ai.label("prob_ai"),
            Prediction.uncertain.label("uncertain"),
            Prediction.uncertain_reason.label("uncertain_reason"),
            Prediction.model_version.label("model_version"),
            Prediction.scored_by.label("scored_by"),
            Prediction.created.label("time"),
            _null(Text).label("error"),
            Prediction.heatmap_path.label("heatmap_path"),
            Prediction.overlay_path.label("overlay_path"),
            Image.width.label("width"),
            Image.height.label("height"),
        )
        .select_from(Prediction)
        .join(Image, Image.id == Prediction.image_id)
    )
    has_pred = select(Prediction.id).where(Prediction.image_id == Image.id).exists()
    bare = select(
        _null(Integer).label("pid"),
        Image.id.label("image_id"),
        Image.path.label("path"),
        Image.sha256.label("sha256"),
        Image.status.label("status"),
        _null(String).label("label"),
        _null(Float).label("prob_ai"),
        _null(Boolean).label("uncertain"),
        _null(String).label("uncertain_reason"),
        _null(String).label("model_version"),
        _null(String).label("scored_by"),
        Image.updated.label("time"),
        Image.error.label("error"),
        _null(Text).label("heatmap_path"),
        _null(Text).label("overlay_path"),
        Image.width.label("width"),
        Image.height.label("height"),
    ).where(Image.status.in_(_UNSCORED), ~has_pred)
    return pred, bare


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _name_match(text: str, dialect: str) -> Any:
    """Case-insensitive substring of the path. SQLite's LIKE already ignores ASCII case, and
    ``lower()`` on every row would double the scan; elsewhere use ILIKE."""
    if dialect == "sqlite":
        return Image.path.contains(text, autoescape=True)
    return Image.path.icontains(text, autoescape=True)


def _filtered(filters: Filters, dialect: str = "sqlite") -> list[Select[Any]]:
    """The two arms with the filters applied (an arm that cannot match is left out)."""
    pred, bare = _arms()
    out: list[Select[Any]] = []
    # predictions arm
    conf = case((Prediction.prob_ai >= 0.5, Prediction.prob_ai), else_=1.0 - Prediction.prob_ai)
    keep_pred = filters.status in (None, "", "done")
    if keep_pred:
        q = pred
        if filters.label:
            q = q.where(Prediction.label == filters.label)
        if filters.conf_min is not None:
            q = q.where(conf >= filters.conf_min)
        if filters.conf_max is not None:
            q = q.where(conf <= filters.conf_max)
        if filters.uncertain is not None:
            q = q.where(Prediction.uncertain.is_(filters.uncertain))
        if filters.text:
            q = q.where(_name_match(filters.text, dialect))
        if filters.since is not None:
            q = q.where(Prediction.created >= _day_start(filters.since))
        if filters.until is not None:
            q = q.where(Prediction.created < _day_start(filters.until + timedelta(days=1)))
        out.append(q)
    # images-without-prediction arm: has no label/confidence, so those filters exclude it
    keep_bare = (
        filters.status in (None, "", *_UNSCORED)
        and not filters.label
        and filters.conf_min is None
        and filters.conf_max is None
        and filters.uncertain is None
    )
    if keep_bare:
        q = bare
        if filters.status:
            q = q.where(Image.status == filters.status)
        if filters.text:
            q = q.where(_name_match(filters.text, dialect))
        if filters.since is not None:
            q = q.where(Image.updated >= _day_start(filters.since))
        if filters.until is not None:
            q = q.where(Image.updated < _day_start(filters.until + timedelta(days=1)))
        out.append(q)
    return out


def _order(filters: Filters, arm: int) -> list[Any]:
    """ORDER BY for one arm (0 = predictions, 1 = bare images), tie-broken by ids."""
    if arm == 0:
        cols = {
            "name": Image.path,
            "label": Prediction.label,
            "confidence": case(
                (Prediction.prob_ai >= 0.5, Prediction.prob_ai), else_=1.0 - Prediction.prob_ai
            ),
            "uncertain": Prediction.uncertain,
            "model_version": Prediction.model_version,
            "time": Prediction.created,
            "status": None,  # constant in this arm
        }
        tie = [Prediction.id]
    else:
        cols = {
            "name": Image.path,
            "label": None,
            "confidence": None,
            "uncertain": None,
            "model_version": None,
            "time": Image.updated,
            "status": Image.status,
        }
        tie = [Image.id]
    main = cols.get(filters.sort, cols["time"])
    # a column that is constant in this arm does not order it (PostgreSQL rejects constants)
    keys = [*([main] if main is not None else []), *tie]
    return [k.desc() if filters.descending else k.asc() for k in keys]


def _outer_order(filters: Filters, sub: Any) -> list[Any]:
    c = sub.c
    cols = {
        "name": c.path,
        "label": c.label,
        "confidence": case((c.prob_ai >= 0.5, c.prob_ai), else_=1.0 - c.prob_ai),
        "uncertain": c.uncertain,
        "model_version": c.model_version,
        "time": c.time,
        "status": c.status,
    }
    main = cols.get(filters.sort, cols["time"])
    keys = [main, c.pid, c.image_id]
    return [k.desc() if filters.descending else k.asc() for k in keys]


def _row(m: Any) -> Row:
    pid = m["pid"]
    return Row(
        key=f"p{pid}" if pid is not None else f"i{m['image_id']}",
        image_id=m["image_id"],
        prediction_id=pid,
        path=m["path"],
        sha256=m["sha256"],
        status=m["status"],
        label=m["label"],
        prob_ai=m["prob_ai"],
        uncertain=None if m["uncertain"] is None else bool(m["uncertain"]),
        model_version=m["model_version"],
        time=_as_dt(m["time"]),
        error=m["error"],
        heatmap_path=m["heatmap_path"],
        overlay_path=m["overlay_path"],
        width=m["width"],
        height=m["height"],
        uncertain_reason=m["uncertain_reason"],
        scored_by=m["scored_by"],
    )


def _as_dt(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    try:  # a raw SQLite string from the UNION (no type processing across compounds)
        return datetime.fromisoformat(str(v))
    except ValueError:
        return None


def _page_stmt(filters: Filters, offset: int, limit: int, dialect: str = "sqlite") -> Any | None:
    arms = _filtered(filters, dialect)
    if not arms:
        return None
    if len(arms) == 1:
        arm_index = 0 if filters.status in (None, "", "done") else 1
        return arms[0].order_by(*_order(filters, arm_index)).offset(offset).limit(limit)
    # each arm sorted and cut to offset + limit on its own, then merged
    subs = [
        a.order_by(*_order(filters, i)).limit(offset + limit).subquery(f"arm{i}")
        for i, a in enumerate(arms)
    ]
    merged = union_all(*(select(s) for s in subs)).subquery("rows")
    return select(merged).order_by(*_outer_order(filters, merged)).offset(offset).limit(limit)


# -- public reads -----------------------------------------------------------------------
def fetch_page(
    engine: Engine, filters: Filters, offset: int = 0, limit: int = 100, total: int | None = None
) -> list[Row]:
    """Rows ``offset .. offset + limit`` of the filtered, sorted view. With ``total`` (the
    view's count), a page in the back half is read from the other end in reverse order, so
    the last page costs what the first one does."""
    offset, limit = max(0, offset), max(1, limit)
    reverse = total is not None and offset + limit / 2 > total / 2 and offset < total
    if reverse:
        assert total is not None
        limit = min(limit, total - offset)
        offset = max(0, total - offset - limit)
        filters = filters.with_(descending=not filters.descending)
    stmt = _page_stmt(filters, offset, limit, engine.dialect.name)
    if stmt is None:
        return []
    with engine.connect() as conn:
        rows = [_row(m) for m in conn.execute(stmt).mappings()]
    return rows[::-1] if reverse else rows


def count(engine: Engine, filters: Filters) -> int:
    arms = _filtered(filters, engine.dialect.name)
    total = 0
    with engine.connect() as conn:
        for a in arms:
            total += conn.execute(
                select(func.count()).select_from(a.order_by(None).subquery())
            ).scalar_one()
    return int(total)


def marker(engine: Engine) -> tuple[int, str]:
    """Changes whenever a prediction is added or an image changes status: (last prediction
    id, last image update). Two index look-ups."""
    with engine.connect() as conn:
        pid = conn.execute(select(func.max(Prediction.id))).scalar() or 0
        upd = conn.execute(select(func.max(Image.updated))).scalar()
    return int(pid), str(upd or "")


def fetch_row(engine: Engine, key: str) -> Row | None:
    """One row by its key (``p<id>`` or ``i<id>``)."""
    pred, bare = _arms()
    kind, ident = key[0], int(key[1:])
    stmt = pred.where(Prediction.id == ident) if kind == "p" else bare.where(Image.id == ident)
    with engine.connect() as conn:
        m = conn.execute(stmt).mappings().first()
        if m is None and kind == "i":  # scored since: its newest prediction
            m = (
                conn.execute(pred.where(Image.id == ident).order_by(Prediction.id.desc()).limit(1))
                .mappings()
                .first()
            )
    return _row(m) if m is not None else None


def rows_for_images(engine: Engine, image_ids: list[int]) -> list[Row]:
    """The newest row of each image in ``image_ids`` (in that order; missing ones skipped)."""
    out: list[Row] = []
    for image_id in image_ids:
        row = fetch_row(engine, f"i{image_id}")
        if row is not None:
            out.append(row)
    return out


def image_ids_for_paths(engine: Engine, paths: list[str]) -> list[int]:
    """Newest image id per path (paths as stored: absolute)."""
    ids: list[int] = []
    with engine.connect() as conn:
        for p in paths:
            got = conn.execute(
                select(Image.id).where(Image.path == p).order_by(Image.updated.desc()).limit(1)
            ).scalar()
            if got is not None:
                ids.append(int(got))
    return ids


def _all_stmt(filters: Filters, dialect: str) -> Any | None:
    """Every matching row in the table's order, as one statement (for streaming)."""
    arms = _filtered(filters, dialect)
    if not arms:
        return None
    if len(arms) == 1:
        arm_index = 0 if filters.status in (None, "", "done") else 1
        return arms[0].order_by(*_order(filters, arm_index))
    merged = union_all(*arms).subquery("rows")
    return select(merged).order_by(*_outer_order(filters, merged))


def iter_rows(engine: Engine, filters: Filters, chunk: int = 2000) -> Iterator[Row]:
    """Every row matching ``filters`` in the table's order (for the CSV export), streamed
    from one query rather than paged."""
    stmt = _all_stmt(filters, engine.dialect.name)
    if stmt is None:
        return
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(stmt)
        for m in result.mappings():
            yield _row(m)


def export_csv(
    engine: Engine,
    filters: Filters,
    path: str | Path,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the filtered view to ``path`` as CSV (written to a temp file, then renamed).
    Returns the number of rows."""
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    n = 0
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for row in iter_rows(engine, filters):
            writer.writerow(row.csv_record())
            n += 1
            if progress is not None and n % 5000 == 0:
                progress(n)
    os.replace(tmp, target)
    return n


@dataclass
class ModelInfo:
    version: str
    accuracy: float | None
    accuracy_name: str  # which metric it is ("test accuracy", "validation accuracy", ...)


def active_model_info(engine: Engine) -> ModelInfo | None:
    """The active model version and its best accuracy figure from the card's metrics."""
    with engine.connect() as conn:
        m = (
            conn.execute(
                select(ModelVersion.version, ModelVersion.metrics, ModelVersion.card).where(
                    ModelVersion.active.is_(True)
                )
            )
            .mappings()
            .first()
        )
    if m is None:
        return None
    metrics = m["metrics"] or (m["card"] or {}).get("metrics") or {}
    acc, name = accuracy_from_metrics(metrics)
    return ModelInfo(str(m["version"]), acc, name)


def accuracy_from_metrics(metrics: dict[str, Any]) -> tuple[float | None, str]:
    """Pick the test accuracy out of a model card's metrics (falls back to validation)."""
    candidates = (
        (("test", "accuracy"), "test accuracy"),
        (("test_accuracy",), "test accuracy"),
        (("test", "acc"), "test accuracy"),
        (("validation", "accuracy"), "validation accuracy"),
        (("val", "accuracy"), "validation accuracy"),
        (("validation_accuracy",), "validation accuracy"),
        (("val_accuracy",), "validation accuracy"),
        (("accuracy",), "accuracy"),
    )
    for path, name in candidates:
        node: Any = metrics
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            section = metrics.get(path[0]) if len(path) > 1 else None
            sources = section.get("sources") if isinstance(section, dict) else None
            if sources:  # name the data the figure is on: "test accuracy on cifake"
                name = f"{name} on {' + '.join(map(str, sources))}"
            return float(node), name
    return None, "accuracy"
