"""`aidetect up --move-scored`: scored files leave the inbox for processed/ or failed/."""

from __future__ import annotations

import shutil
from pathlib import Path

from aidetect.watcher.pipeline import RegisterAndEnqueue, ScoredFileMover


def test_scored_files_move_to_processed_and_failed(aidetect_home: Path, mini_dir: Path) -> None:
    from sqlalchemy import select

    from aidetect.ingest import score_inline
    from aidetect.store.engine import session_scope
    from aidetect.store.tables import Image

    inbox = aidetect_home / "inbox"
    (inbox / "sub").mkdir(parents=True)
    srcs = sorted((mini_dir / "real").iterdir())[:3]
    for f in srcs:
        shutil.copy(f, inbox / "sub" / f.name)
    shutil.copy(srcs[0], inbox / "duplicate.jpg")
    (inbox / "broken.jpg").write_bytes(b"not an image")
    paths = sorted(str(p) for p in inbox.rglob("*") if p.is_file())

    sink = RegisterAndEnqueue(inbox, track=True)
    sink(paths)  # registers, and queues on the embedded broker (no worker needed to send)
    assert sink.enqueued == 4  # 3 distinct images + the broken file; the duplicate is one of them
    mover = ScoredFileMover(inbox, sink)
    assert mover.run_once() == 0  # nothing is final yet: nothing moves
    score_inline(sorted(set(sink.pending.values())))
    assert mover.run_once() == 5
    left = [p for p in inbox.rglob("*") if p.is_file()]
    assert all(p.relative_to(inbox).parts[0] in ("processed", "failed") for p in left), left
    assert (inbox / "failed" / "broken.jpg").is_file()
    assert (inbox / "processed" / "duplicate.jpg").is_file()
    for f in srcs:
        assert (inbox / "processed" / "sub" / f.name).is_file()
    with session_scope() as s:
        stored = set(s.scalars(select(Image.path)).all())
    assert all(Path(p).exists() for p in stored), stored  # the store follows the moves
    assert mover.run_once() == 0
