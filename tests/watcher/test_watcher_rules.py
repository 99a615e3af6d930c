"""The watcher's rules on a real filesystem with a real watchdog observer (inotify and
polling); the sink is a list, so these tests need neither a store nor a broker."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from aidetect.watcher.batcher import Debouncer
from aidetect.watcher.names import is_candidate, is_temporary
from aidetect.watcher.service import InboxWatcher
from aidetect.watcher.tracker import CompletenessTracker


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, paths: list[str]) -> None:
        with self.lock:
            self.batches.append(list(paths))

    @property
    def paths(self) -> list[str]:
        with self.lock:
            return [p for b in self.batches for p in b]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.paths) < n:
            time.sleep(0.05)
        return self.paths


def test_temporary_names() -> None:
    for name in ("a.jpg.part", "a.tmp", "x.crdownload", "a.jpg~", ".hidden.jpg", "A.PART"):
        assert is_temporary(name), name
    for name in ("a.jpg", "photo.png", "été 2024.jpeg", "part.jpg"):
        assert not is_temporary(name), name


def test_candidates(tmp_path: Path) -> None:
    assert is_candidate(tmp_path / "sub" / "a.jpg", tmp_path)
    assert not is_candidate(tmp_path / ".cache" / "a.jpg", tmp_path)
    assert not is_candidate(tmp_path / "processed" / "a.jpg", tmp_path)
    assert is_candidate(tmp_path / "processed" / "a.jpg", tmp_path, skip_output_dirs=False)
    assert not is_candidate(tmp_path.parent / "elsewhere.jpg", tmp_path)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_tracker_polling_needs_stable_size_and_mtime(tmp_path: Path) -> None:
    clock = FakeClock()
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 10)
    tr = CompletenessTracker(polling=True, stable_s=1.0, clock=clock)
    tr.seen(str(f))
    assert tr.poll() == []  # first look records size+mtime
    clock.t += 0.5
    with f.open("ab") as fh:
        fh.write(b"more")  # still growing
    assert tr.poll() == []
    clock.t += 1.1
    assert tr.poll() == [str(f)]  # unchanged across two checks 1 s apart
    assert tr.pending == 0


def test_tracker_hands_a_file_off_once_despite_late_events(tmp_path: Path) -> None:
    """A polling snapshot taken late reports a write the tracker already waited out: that
    event does not hand the file off again; a real change after the hand-off does."""
    clock = FakeClock()
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 10)
    tr = CompletenessTracker(polling=True, stable_s=1.0, clock=clock)
    tr.seen(str(f))
    tr.poll()
    clock.t += 1.1
    assert tr.poll() == [str(f)]
    tr.seen(str(f), wrote=True)  # the late "modified" event of the write before the hand-off
    clock.t += 5
    assert tr.poll() == [] and tr.poll() == [] and tr.pending == 0
    with f.open("ab") as fh:
        fh.write(b"changed")  # rewritten after the hand-off: a new file to hand off
    tr.seen(str(f), wrote=True)
    tr.poll()
    clock.t += 1.1
    assert tr.poll() == [str(f)]
    tr.gone(str(f))
    f.write_bytes(b"x" * 17)
    tr.seen(str(f))  # deleted and created again: new
    tr.poll()
    clock.t += 1.1
    assert tr.poll() == [str(f)]


def test_tracker_inotify_created_only_vs_written(tmp_path: Path) -> None:
    clock = FakeClock()
    moved_in = tmp_path / "moved_in.jpg"
    moved_in.write_bytes(b"data")
    writing = tmp_path / "writing.jpg"
    writing.write_bytes(b"partial")
    tr = CompletenessTracker(polling=False, settle_s=1.0, quiet_s=10.0, clock=clock)
    tr.seen(str(moved_in))  # created, never closed: moved in from outside
    tr.seen(str(writing), wrote=True)  # being written: wait for close
    assert tr.poll() == []
    clock.t += 1.5
    assert tr.poll() == [str(moved_in)]
    clock.t += 2
    assert tr.poll() == []  # a writer that paused is not cut short
    tr.complete(str(writing))  # closed
    assert tr.poll() == [str(writing)]
    tr.seen(str(tmp_path / "deleted.jpg"))
    assert tr.poll() == [] and tr.pending == 0  # vanished: forgotten


def test_debouncer_batches_bursts_and_caps_wait() -> None:
    clock = FakeClock()
    d = Debouncer(quiet_s=0.3, max_wait_s=1.0, max_items=100, clock=clock)
    for i in range(5):
        d.add([f"f{i}"])
        clock.t += 0.1
        assert d.due() == []
    clock.t += 0.3
    assert d.due() == [f"f{i}" for i in range(5)]
    # a steady trickle still flows after max_wait_s
    out: list[list[str]] = []
    for i in range(15):
        d.add([f"g{i}"])
        clock.t += 0.1
        if got := d.due():
            out.append(got)
    assert out and len(out[0]) in (10, 11)  # ~1 s worth
    d.add([f"h{i}" for i in range(100)])
    assert len(d.due()) == 100 + 15 - len(out[0])  # size cap flushes at once


def _slow_write(path: Path, data: bytes, seconds: float, chunks: int = 10) -> None:
    with path.open("wb") as fh:
        step = len(data) // chunks + 1
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            os.fsync(fh.fileno())
            time.sleep(seconds / chunks)


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_watcher_complete_files_only(tmp_path: Path, mini_dir: Path, polling: bool) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "old" / "deeper").mkdir(parents=True)
    sources = sorted((mini_dir / "real").iterdir())[:30]
    pre = inbox / "old" / "deeper" / "before_start.png"
    shutil.copy(sources[0], pre)
    os.utime(pre, (time.time() - 60, time.time() - 60))
    (inbox / "old" / ".hidden.png").write_bytes(b"x")
    sink = Sink()
    watcher = InboxWatcher(
        inbox, sink, polling=polling, debounce_s=0.3, poll_interval_s=0.3, settle_s=0.5
    )
    watcher.start()
    try:
        assert sink.wait_for(1) == [str(pre)]  # start-up scan
        expected = {str(pre)}
        # a burst of copies into a unicode sub-folder
        sub = inbox / "über ordner"
        sub.mkdir()
        for i, src in enumerate(sources[1:21]):
            dst = sub / f"ébène_{i}.png"
            shutil.copy(src, dst)
            expected.add(str(dst))
        # write-then-rename from a .part name
        part = inbox / "renamed.png.part"
        part.write_bytes(sources[21].read_bytes())
        final = inbox / "renamed.png"
        # slow chunked write over 2 s
        slow = inbox / "slow.png"
        big = sources[22].read_bytes() * 20
        t = threading.Thread(target=_slow_write, args=(slow, big, 2.0))
        t.start()
        time.sleep(0.8)
        assert str(slow) not in sink.paths, "a file still being written was handed off"
        assert str(part) not in sink.paths
        os.rename(part, final)
        expected.add(str(final))
        t.join()
        expected.add(str(slow))
        # moved in from outside the watched tree (created, never closed here)
        outside = tmp_path / "outside.png"
        shutil.copy(sources[23], outside)
        os.rename(outside, inbox / "moved_in.png")
        expected.add(str(inbox / "moved_in.png"))
        got = sink.wait_for(len(expected), timeout=10)
        time.sleep(1.0)  # nothing extra shows up later
        got = sink.paths
        assert set(got) == expected
        assert len(got) == len(set(got)), "a file was handed off twice"
        assert not any(p.endswith(".part") or "/." in p for p in got)
        # the burst of 20 copies arrived in a few batches, not 20
        assert len(sink.batches) <= 8, [len(b) for b in sink.batches]
        # the slow file was handed off complete
        assert slow.stat().st_size == len(big)
    finally:
        watcher.stop()
