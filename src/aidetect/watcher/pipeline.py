"""Glue between the watcher and the store/broker: register complete files, enqueue them,
and (optionally) move scored files out of the way."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

log = logging.getLogger("aidetect.watcher")


class RegisterAndEnqueue:
    """The watcher's sink: ``ingest.submit`` to the workers (hash, a row per file and per
    distinct content, batched tasks). Content already scored by the active model is not
    queued again. With ``track``, remembers path -> image id for :class:`ScoredFileMover`."""

    def __init__(self, inbox: Path, track: bool = False) -> None:
        self.inbox = inbox
        self.track = track
        self.registered = 0
        self.enqueued = 0
        self.pending: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, paths: list[str]) -> None:
        from aidetect.ingest import submit

        reg = submit([Path(p) for p in paths], root=self.inbox, route="workers").registration
        self.registered += len(paths)
        self.enqueued += len(reg)
        if self.track:
            with self.lock:
                self.pending.update(zip(paths, reg.ids, strict=True))
        log.info("%d files complete -> %d queued", len(paths), len(reg))


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
        from aidetect.store import status as store_status
        from aidetect.store import writes
        from aidetect.store.tables import FINAL_STATUSES

        with self.sink.lock:
            pending = dict(self.sink.pending)
        if not pending:
            return 0
        status = store_status.image_statuses(sorted(set(pending.values())))
        moves: list[tuple[str, int, Path]] = []
        for path, image_id in pending.items():
            st = status.get(image_id)
            if st not in FINAL_STATUSES:
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
        for path, _image_id, dest in moves:
            writes.move_file(path, str(dest))
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
