"""Glue between the watcher and the store/broker: register complete files, enqueue them,
and (optionally) move scored files out of the way."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

log = logging.getLogger("aidetect.watcher")

FINAL = ("done", "failed")


class RegisterAndEnqueue:
    """The watcher's sink: ``register_files`` (hash, one row per distinct content) then
    ``enqueue`` (batched tasks). Content already scored by the active model is not queued
    again. With ``track``, remembers path -> image id for :class:`ScoredFileMover`."""

    def __init__(self, inbox: Path, track: bool = False) -> None:
        self.inbox = inbox
        self.track = track
        self.registered = 0
        self.enqueued = 0
        self.pending: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, paths: list[str]) -> None:
        from aidetect.ingest import enqueue, register_files

        reg = register_files([Path(p) for p in paths], root=self.inbox)
        self.registered += len(paths)
        if reg:
            enqueue(list(reg))
            self.enqueued += len(reg)
        if self.track:
            with self.lock:
                self.pending.update(zip(paths, reg.ids, strict=True))
        log.info("%d files complete -> %d queued", len(paths), len(reg))


def known_final_paths(paths: list[str]) -> set[str]:
    """The paths whose image row is final (done/failed) for this very file: same path, same
    size, and not modified since the row was last updated. The start-up scan skips them, so
    a restart neither re-hashes a large inbox nor re-scores it with a newly promoted model
    (that is what ``aidetect scan --rescore`` is for)."""
    import os
    from datetime import UTC

    from sqlalchemy import select

    from aidetect.db.engine import session_scope
    from aidetect.db.models import Image

    with session_scope() as s:
        rows = s.execute(
            select(Image.path, Image.size, Image.updated).where(
                Image.path.in_(paths), Image.status.in_(FINAL)
            )
        ).all()
    out: set[str] = set()
    for path, size, updated in rows:
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamp = updated if updated.tzinfo else updated.replace(tzinfo=UTC)
        if (size is None or st.st_size == size) and st.st_mtime <= stamp.timestamp():
            out.add(path)
    return out


class ScoredFileMover:
    """Moves files whose image is final from the inbox to ``processed/`` (done) or
    ``failed/`` (failed), keeping their sub-folder (duplicates included: every path that
    was handed off is moved once its content has a result), and records the new path in
    the store when the image row points at the moved file."""

    def __init__(self, inbox: Path, sink: RegisterAndEnqueue) -> None:
        self.inbox = inbox.resolve()
        self.sink = sink
        self.moved = 0

    def run_once(self) -> int:
        from sqlalchemy import select, update

        from aidetect.db.engine import session_scope
        from aidetect.db.models import Image

        with self.sink.lock:
            pending = dict(self.sink.pending)
        if not pending:
            return 0
        ids = sorted(set(pending.values()))
        status: dict[int, str] = {}
        with session_scope() as s:
            for i in range(0, len(ids), 500):
                status.update(
                    s.execute(
                        select(Image.id, Image.status).where(Image.id.in_(ids[i : i + 500]))
                    ).all()
                )
        moves: list[tuple[str, int, Path]] = []
        for path, image_id in pending.items():
            st = status.get(image_id)
            if st not in FINAL:
                continue
            src = Path(path)
            with self.sink.lock:
                self.sink.pending.pop(path, None)
            if not src.exists():
                continue
            try:
                rel = src.relative_to(self.inbox)
            except ValueError:
                continue
            dest = _free_name(self.inbox / ("processed" if st == "done" else "failed") / rel)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(src, dest)
            except OSError as exc:
                log.warning("could not move %s: %s", src, exc)
                continue
            moves.append((path, image_id, dest))
        if moves:
            with session_scope() as s:
                for path, image_id, dest in moves:
                    s.execute(
                        update(Image)
                        .where(Image.id == image_id, Image.path == path)
                        .values(path=str(dest))
                    )
        self.moved += len(moves)
        return len(moves)


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    for i in range(1, 10_000):
        cand = path.with_name(f"{path.stem}.{i}{path.suffix}")
        if not cand.exists():
            return cand
    return path
