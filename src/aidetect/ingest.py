"""Put files into the pipeline: register by content hash, enqueue batches, or score in
this process. Used by ``aidetect scan``, the watcher, ``aidetect up`` and the GUI.

Nothing here imports torch (only :func:`score_inline` does, when it loads the model), so a
process that enqueues can still fork Celery workers safely.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aidetect.config import Settings, get_settings
from aidetect.db.engine import session_scope
from aidetect.db.migrate import init_db
from aidetect.db.models import Image, Prediction, utcnow
from aidetect.db.queries import live_workers
from aidetect.db.registry import active_version
from aidetect.errors import AidetectError

HASH_CHUNK = 1 << 20


class BrokerUnavailable(AidetectError):
    """The configured broker cannot be reached."""


class Registration(list[int]):
    """Outcome of :func:`register_files`: a list of the image ids to score (queued now:
    pass it to :func:`enqueue` or :func:`score_inline`), with details as attributes:
    ``ids[i]`` is the image id of ``paths[i]``; ``already_done`` were scored by the active
    version; ``failed`` failed at registration (unreadable, symlink out of the folder)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []
        self.already_done: list[int] = []
        self.failed: list[int] = []

    @property
    def to_score(self) -> list[int]:
        return list(self)

    @property
    def distinct(self) -> list[int]:
        return list(dict.fromkeys(self.ids))


# -- discovery ------------------------------------------------------------------------------
def iter_files(root: Path | str, recursive: bool = False) -> Iterator[Path]:
    """Candidate files under ``root`` (sorted; hidden names skipped; symlinks included so
    that ones leading outside ``root`` can be reported)."""
    root = Path(root)
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        raise AidetectError(f"{root}: no such folder")
    walker = os.walk(root) if recursive else [(str(root), [], os.listdir(root))]
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.is_dir():  # a symlink to a folder: not followed
                continue
            if p.is_symlink() or p.is_file() or not p.exists():
                yield p


def file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _check(path: Path, root: Path | None) -> tuple[str | None, str | None, int | None]:
    """(sha256, error, size) for one path."""
    if root is not None and path.is_symlink():
        target = path.resolve()
        if not _inside(target, root.resolve()):
            return None, f"symlink leads outside the scanned folder (-> {target})", None
    if not path.exists():
        return None, "file not found (deleted, or a dangling symlink)", None
    if not path.is_file():
        return None, "not a regular file", None
    if not os.access(path, os.R_OK):
        return None, "unreadable: permission denied", None
    try:
        sha, size = file_sha256(path)
    except PermissionError:
        return None, "unreadable: permission denied", None
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}", None
    return sha, None, size


_TRANSIENT = ("not found", "no such file", "changed since", "time limit", "permission denied", "model")


def _transient(error: str | None) -> bool:
    """Failures that may not happen again (the file moved, a timeout, a missing model)."""
    text = (error or "").lower()
    return any(t in text for t in _TRANSIENT)


# -- registration -----------------------------------------------------------------------------
def _insert(session: Session):  # noqa: ANN202
    return (sqlite if session.get_bind().dialect.name == "sqlite" else postgresql).insert


def register_files(
    paths: Iterable[Path | str], root: Path | str | None = None, rescan: bool = False
) -> Registration:
    """Register files by content hash (one image row per distinct content).

    An image already scored by the active model version is not queued again unless
    ``rescan``; everything else is set ``queued`` (with this path) and returned in
    ``to_score``. Unreadable paths and symlinks leading outside ``root`` become ``failed``
    rows keyed by path. Call :func:`enqueue` or :func:`score_inline` with ``to_score``.
    """
    init_db()
    version = active_version()
    root_p = Path(root).absolute() if root is not None else None
    checked: list[tuple[str, str, str | None, str | None, int | None]] = []
    for raw in paths:
        p = Path(raw).absolute()
        sha, err, size = _check(p, root_p)
        key = f"sha256:{sha}" if sha else f"path:{p}"
        checked.append((key, str(p), sha, err, size))
    reg = Registration()
    if not checked:
        return reg
    now = utcnow()
    with session_scope() as s:
        ins = _insert(s)
        for i in range(0, len(checked), 500):
            chunk = checked[i : i + 500]
            values = {
                key: {
                    "key": key, "sha256": sha, "path": path, "size": size, "status": "failed" if err else "queued",
                    "error": err, "first_seen": now, "updated": now,
                }
                for key, path, sha, err, size in chunk
            }
            s.execute(ins(Image).values(list(values.values())).on_conflict_do_nothing(index_elements=["key"]))
        keys = list(dict.fromkeys(c[0] for c in checked))
        rows: dict[str, Image] = {}
        for i in range(0, len(keys), 500):
            for r in s.scalars(select(Image).where(Image.key.in_(keys[i : i + 500]))).all():
                rows[r.key] = r
        ids = [r.id for r in rows.values()]
        scored: set[int] = set()
        for i in range(0, len(ids), 500):
            scored.update(
                s.scalars(
                    select(Prediction.image_id).where(
                        Prediction.image_id.in_(ids[i : i + 500]), Prediction.model_version == version
                    )
                ).all()
            )
        seen: set[int] = set()
        requeue: dict[int, str] = {}
        refail: dict[int, str] = {}
        for key, path, _sha, err, _size in checked:
            row = rows[key]
            reg.ids.append(row.id)
            if row.id in seen:
                continue
            seen.add(row.id)
            if err:
                reg.failed.append(row.id)
                if row.error != err or row.status != "failed":
                    refail[row.id] = err
            elif not rescan and row.id in scored and row.status == "done":
                reg.already_done.append(row.id)
            elif not rescan and row.status == "failed" and row.path == path and not _transient(row.error):
                reg.failed.append(row.id)  # same bytes at the same path: same failure
            else:
                reg.append(row.id)
                if row.status != "queued" or row.path != path or row.error:
                    requeue[row.id] = path
        for image_id, path in requeue.items():
            s.execute(
                update(Image).where(Image.id == image_id).values(status="queued", error=None, path=path, updated=now)
            )
        for image_id, err in refail.items():
            s.execute(update(Image).where(Image.id == image_id).values(status="failed", error=err, updated=now))
    return reg


# -- queueing -------------------------------------------------------------------------------
def _batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield [int(x) for x in ids[i : i + size]]


def check_broker(settings: Settings | None = None, timeout_s: float = 3.0) -> None:
    """Raise :class:`BrokerUnavailable` (one line) when the broker cannot be reached."""
    settings = settings or get_settings()
    from aidetect.worker.app import client_app

    app = client_app(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - any transport error means "down"
        where = settings.broker_url.split("@")[-1]
        raise BrokerUnavailable(
            f"broker not reachable at {where} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "start it, or unset AIDETECT_BROKER_URL to use the embedded broker"
        ) from None


def enqueue(ids: Sequence[int], batch_size: int | None = None, force: bool = False) -> int:
    """Send ``ids`` to the workers in batches (task ``aidetect.score_batch`` by name).
    Returns the number of tasks sent. Raises :class:`BrokerUnavailable` if the broker is down."""
    if not ids:
        return 0
    settings = get_settings()
    size = max(1, batch_size or settings.task_batch_size)
    from aidetect.worker.app import QUEUE, TASK_NAME, client_app

    app = client_app(settings)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for batch in _batches(list(ids), size):
                app.send_task(
                    TASK_NAME, args=[batch], kwargs={"force": force}, queue=QUEUE, producer=producer,
                    retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
                )
                sent += 1
    except AidetectError:
        raise
    except Exception as exc:  # noqa: BLE001
        where = settings.broker_url.split("@")[-1]
        raise BrokerUnavailable(
            f"could not queue work on the broker at {where} after {sent} tasks ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    return sent


_inline_scorer = None


def score_inline(
    ids: Sequence[int], batch_size: int | None = None, force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Score ``ids`` in this process with the same code as the worker task (loads the
    active model once per process). ``progress(n)`` is called after each batch."""
    global _inline_scorer
    from aidetect.worker.scoring import Scorer

    if _inline_scorer is None:
        _inline_scorer = Scorer()
    size = max(1, batch_size or get_settings().task_batch_size)
    totals = {"done": 0, "failed": 0, "skipped": 0}
    for batch in _batches(list(ids), size):
        rep = _inline_scorer.score(batch, force=force)
        totals["done"] += rep.done
        totals["failed"] += rep.failed
        totals["skipped"] += rep.skipped
        if progress is not None:
            progress(len(batch))
    return totals


def stranded_ids(older_than_s: float = 0.0, limit: int | None = None) -> list[int]:
    """Images left ``queued`` or ``processing`` for at least ``older_than_s`` (e.g. their
    messages were lost with a broker that kept nothing). Re-enqueueing them is safe: the
    task skips what is already scored."""
    from datetime import timedelta

    init_db()
    with session_scope() as s:
        stmt = select(Image.id).where(Image.status.in_(("queued", "processing"))).order_by(Image.id)
        if older_than_s > 0:
            stmt = stmt.where(Image.updated <= utcnow() - timedelta(seconds=older_than_s))
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(s.scalars(stmt).all())


def workers_alive(within_s: float = 10.0) -> int:
    """Number of workers whose heartbeat (in the store) is at most ``within_s`` old."""
    init_db()
    with session_scope() as s:
        return len(live_workers(s, within_s))


def queue_depth(settings: Settings | None = None) -> int | None:
    """Messages waiting on the broker (batches, not images); None if it cannot be read."""
    settings = settings or get_settings()
    from aidetect.worker.app import QUEUE, embedded_dirs, is_embedded

    if is_embedded(settings):
        qdir = embedded_dirs(settings)["queue"]
        try:
            return sum(1 for n in os.listdir(qdir) if n.endswith(f".{QUEUE}.msg"))
        except OSError:
            return 0
    if settings.broker_url.startswith(("redis://", "rediss://")):
        try:
            import redis

            client = redis.Redis.from_url(settings.broker_url, socket_timeout=1, socket_connect_timeout=1)
            return int(client.llen(QUEUE))
        except Exception:  # noqa: BLE001
            return None
    return None


def stale_ids(root: Path | str | None = None) -> list[int]:
    """Images whose results all come from model versions other than the active one (scored
    by an older model), optionally only those under ``root``; set ``queued`` and returned
    for :func:`enqueue` (``aidetect scan --rescore``). Their old predictions are kept."""
    init_db()
    version = active_version()
    with session_scope() as s:
        scored = select(Prediction.image_id)
        by_active = select(Prediction.image_id).where(Prediction.model_version == version)
        stmt = (
            select(Image.id)
            .where(Image.status == "done", Image.id.in_(scored), Image.id.not_in(by_active))
            .order_by(Image.id)
        )
        if root is not None:
            stmt = stmt.where(Image.path.startswith(str(Path(root).absolute()) + os.sep))
        ids = list(s.scalars(stmt).all())
        now = utcnow()
        for i in range(0, len(ids), 500):
            s.execute(update(Image).where(Image.id.in_(ids[i : i + 500])).values(status="queued", updated=now))
    return ids
