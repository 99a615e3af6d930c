"""Glue between the watcher and the store/broker: register complete files, enqueue them,
and (optionally) move scored files out of the way."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from aidetect.watcher.names import OUTPUT_DIRS

log = logging.getLogger("aidetect.watcher")


class RegisterAndEnqueue:
    """The watcher's sink: ``register_files`` (hash, one row per distinct content) then
    ``enqueue`` (batched tasks). Files already known are not queued again."""

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox
        self.registered = 0
        self.enqueued = 0

    def __call__(self, paths: list[str]) -> None:
        from aidetect.ingest import enqueue, register_files

        ids = register_files([Path(p) for p in paths], root=self.inbox)
        self.registered += len(paths)
        if ids:
            enqueue(list(ids))
            self.enqueued += len(ids)
        log.info("%d files complete -> %d queued", len(paths), len(ids))


class ScoredFileMover:
    """Moves scored files from the inbox to ``processed/`` (done) or ``failed/`` (failed),
    keeping their sub-folder, and records the new path in the store."""

    def __init__(self, inbox: Path) -> None:
        self.inbox = inbox.resolve()
        self.moved = 0

    def run_once(self, limit: int = 500) -> int:
        from sqlalchemy import select

        from aidetect.db.engine import session_scope
        from aidetect.db.models import Image

        prefix = str(self.inbox) + os.sep
        moved = 0
        with session_scope() as s:
            rows = s.scalars(
                select(Image)
                .where(Image.status.in_(("done", "failed")), Image.path.startswith(prefix))
                .limit(limit)
            ).all()
            for row in rows:
                src = Path(row.path)
                rel = src.relative_to(self.inbox)
                if rel.parts and rel.parts[0] in OUTPUT_DIRS:
                    continue
                dest_root = self.inbox / ("processed" if row.status == "done" else "failed")
                dest = _free_name(dest_root / rel)
                if not src.exists():
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.move(src, dest)
                except OSError as exc:
                    log.warning("could not move %s: %s", src, exc)
                    continue
                row.path = str(dest)
                moved += 1
        self.moved += moved
        return moved


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    for i in range(1, 10_000):
        cand = path.with_name(f"{path.stem}.{i}{path.suffix}")
        if not cand.exists():
            return cand
    return path
