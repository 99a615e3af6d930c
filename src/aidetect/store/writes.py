"""Every write to the store: registering files, claiming and recording scores, failures,
re-queues, moved files, worker heartbeats. Callers hand in plain values; no other module
holds SQL that changes rows.

Writes are idempotent where a retry can happen: a prediction is upserted per (image, model
version), a file row per path, an image row per content key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aidetect.store.engine import session_scope
from aidetect.store.migrate import init_db
from aidetect.store.tables import File, Image, Prediction, WorkerBeat, utcnow

CHUNK = 500  # ids per IN (...) list


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield list(values[i : i + size])


def _insert(session: Session):  # noqa: ANN202 - the dialect's INSERT with ON CONFLICT
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert
    if name == "postgresql":
        return postgresql.insert
    raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {name}")


# -- registration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FileFacts:
    """What registration needs to know about one path (``aidetect.ingest.inspect_file``)."""

    path: str  # absolute
    sha256: str | None  # None when unreadable
    size: int | None = None
    mtime: float | None = None
    error: str | None = None  # why it cannot be scored (unreadable, symlink out of the folder)

    @property
    def key(self) -> str:
        return f"sha256:{self.sha256}" if self.sha256 else f"path:{self.path}"


class Registration(list[int]):
    """Outcome of :func:`register`: a list of the image ids to score now (set ``queued``),
    with details as attributes, index-aligned with the registered paths: ``ids[i]`` is the
    image (content) id of path ``i`` and ``file_ids[i]`` its file id. ``already_done`` were
    scored by the active version; ``failed`` failed at registration or, same bytes at the
    same path, failed before for a reason that will not change. ``skipped``: paths that
    were plainly not images and got no row (set by ``aidetect.ingest.register_files``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []
        self.file_ids: list[int] = []
        self.skipped: list[str] = []
        self.already_done: list[int] = []
        self.failed: list[int] = []

    @property
    def distinct(self) -> list[int]:
        return list(dict.fromkeys(self.ids))


_TRANSIENT = ("not found", "no such file", "changed since", "time limit", "permission denied", "model")


def _transient(error: str | None) -> bool:
    """Failures that may not happen again (the file moved, a timeout, a missing model)."""
    text = (error or "").lower()
    return any(t in text for t in _TRANSIENT)


# files registered per write transaction: the lock is released between them (another writer,
# e.g. the running inbox, waits for one chunk, ~0.5 s, never for a whole rescan of 100k files)
REGISTER_CHUNK = 2000


def register(facts: Sequence[FileFacts], version: str, rescan: bool = False) -> Registration:
    """Register files: one image row per distinct content, one file row per path (moved to
    its current content). Content already scored by ``version`` is not queued again unless
    ``rescan``; everything else is set ``queued`` and returned.

    Linear in the number of files: set-based statements (a multi-row insert, executemany
    updates by primary key), in transactions of REGISTER_CHUNK files each."""
    init_db()
    reg = Registration()
    seen: set[int] = set()
    for part in chunks(facts, REGISTER_CHUNK):
        with session_scope() as s:
            _register_part(s, part, version, rescan, reg, seen)
    return reg


def _register_part(
    s: Session, facts: list[FileFacts], version: str, rescan: bool, reg: Registration, seen: set[int]
) -> None:
    """One transaction of :func:`register`; ``seen`` (image ids decided earlier) spans chunks."""
    now = utcnow()
    ins = _insert(s)
    images_t, files_t = Image.__table__, File.__table__
    for chunk in chunks(facts):
        images = {
            f.key: {
                "key": f.key, "sha256": f.sha256, "path": f.path, "size": f.size,
                "status": "failed" if f.error else "queued", "error": f.error,
                "first_seen": now, "updated": now,
            }
            for f in chunk
        }
        s.execute(ins(images_t).values(list(images.values())).on_conflict_do_nothing(index_elements=["key"]))
    keys = list(dict.fromkeys(f.key for f in facts))
    rows: dict[str, Any] = {}  # key -> (id, status, path, error): plain rows, no ORM identity map
    for chunk in chunks(keys):
        cols = select(images_t.c.key, images_t.c.id, images_t.c.status, images_t.c.path, images_t.c.error)
        rows.update((r.key, r) for r in s.execute(cols.where(images_t.c.key.in_(chunk))).all())
    for chunk in chunks(facts):
        by_path = {
            f.path: {
                "path": f.path, "image_id": rows[f.key].id, "size": f.size, "mtime": f.mtime,
                "first_seen": now, "last_seen": now,
            }
            for f in chunk
        }
        stmt = ins(files_t).values(list(by_path.values()))
        s.execute(
            stmt.on_conflict_do_update(
                index_elements=["path"],
                set_={k: stmt.excluded[k] for k in ("image_id", "size", "mtime", "last_seen")},
            )
        )
    file_ids: dict[str, int] = {}
    paths = list(dict.fromkeys(f.path for f in facts))
    for chunk in chunks(paths):
        file_ids.update(s.execute(select(files_t.c.path, files_t.c.id).where(files_t.c.path.in_(chunk))).all())
    ids = [r.id for r in rows.values()]
    scored: set[int] = set()
    pred_t = Prediction.__table__
    for chunk in chunks(ids):
        scored.update(
            s.scalars(
                select(pred_t.c.image_id).where(pred_t.c.image_id.in_(chunk), pred_t.c.model_version == version)
            ).all()
        )
    requeue: dict[int, str] = {}
    refail: dict[int, str] = {}
    for f in facts:
        row = rows[f.key]
        reg.ids.append(row.id)
        reg.file_ids.append(file_ids[f.path])
        if row.id in seen:
            continue
        seen.add(row.id)
        if f.error:
            reg.failed.append(row.id)
            if row.error != f.error or row.status != "failed":
                refail[row.id] = f.error
        elif not rescan and row.id in scored and row.status == "done":
            reg.already_done.append(row.id)
        elif not rescan and row.status == "failed" and row.path == f.path and not _transient(row.error):
            reg.failed.append(row.id)  # same bytes at the same path: same failure
        else:
            reg.append(row.id)
            if row.status != "queued" or row.path != f.path or row.error:
                requeue[row.id] = f.path
    by_id = images_t.c.id == bindparam("b_id")
    if requeue:
        s.execute(update(images_t).where(by_id).values(status="queued", error=None, path=bindparam("b_path"), updated=now),
                  [{"b_id": i, "b_path": p} for i, p in requeue.items()])
    if refail:
        s.execute(update(images_t).where(by_id).values(status="failed", error=bindparam("b_error"), updated=now),
                  [{"b_id": i, "b_error": e} for i, e in refail.items()])


def requeue_stale(version: str, under: str | None = None) -> list[int]:
    """Images whose results all come from model versions other than ``version``, optionally
    only those with a file under the folder ``under``: set ``queued`` and returned (their
    old predictions are kept)."""
    init_db()
    with session_scope() as s:
        by_active = select(Prediction.image_id).where(Prediction.model_version == version)
        stmt = (
            select(Image.id)
            .where(Image.status == "done", Image.id.in_(select(Prediction.image_id)), Image.id.not_in(by_active))
            .order_by(Image.id)
        )
        if under is not None:
            inside = select(File.image_id).where(File.path.startswith(under.rstrip(os.sep) + os.sep))
            stmt = stmt.where(Image.id.in_(inside))
        ids = list(s.scalars(stmt).all())
        now = utcnow()
        for chunk in chunks(ids):
            s.execute(update(Image).where(Image.id.in_(chunk)).values(status="queued", updated=now))
    return ids


# -- scoring --------------------------------------------------------------------------------
@dataclass
class Claim:
    """Images a scorer took on: ``todo`` as (image id, path to read, sha256), marked
    ``processing``; ``skipped`` counts those that needed no work."""

    todo: list[tuple[int, str, str | None]] = field(default_factory=list)
    skipped: int = 0


def claim(image_ids: Sequence[int], version: str, force: bool = False) -> Claim:
    """Take ``image_ids`` on for scoring by ``version``: skip what that version already
    scored (a redelivered task does no work twice) and what failed at registration; mark
    the rest ``processing``."""
    init_db()
    out = Claim()
    ids = sorted({int(i) for i in image_ids})
    with session_scope() as s:
        rows = s.scalars(select(Image).where(Image.id.in_(ids)).order_by(Image.id)).all()
        scored = set(
            s.scalars(
                select(Prediction.image_id).where(Prediction.image_id.in_(ids), Prediction.model_version == version)
            ).all()
        )
        for r in rows:
            if r.sha256 is None:  # failed at registration (unreadable path): final
                out.skipped += 1
            elif not force and r.id in scored and r.status in ("done", "processing", "queued"):
                if r.status != "done":
                    r.status, r.error, r.updated = "done", None, utcnow()
                out.skipped += 1
            else:
                out.todo.append((r.id, r.path, r.sha256))
        if out.todo:
            s.execute(
                update(Image)
                .where(Image.id.in_([t[0] for t in out.todo]))
                .values(status="processing", updated=utcnow())
            )
    return out


def upsert_prediction(session: Session, values: dict[str, Any]) -> None:
    """Insert or replace the prediction of (image_id, model_version): idempotent."""
    stmt = _insert(session)(Prediction).values(**values)
    keep = {"image_id", "model_version"}
    stmt = stmt.on_conflict_do_update(
        index_elements=["image_id", "model_version"],
        set_={k: stmt.excluded[k] for k in values if k not in keep},
    )
    session.execute(stmt)


@dataclass(frozen=True)
class ScoreRecord:
    """The outcome for one claimed image: image columns to set (status, error, size facts)
    and, when it was scored, the prediction's columns."""

    image_id: int
    image: dict[str, Any]
    prediction: dict[str, Any] | None = None


def record(outcomes: Sequence[ScoreRecord]) -> None:
    """Store a batch's outcomes in one transaction."""
    with session_scope() as s:
        for o in outcomes:
            if o.prediction is not None:
                upsert_prediction(s, {"image_id": o.image_id, **o.prediction})
            s.execute(update(Image).where(Image.id == o.image_id).values(**o.image, updated=utcnow()))


def mark_failed(ids: Sequence[int], reason: str, only_status: Sequence[str] | None = None) -> None:
    """Set ``ids`` failed with ``reason`` (only those in ``only_status`` when given)."""
    if not ids:
        return
    with session_scope() as s:
        for chunk in chunks(list(ids)):
            stmt = update(Image).where(Image.id.in_(chunk))
            if only_status:
                stmt = stmt.where(Image.status.in_(list(only_status)))
            s.execute(stmt.values(status="failed", error=reason, updated=utcnow()))


# -- files ----------------------------------------------------------------------------------
def move_file(old_path: str, new_path: str) -> None:
    """A file was moved (``up --move-scored``): its row, and the content's read location
    when it pointed there, follow it."""
    with session_scope() as s:
        s.execute(delete(File).where(File.path == new_path))  # a stale row of a reused name
        s.execute(update(File).where(File.path == old_path).values(path=new_path, last_seen=utcnow()))
        s.execute(update(Image).where(Image.path == old_path).values(path=new_path))


# -- worker heartbeats ----------------------------------------------------------------------
def beat(name: str, pid: int, concurrency: int, broker: str, host: str | None = None) -> None:
    """Record that worker ``name`` (on machine ``host``) is alive now; forget workers silent
    for an hour."""
    with session_scope() as s:
        row = s.scalar(select(WorkerBeat).where(WorkerBeat.name == name))
        if row is None:
            row = WorkerBeat(name=name, started=utcnow())
            s.add(row)
        row.pid, row.concurrency, row.last_seen, row.broker, row.host = pid, concurrency, utcnow(), broker, host
        s.execute(delete(WorkerBeat).where(WorkerBeat.last_seen < utcnow() - timedelta(hours=1)))


def forget_worker(name: str) -> None:
    with session_scope() as s:
        s.execute(delete(WorkerBeat).where(WorkerBeat.name == name))
