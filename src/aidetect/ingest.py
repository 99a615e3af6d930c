"""Put files into the pipeline: find them, hash them, register them (``aidetect.store``)
and have them scored by the workers or in this process (:func:`submit`, the one place that
decides). Used by ``aidetect scan``, the inbox watcher (``aidetect up``) and the dashboard.

Nothing here imports torch (only :func:`score_inline` does, when it loads the model), so a
process that enqueues can still fork Celery workers safely.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aidetect.config import get_settings
from aidetect.errors import AidetectError
from aidetect.model.decode import file_kind, format_from_magic
from aidetect.store import writes
from aidetect.store.model_versions import active_model, active_version
from aidetect.store.status import live_workers
from aidetect.store.writes import FileFacts, Registration
from aidetect.worker import broker

HASH_CHUNK = 1 << 20
# Names of image files (the dashboard's folder upload and file dialog offer these).
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff",
    ".avif", ".heic", ".heif", ".ico", ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".j2k", ".tga", ".qoi",
})


# -- discovery ------------------------------------------------------------------------------
def iter_files(root: Path | str, recursive: bool = False, images_only: bool = False) -> Iterator[Path]:
    """Candidate files under ``root`` (sorted; hidden names skipped; symlinks included so
    that ones leading outside ``root`` can be reported). ``images_only``: only names with an
    image suffix (``IMAGE_SUFFIXES``)."""
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
            if name.startswith(".") or (images_only and Path(name).suffix.lower() not in IMAGE_SUFFIXES):
                continue
            p = Path(dirpath) / name
            if p.is_dir():  # a symlink to a folder: not followed
                continue
            # everything else is a candidate: regular files, symlinks (loops and dangling ones
            # included) and FIFOs, sockets or devices, which registration fails with the reason
            yield p


def looks_like_image(path: Path) -> bool:
    """Whether ``path`` may be an image: an image name (``IMAGE_SUFFIXES``) or the leading
    bytes of an image format. What is plainly not one (``README.txt``, ``notes.pdf``) is
    skipped by scans and the inbox rather than failed; an image that does not decode fails."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return True  # cannot tell: registration reports why it cannot be read
    return format_from_magic(head) is not None


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 and size of a regular file, read in chunks. Opened non-blocking and checked on
    the descriptor: a path that became a FIFO since it was inspected fails, never blocks."""
    h = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
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


def inspect_file(path: Path, root: Path | None = None) -> FileFacts:
    """Hash one path (``path`` absolute) and say why it cannot be scored, if it cannot."""
    try:
        st = os.stat(path)  # follows symlinks: a loop is ELOOP here, never a RuntimeError later
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return FileFacts(str(path), None, error="symlink loop (the link leads back to itself)")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return FileFacts(str(path), None, error="file not found (deleted, or a dangling symlink)")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return FileFacts(str(path), None, error="unreadable: permission denied")
        return FileFacts(str(path), None, error=f"unreadable: {exc.strerror or exc}")
    if root is not None and path.is_symlink():
        target = path.resolve()
        if not _inside(target, root.resolve()):
            return FileFacts(str(path), None, error=f"symlink leads outside the scanned folder (-> {target})")
    if not stat.S_ISREG(st.st_mode):
        return FileFacts(str(path), None, error=f"not a regular file: {file_kind(st.st_mode)}")
    if not os.access(path, os.R_OK):
        return FileFacts(str(path), None, error="unreadable: permission denied")
    try:
        mtime = path.stat().st_mtime
        sha, size = file_sha256(path)
    except PermissionError:
        return FileFacts(str(path), None, error="unreadable: permission denied")
    except OSError as exc:
        return FileFacts(str(path), None, error=f"unreadable: {exc.strerror or exc}")
    return FileFacts(str(path), sha, size=size, mtime=mtime)


def register_files(
    paths: Iterable[Path | str], root: Path | str | None = None, rescan: bool = False
) -> Registration:
    """Hash ``paths`` and register them (``aidetect.store.writes.register``): one file row
    per path, one image row per distinct content. Content already scored by the active model
    version is not queued again unless ``rescan``; unreadable paths and symlinks leading
    outside ``root`` become failed rows; files that are plainly not images
    (:func:`looks_like_image`) get no row and are listed in ``skipped``."""
    root_p = Path(root).absolute() if root is not None else None
    facts, skipped = [], []
    for raw in paths:
        path = Path(raw).absolute()
        if path.is_file() and not path.is_symlink() and not looks_like_image(path):
            skipped.append(str(path))
            continue
        facts.append(inspect_file(path, root_p))
    reg = writes.register(facts, active_version(), rescan=rescan)
    reg.skipped = skipped
    return reg


# -- scoring ---------------------------------------------------------------------------------
_inline_scorer = None


def score_inline(
    ids: Sequence[int], batch_size: int | None = None, force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Score ``ids`` in this process with the same code as the worker task (loads the
    active model once per process). ``progress(n)`` is called after each batch."""
    global _inline_scorer
    from aidetect.worker.scoring import BatchScorer

    if _inline_scorer is None:
        _inline_scorer = BatchScorer()
    size = max(1, batch_size or get_settings().task_batch_size)
    totals = {"done": 0, "failed": 0, "skipped": 0}
    for batch in broker.batches(list(ids), size):
        rep = _inline_scorer.score(batch, force=force)
        totals["done"] += rep.done
        totals["failed"] += rep.failed
        totals["skipped"] += rep.skipped
        if progress is not None:
            progress(len(batch))
    return totals


def stage_for_workers(ids: list[int]) -> list[int]:
    """With a blob layer (``AIDETECT_BLOBS`` other than ``file``): stage the bytes of ``ids``
    and the active model's files for workers on other hosts; returns the ids to queue (those
    whose file could not be staged are failed with the reason). Without one: ``ids``."""
    from aidetect.blobs import blob_layer

    layer = blob_layer()
    if layer is None or not ids:
        return ids
    from aidetect.blobs import models, staging

    row = active_model()
    models.publish(row.version, row.path, layer)
    failed = staging.stage_images(ids, layer).failed
    return [i for i in ids if i not in failed]


def queue_for_workers(ids: Sequence[int], batch_size: int | None = None, force: bool = False) -> int:
    """Send ``ids`` to the workers (:func:`aidetect.worker.broker.enqueue`); with a blob
    layer, each batch is staged just before it is sent, so workers start on the first batch
    while the rest is staged (images that could not be staged are failed, not sent).
    Returns the number of tasks sent."""
    from aidetect.blobs import blob_layer

    if blob_layer() is None:
        return broker.enqueue(ids, batch_size=batch_size, force=force)
    from aidetect.blobs import BlobsUnavailable

    size = max(1, batch_size or get_settings().task_batch_size)
    sent = handed = 0
    try:
        for part in broker.batches(list(ids), size):
            sent += broker.enqueue(stage_for_workers(part), batch_size=size, force=force)
            handed += len(part)
    except (BlobsUnavailable, broker.BrokerUnavailable) as exc:
        # Redis went away mid-way: what was sent stays sent (staged first); the rest is
        # registered and queued in the store, and the same command (or `up`) sends it later
        raise type(exc)(f"{exc}; {handed} of {len(ids)} images were sent, the other {len(ids) - handed} "
                        "stay queued in the store: run the same command again once it answers") from None
    return sent


# -- the one submit path ---------------------------------------------------------------------
ROUTES = ("auto", "workers", "inline")
InlineScoring = Callable[[list[int], Callable[[int], None] | None], object]


@dataclass
class Submission:
    """What :func:`submit` did: the registration, and where the work went: ``"known"``
    (nothing to score), ``"workers"`` (queued for ``workers`` live workers; none when the
    caller asked for workers regardless) or ``"inline"`` (scored in this process)."""

    registration: Registration
    route: str
    workers: int = 0
    tasks: int = 0


def live_worker_count(wait_s: float = 0.0) -> int:
    """Live workers (heartbeats in the store), waiting up to ``wait_s`` for the first one."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = len(live_workers())
        if alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.5)


def submit(
    paths: Iterable[Path | str],
    *,
    root: Path | str | None = None,
    rescan: bool = False,
    route: str = "auto",
    worker_wait_s: float = 0.0,
    batch_size: int | None = None,
    scorer: InlineScoring | None = None,
    progress: Callable[[int], None] | None = None,
    on_route: Callable[[Registration, str, int], None] | None = None,
) -> Submission:
    """Register ``paths`` and have what needs scoring scored: the one decision, for
    ``scan``, the dashboard's upload and the inbox, of workers or this process.

    ``route``: ``"workers"`` queues on the broker whether or not a worker is alive (the
    inbox; ``scan --no-fallback``); ``"inline"`` scores here; ``"auto"`` queues when a worker
    is alive within ``worker_wait_s`` and otherwise scores here. In-process scoring uses
    ``scorer(ids, progress)`` (default :func:`score_inline`; the dashboard's runs in its
    helper process); ``progress(n)`` counts images. ``on_route(registration, route,
    workers)`` is called once the route is known, before any scoring."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, not {route!r}")
    reg = register_files(paths, root=root, rescan=rescan)
    return dispatch(reg, route=route, force=rescan, worker_wait_s=worker_wait_s, batch_size=batch_size,
                    scorer=scorer, progress=progress, on_route=on_route)


def dispatch(
    reg: Registration,
    *,
    route: str = "auto",
    force: bool = False,
    worker_wait_s: float = 0.0,
    batch_size: int | None = None,
    scorer: InlineScoring | None = None,
    progress: Callable[[int], None] | None = None,
    on_route: Callable[[Registration, str, int], None] | None = None,
) -> Submission:
    """The second half of :func:`submit`, for images already registered (``scan
    --rescore`` re-queues stored ones): choose the route and score or queue ``reg``."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, not {route!r}")
    if not reg:
        if on_route is not None:
            on_route(reg, "known", 0)
        return Submission(reg, "known")
    workers = live_worker_count(worker_wait_s) if route == "auto" else 0
    chosen = "workers" if route == "workers" or workers else "inline"
    if on_route is not None:
        on_route(reg, chosen, workers)
    if chosen == "workers":
        tasks = queue_for_workers(list(reg), batch_size=batch_size, force=force)
        return Submission(reg, "workers", workers, tasks)
    if scorer is not None:
        scorer(list(reg), progress)
    else:
        score_inline(list(reg), batch_size=batch_size, force=force, progress=progress)
    return Submission(reg, "inline")
