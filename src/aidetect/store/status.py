"""Small reads about the work in the store (not result rows, see ``results``): status counts,
what is still pending or stranded, live workers, the change marker the dashboard polls, which
inbox files already have a final result, the active model's headline figure."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from aidetect.store.engine import session_scope
from aidetect.store.migrate import init_db
from aidetect.store.tables import (
    FINAL_STATUSES,
    File,
    Image,
    ModelVersion,
    Prediction,
    WorkerBeat,
    utcnow,
)
from aidetect.store.writes import chunks


def as_utc(value: datetime | str | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime | str | None) -> str | None:
    v = as_utc(value)
    return v.isoformat() if v is not None else None


def status_counts(file_ids: Sequence[int] | None = None) -> dict[str, int]:
    """{status: number of files} over ``file_ids`` (every file when None)."""
    init_db()
    counts: dict[str, int] = {}
    with session_scope() as s:
        for chunk in [None] if file_ids is None else chunks(list(file_ids)):
            stmt = select(Image.status, func.count()).select_from(File).join(Image, Image.id == File.image_id)
            if chunk is not None:
                stmt = stmt.where(File.id.in_(chunk))
            for st, n in s.execute(stmt.group_by(Image.status)).all():
                counts[st] = counts.get(st, 0) + int(n)
    return counts


def image_statuses(image_ids: Sequence[int]) -> dict[int, str]:
    """{image id: status} for ``image_ids`` (missing ids left out)."""
    out: dict[int, str] = {}
    with session_scope() as s:
        for chunk in chunks(list(image_ids)):
            out.update(s.execute(select(Image.id, Image.status).where(Image.id.in_(chunk))).all())
    return out


def files_of(image_ids: Sequence[int]) -> list[int]:
    """The file ids showing the contents ``image_ids``, in file id order."""
    out: list[int] = []
    with session_scope() as s:
        for chunk in chunks(list(image_ids)):
            out.extend(s.scalars(select(File.id).where(File.image_id.in_(chunk))).all())
    return sorted(out)


def pending_ids(image_ids: Sequence[int]) -> list[int]:
    """Those of ``image_ids`` not yet done or failed."""
    out: list[int] = []
    with session_scope() as s:
        for chunk in chunks(list(image_ids)):
            out.extend(
                s.scalars(select(Image.id).where(Image.id.in_(chunk), Image.status.in_(("queued", "processing")))).all()
            )
    return out


def stranded_ids(older_than_s: float = 0.0, limit: int | None = None, status: Sequence[str] = ("queued", "processing")) -> list[int]:
    """Images left in ``status`` for at least ``older_than_s`` (e.g. their messages were lost
    with a broker that kept nothing). Re-enqueueing them is safe: the task skips what is
    already scored."""
    init_db()
    with session_scope() as s:
        stmt = select(Image.id).where(Image.status.in_(list(status))).order_by(Image.id)
        if older_than_s > 0:
            stmt = stmt.where(Image.updated <= utcnow() - timedelta(seconds=older_than_s))
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(s.scalars(stmt).all())


def live_workers(within_s: float = 10.0) -> list[dict[str, Any]]:
    """Workers whose heartbeat is at most ``within_s`` old."""
    init_db()
    now = datetime.now(UTC)
    out = []
    with session_scope() as s:
        for r in s.scalars(select(WorkerBeat)).all():
            seen = as_utc(r.last_seen)
            if seen is not None and (now - seen).total_seconds() <= within_s:
                out.append({"name": r.name, "pid": r.pid, "concurrency": r.concurrency, "last_seen": iso(seen)})
    return out


def worker_beats() -> list[dict[str, Any]]:
    """Every worker heartbeat on record (live or not): name, host, pid, concurrency, started,
    last_seen and ``age_s`` (seconds since its last beat)."""
    init_db()
    now = datetime.now(UTC)
    out = []
    with session_scope() as s:
        for r in s.scalars(select(WorkerBeat).order_by(WorkerBeat.name)).all():
            seen = as_utc(r.last_seen)
            host = r.host or (r.name.rpartition("@")[2] if "@" in r.name else None)
            out.append({
                "name": r.name, "host": host, "pid": r.pid, "concurrency": r.concurrency,
                "started": iso(r.started), "last_seen": iso(seen),
                "age_s": (now - seen).total_seconds() if seen is not None else None,
            })
    return out


def throughput_by_host(window_s: float = 60.0) -> dict[str, dict[str, float]]:
    """{host: {"window": images scored in the last ``window_s`` s, "total": images scored}}
    from the predictions' ``worker`` column (``host:pid``)."""
    init_db()
    since = utcnow() - timedelta(seconds=window_s)
    out: dict[str, dict[str, float]] = {}
    with session_scope() as s:
        recent = s.execute(
            select(Prediction.worker, func.count()).where(Prediction.created >= since).group_by(Prediction.worker)
        ).all()
        total = s.execute(select(Prediction.worker, func.count()).group_by(Prediction.worker)).all()
    for rows, field in ((recent, "window"), (total, "total")):
        for worker, n in rows:
            host = (worker or "?").rpartition(":")[0] or (worker or "?")
            entry = out.setdefault(host, {"window": 0, "total": 0})
            entry[field] += int(n)
    return out


def known_final_paths(paths: Sequence[str]) -> set[str]:
    """The paths whose file row has a final (done/failed) result for this very file: same
    size and modification time as when it was registered. The watcher's start-up scan skips
    them, so a restart neither re-hashes a large inbox nor re-scores it with a newly promoted
    model (that is what ``aidetect scan --rescore`` is for)."""
    init_db()
    rows: list[Any] = []
    with session_scope() as s:
        for chunk in chunks(list(paths)):
            rows.extend(
                s.execute(
                    select(File.path, File.size, File.mtime, Image.updated)
                    .join(Image, Image.id == File.image_id)
                    .where(File.path.in_(chunk), Image.status.in_(FINAL_STATUSES))
                ).all()
            )
    out: set[str] = set()
    for path, size, mtime, updated in rows:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if size is not None and st.st_size != size:
            continue
        same_time = st.st_mtime == mtime if mtime is not None else st.st_mtime <= as_utc(updated).timestamp()
        if same_time:
            out.add(path)
    return out


def change_marker(engine: Engine) -> tuple[int, str]:
    """Changes whenever a prediction is added, an image changes status or a file is
    registered: (last prediction id, last image update, last file seen). Index look-ups."""
    with engine.connect() as conn:
        pid = conn.execute(select(func.max(Prediction.id))).scalar() or 0
        upd = conn.execute(select(func.max(Image.updated))).scalar()
        seen = conn.execute(select(func.max(File.last_seen))).scalar()
    return int(pid), f"{upd or ''}|{seen or ''}"


@dataclass
class ModelInfo:
    version: str
    accuracy: float | None
    accuracy_name: str  # which metric it is ("test accuracy on cifake", "validation accuracy", ...)


def active_model_info(engine: Engine) -> ModelInfo | None:
    """The active model version and its headline accuracy from the card's metrics."""
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
    units = metrics.get("leave_one_source_out")
    if isinstance(units, dict):  # a fused model (Detector v3): every source scored while left out
        rows = [u for name, u in units.items() if "[" not in name and isinstance(u, dict) and u.get("n")]
        n = sum(int(u["n"]) for u in rows)
        if n:
            acc = sum(float(u["accuracy"]) * int(u["n"]) for u in rows) / n
            return acc, f"left-out accuracy on {len(rows)} sources"
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
