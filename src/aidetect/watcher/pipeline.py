"""Glue between the watcher and the store/broker: register complete files, enqueue them,
report each file's result once it has one, and (optionally) move scored files out of the way."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("aidetect.watcher")


class RegisterAndEnqueue:
    """The watcher's sink: ``ingest.submit`` to the workers (hash, a row per file and per
    distinct content, batched tasks). Content already scored by the active model is not
    queued again. With ``track``, remembers path -> image id for :class:`ScoredFileMover`;
    every registered file id is kept in ``handed`` for :class:`ResultReporter`."""

    def __init__(self, inbox: Path, track: bool = False) -> None:
        self.inbox = inbox
        self.track = track
        self.registered = 0
        self.enqueued = 0
        self.skipped: list[str] = []
        self.handed: list[int] = []
        self.pending: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, paths: list[str]) -> None:
        from aidetect.ingest import submit

        reg = submit([Path(p) for p in paths], root=self.inbox, route="workers").registration
        with self.lock:
            self.registered += len(paths) - len(reg.skipped)
            self.enqueued += len(reg)
            self.skipped.extend(reg.skipped)
            self.handed.extend(reg.file_ids)
            if self.track:
                skipped = set(reg.skipped)
                registered = [p for p in paths if str(Path(p).absolute()) not in skipped]
                self.pending.update(zip(registered, reg.ids, strict=True))
        log.info("%d files complete -> %d queued", len(paths), len(reg))


class ResultReporter:
    """Follows the files the sink handed off and gives each one's result row once, when it
    is final (done or failed): what ``aidetect up`` prints per file, and its summary."""

    def __init__(self, sink: RegisterAndEnqueue) -> None:
        self.sink = sink
        self.waiting: dict[int, None] = {}
        self.counts: dict[str, int] = {"done": 0, "failed": 0, "ai": 0, "real": 0, "uncertain": 0}
        self._taken = 0
        self._skipped_seen = 0
        self._mark: tuple[int, str] | None = None  # the store's change marker at the last read

    def newly_skipped(self) -> list[str]:
        with self.sink.lock:
            out = self.sink.skipped[self._skipped_seen :]
            self._skipped_seen = len(self.sink.skipped)
        return out

    def poll(self) -> list[Any]:
        """The rows (``aidetect.store.results.ResultRow``) that became final since the last call."""
        from aidetect.store import read_engine
        from aidetect.store.results import rows_for_files
        from aidetect.store.status import change_marker

        with self.sink.lock:
            new = self.sink.handed[self._taken :]
            self._taken = len(self.sink.handed)
        self.waiting.update(dict.fromkeys(new))
        if not self.waiting:
            return []
        engine = read_engine()
        mark = change_marker(engine)  # two index look-ups: re-read the waiting rows only on a change
        if mark == self._mark and not new:
            return []
        self._mark = mark
        final = [r for r in rows_for_files(engine, list(self.waiting)) if r.status in ("done", "failed")]
        for r in final:
            self.waiting.pop(r.file_id, None)
            self.counts[r.status] += 1
            if r.status == "done":
                self.counts["uncertain" if r.uncertain else str(r.label)] += 1
        return final

    def summary(self) -> str:
        c = self.counts
        with self.sink.lock:
            skipped = len(self.sink.skipped)
        parts = [
            f"{c['done'] + c['failed'] + len(self.waiting)} files this run: {c['done']} scored "
            f"(ai {c['ai']}, real {c['real']}, undecided {c['uncertain']})",
            f"{c['failed']} failed",
        ]
        if self.waiting:
            parts.append(f"{len(self.waiting)} still queued (scored at the next start)")
        if skipped:
            parts.append(f"{skipped} skipped (not images)")
        return ", ".join(parts)


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
