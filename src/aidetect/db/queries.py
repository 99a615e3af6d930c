"""Read side of the store: result rows for the CLI, the GUI and exports.

A *result* is one image with its latest prediction (if any), as a JSON-friendly dict with
at least ``path, sha256, status, label, prob_ai, uncertain, model_version, error``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from aidetect.db.models import Image, Prediction, WorkerBeat

RESULT_FIELDS = (
    "image_id",
    "path",
    "sha256",
    "status",
    "label",
    "prob_ai",
    "uncertain",
    "uncertain_reason",
    "model_version",
    "scored_by",
    "error",
    "created",
    "first_seen",
    "size",
    "width",
    "height",
    "format",
    "heatmap_path",
    "overlay_path",
)
ORDER_COLUMNS = {
    "id": Image.id,
    "time": Image.updated,
    "created": Image.updated,
    "first_seen": Image.first_seen,
    "path": Image.path,
    "status": Image.status,
}
_CHUNK = 5000


def _latest_prediction():  # noqa: ANN202
    latest = (
        select(func.max(Prediction.id))
        .where(Prediction.image_id == Image.id)
        .correlate(Image)
        .scalar_subquery()
    )
    pred = aliased(Prediction)
    return pred, latest


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


def _as_utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _filtered(
    stmt: Select,
    pred,  # noqa: ANN001
    *,
    label: str | None = None,
    status: str | Sequence[str] | None = None,
    prob_min: float | None = None,
    prob_max: float | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    path_glob: str | None = None,
    text: str | None = None,
    uncertain: bool | None = None,
    model_version: str | None = None,
    ids: Iterable[int] | None = None,
) -> Select:
    conds = []
    if label:
        conds.append(pred.label == label)
    if status:
        conds.append(Image.status.in_([status] if isinstance(status, str) else list(status)))
    if prob_min is not None:
        conds.append(pred.prob_ai >= prob_min)
    if prob_max is not None:
        conds.append(pred.prob_ai <= prob_max)
    if since is not None:
        conds.append(Image.updated >= _as_utc(since))
    if until is not None:
        conds.append(Image.updated <= _as_utc(until))
    if path_glob:
        conds.append(Image.path.like(_glob_to_like(path_glob), escape="\\"))
    if text:
        conds.append(Image.path.ilike("%" + _glob_to_like(text) + "%", escape="\\"))
    if uncertain is not None:
        conds.append(pred.uncertain.is_(uncertain))
    if model_version:
        conds.append(pred.model_version == model_version)
    if ids is not None:
        conds.append(Image.id.in_(list(ids)))
    return stmt.where(and_(*conds)) if conds else stmt


def _row_dict(img: Image, p: Prediction | None) -> dict[str, Any]:
    created = p.created if p is not None else img.updated
    return {
        "image_id": img.id,
        "path": img.path,
        "sha256": img.sha256,
        "status": img.status,
        "label": p.label if p is not None and img.status == "done" else None,
        "prob_ai": p.prob_ai if p is not None and img.status == "done" else None,
        "uncertain": bool(p.uncertain) if p is not None and img.status == "done" else None,
        "uncertain_reason": p.uncertain_reason if p is not None and img.status == "done" else None,
        "model_version": p.model_version if p is not None else None,
        "scored_by": p.scored_by if p is not None else None,
        "error": img.error,
        "created": _iso(created),
        "first_seen": _iso(img.first_seen),
        "size": img.size,
        "width": img.width,
        "height": img.height,
        "format": img.format,
        "heatmap_path": p.heatmap_path if p is not None else None,
        "overlay_path": p.overlay_path if p is not None else None,
    }


def _iso(value: datetime | None) -> str | None:
    v = _as_utc(value)
    return v.isoformat() if v is not None else None


def query_results(
    session: Session,
    *,
    order_by: str = "id",
    descending: bool = False,
    limit: int | None = None,
    offset: int = 0,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Result dicts matching ``filters`` (label, status, prob_min, prob_max, since, until,
    path_glob, text, uncertain, model_version, ids). ``order_by``: id, time, first_seen,
    path, status, label, prob_ai."""
    pred, latest = _latest_prediction()
    stmt = select(Image, pred).outerjoin(pred, pred.id == latest)
    stmt = _filtered(stmt, pred, **filters)
    col = {"label": pred.label, "prob_ai": pred.prob_ai}.get(order_by, ORDER_COLUMNS.get(order_by))
    if col is None:
        raise ValueError(f"cannot order by {order_by!r}")
    stmt = stmt.order_by((col.desc() if descending else col.asc()).nulls_last(), Image.id.desc() if descending else Image.id)
    if offset:
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_row_dict(img, p) for img, p in session.execute(stmt).all()]


def count_results(session: Session, **filters: Any) -> int:
    pred, latest = _latest_prediction()
    stmt = select(func.count(Image.id)).outerjoin(pred, pred.id == latest)
    return int(session.scalar(_filtered(stmt, pred, **filters)) or 0)


def status_counts(session: Session, ids: Sequence[int] | None = None) -> dict[str, int]:
    """{status: count} over ``ids`` (all images when None)."""
    counts: dict[str, int] = {}
    chunks = [None] if ids is None else [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
    for chunk in chunks:
        stmt = select(Image.status, func.count()).group_by(Image.status)
        if chunk is not None:
            stmt = stmt.where(Image.id.in_(list(chunk)))
        for st, n in session.execute(stmt).all():
            counts[st] = counts.get(st, 0) + int(n)
    return counts


def results_for_ids(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), _CHUNK):
        out.extend(query_results(session, ids=ids[i : i + _CHUNK]))
    return out


def pending_ids(session: Session, ids: Sequence[int]) -> list[int]:
    """Those of ``ids`` not yet done or failed."""
    out: list[int] = []
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i : i + _CHUNK])
        out.extend(
            session.scalars(
                select(Image.id).where(Image.id.in_(chunk), or_(Image.status == "queued", Image.status == "processing"))
            ).all()
        )
    return out


def live_workers(session: Session, within_s: float = 10.0) -> list[dict[str, Any]]:
    rows = session.scalars(select(WorkerBeat)).all()
    now = datetime.now(UTC)
    out = []
    for r in rows:
        seen = _as_utc(r.last_seen)
        if seen is not None and (now - seen).total_seconds() <= within_s:
            out.append({"name": r.name, "pid": r.pid, "concurrency": r.concurrency, "last_seen": _iso(seen)})
    return out


# -- export -------------------------------------------------------------------------------
def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RESULT_FIELDS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in RESULT_FIELDS})
    return buf.getvalue()
