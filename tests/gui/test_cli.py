"""`aidetect gui` as a command: help, and a one-line error (exit 2) without a display."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _run(args: list[str], home: Path, display: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    env["AIDETECT_HOME"] = str(home)
    if not display:
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", "aidetect.cli", "gui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gui_help_and_no_display(tmp_path: Path) -> None:
    helped = _run(["--help"], tmp_path, display=True)
    assert helped.returncode == 0
    assert "dashboard" in helped.stdout
    failed = _run([], tmp_path, display=False)
    assert failed.returncode == 2
    assert failed.stderr.strip().startswith("aidetect: error: no display")
    assert "Traceback" not in failed.stderr
