"""What `aidetect up` prints, as a person at a terminal reads it: the start lines, then one
line per file as it gets its result, and an honest summary at the stop; the worker's Celery
banner and warnings go to its log file, not the terminal."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def test_quiet_up_prints_a_line_per_file_and_an_honest_summary(
    aidetect_home: Path, run_up, make_image_bytes
) -> None:
    inbox = aidetect_home / "inbox"
    up = run_up("--workers", "1")
    names = [f"photo_{i}.png" for i in range(3)]
    for i, name in enumerate(names):
        (inbox / name).write_bytes(make_image_bytes(900 + i))
    (inbox / "broken.jpg").write_text("not a picture")
    (inbox / "README.txt").write_text("what these files are\n")
    end = time.monotonic() + 180
    while time.monotonic() < end:
        shown = [line for line in up.lines if line.lstrip().startswith(("done", "failed"))]
        if len(shown) >= 4:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("no per-file lines:\n" + up.output)
    assert up.stop(signal.SIGTERM) == 0, up.output
    out = up.output
    for name in names:
        assert any(name in line and ("AI-GENERATED" in line or "REAL PHOTO" in line or "UNDECIDED" in line)
                   for line in up.lines), out
    assert any("broken.jpg" in line and "FAILED" in line for line in up.lines), out
    assert any("README.txt" in line and "not an image" in line for line in up.lines), out
    summary = up.lines[-1]
    assert "4 files this run: 3 scored" in summary and "1 failed" in summary, summary
    assert "1 skipped (not images)" in summary, summary
    assert "queued this run" not in out
    for noise in ("celery@", "[config]", "SecurityWarning", "No hostname was supplied"):
        assert noise not in out, noise
    log = aidetect_home / "logs" / "worker.log"
    assert log.is_file() and log.stat().st_size > 0
