"""Faults under a running `aidetect up` (issue 20): a FIFO and a symlink loop dropped into the
inbox get failed rows with their reason; a rescan of thousands of stored files racing the
running `up` no longer locks it out of the store (every file dropped meanwhile gets its row,
no "database is locked"); a hand-off that fails is retried by the running watcher."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from aidetect.cli import main as cli_main

pytestmark = pytest.mark.timeout(400)


def _results(capsys) -> list[dict]:  # noqa: ANN001
    assert cli_main(["results", "--json", "--limit", "100000"]) == 0
    return json.loads(capsys.readouterr().out)


def _mark_all_done(version: str) -> None:
    """Give every stored image a prediction of ``version`` (as after a finished scan)."""
    from sqlalchemy import insert, select, update

    from aidetect.store.engine import session_scope
    from aidetect.store.tables import Image, Prediction, utcnow

    with session_scope() as s:
        ids = list(s.scalars(select(Image.id).where(Image.sha256.is_not(None))).all())
        s.execute(insert(Prediction), [
            {"image_id": i, "model_version": version, "label": "real", "prob_ai": 0.1, "uncertain": False,
             "created": utcnow()} for i in ids
        ])
        s.execute(update(Image).where(Image.id.in_(ids)).values(status="done"))


def test_up_survives_fifos_loops_and_a_rescan_of_thousands_of_files(
    aidetect_home: Path, up_env: dict[str, str], run_up, tmp_path: Path, make_image_bytes, capsys  # noqa: ANN001
) -> None:
    from aidetect.ingest import register_files
    from aidetect.store.model_versions import active_version

    # 6,000 distinct stored files, all scored (a rescan of them re-queues every row: the case
    # that held the SQLite write lock past the busy timeout, quadratic in the files)
    stored = tmp_path / "stored"
    stored.mkdir()
    seed = make_image_bytes(0)
    paths = []
    for i in range(6000):
        p = stored / f"s{i:05d}.png"
        p.write_bytes(seed + i.to_bytes(4, "big"))  # trailing bytes: distinct content, same pixels
        paths.append(p)
    register_files(paths)
    version = active_version()
    _mark_all_done(version)

    inbox = aidetect_home / "inbox"
    up = run_up("--workers", "1")
    os.mkfifo(inbox / "pipe.png")
    os.symlink("loop_b.png", inbox / "loop_a.png")
    os.symlink("loop_a.png", inbox / "loop_b.png")

    rescan_s: list[float] = []

    def rescan() -> None:
        t0 = time.monotonic()
        register_files(paths, root=stored, rescan=True)
        rescan_s.append(time.monotonic() - t0)

    racer = threading.Thread(target=rescan)
    racer.start()
    for i in range(40):  # files dropped into the inbox while the rescan registers
        (inbox / f"in_{i:02d}.png").write_bytes(make_image_bytes(1000 + i))
        time.sleep(0.05)
    racer.join(timeout=300)
    assert rescan_s, "the rescan did not finish"

    want = {f"in_{i:02d}.png" for i in range(40)} | {"pipe.png", "loop_a.png", "loop_b.png"}
    end = time.monotonic() + 180
    final: dict[str, dict] = {}
    while time.monotonic() < end:
        final = {Path(r["path"]).name: r for r in _results(capsys)
                 if Path(r["path"]).parent == inbox and r["status"] in ("done", "failed")}
        if want <= set(final):
            break
        time.sleep(1)
    up.stop()
    missing = want - set(final)
    assert not missing, f"no final row for {sorted(missing)}\n{up.output}"
    assert all(final[f"in_{i:02d}.png"]["status"] == "done" for i in range(40))
    assert "FIFO" in final["pipe.png"]["error"]
    assert "symlink loop" in final["loop_a.png"]["error"] and "symlink loop" in final["loop_b.png"]["error"]
    logs = up.text + "".join(p.read_text(errors="replace") for p in (aidetect_home / "logs").glob("*.log"))
    assert "database is locked" not in logs
    assert "Traceback" not in up.text


def test_a_failed_hand_off_is_retried_by_the_running_watcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from aidetect.watcher import service

    monkeypatch.setattr(service, "RETRY_FIRST_S", 0.05)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    calls: list[list[str]] = []
    failures = [OperationalError("INSERT", {}, Exception("database is locked"))] * 3

    def sink(batch: list[str]) -> None:
        calls.append(batch)
        if failures:
            raise failures.pop()

    w = service.InboxWatcher(inbox, sink, polling=True, poll_interval_s=0.1, debounce_s=0.05, max_wait_s=0.1)
    with w:
        (inbox / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 100)
        end = time.monotonic() + 20
        while time.monotonic() < end and w.handed_off == 0:
            time.sleep(0.05)
    assert w.handed_off == 1 and w.retries == 3 and w.errors == 3
    assert [Path(p).name for b in calls for p in b] == ["a.png"] * 4
