"""``aidetect gui`` as a real process (under the test's Xvfb display, a temporary store): its
scoring helper (a ~1.3 GB multiprocessing child) and the helper's resource tracker never
outlive the window, however the window's process ends. SIGTERM closes the window as its
close button does (exit code 0); after SIGKILL the helper ends itself, through the kernel's
parent-death signal and, with that turned off, through its own watchdog."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)"),
]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid:
                out[int(entry.name)] = _cmdline(int(entry.name))
    return out


def _wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f}s: {what}")
        time.sleep(0.1)


def _start_gui(home: Path, folder: Path, tmp: Path, **env_extra: str):
    """``aidetect gui FOLDER`` (the upload at start starts the helper): the process, and the
    helper's and its resource tracker's pids once they run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    env.update(AIDETECT_HOME=str(home), **env_extra)
    log = (tmp / "gui.log").open("wb")
    gui = subprocess.Popen(
        [sys.executable, "-m", "aidetect.cli", "gui", str(folder)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    kids: dict[int, str] = {}

    def helper_started() -> bool:
        assert gui.poll() is None, f"the gui exited ({gui.returncode}): {(tmp / 'gui.log').read_text()}"
        kids.update(_children(gui.pid))
        return any("spawn_main" in c for c in kids.values())

    _wait(helper_started, 90, "the scoring helper to start")
    helper = next(p for p, c in kids.items() if "spawn_main" in c)
    trackers = [p for p, c in _children(gui.pid).items() if "resource_tracker" in c]
    return gui, helper, trackers


@pytest.fixture
def upload(tmp_path: Path, mini_dir: Path) -> Path:
    folder = tmp_path / "upload"
    folder.mkdir()
    for i in range(4):
        shutil.copy(mini_dir / "ai" / f"ai_{80 + i:03d}.jpg", folder / f"a{i}.jpg")
    return folder


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def test_sigterm_closes_the_window_and_its_helper(tmp_path: Path, upload: Path) -> None:
    gui, helper, trackers = _start_gui(_home(tmp_path), upload, tmp_path)
    try:
        assert _alive(helper)
        gui.send_signal(signal.SIGTERM)
        code = gui.wait(timeout=20)
        assert code == 0, (tmp_path / "gui.log").read_text()
        _wait(lambda: not _alive(helper), 5, f"helper {helper} to end")
        for t in trackers:
            _wait(lambda t=t: not _alive(t), 5, f"resource tracker {t} to end")
        assert "Traceback" not in (tmp_path / "gui.log").read_text()
    finally:
        for pid in (gui.pid, helper, *trackers):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("pdeathsig", ["1", "0"], ids=["prctl", "watchdog"])
def test_sigkill_takes_the_helper_down(tmp_path: Path, upload: Path, pdeathsig: str) -> None:
    """The window's process killed outright (no handler runs): the helper goes by itself,
    by the parent-death signal (Linux) or, with that off, by its parent watchdog."""
    gui, helper, trackers = _start_gui(
        _home(tmp_path), upload, tmp_path, AIDETECT_GUI_PDEATHSIG=pdeathsig
    )
    try:
        time.sleep(0.5 if pdeathsig == "1" else 2.0)  # the watchdog starts with the helper's code
        gui.kill()
        gui.wait(timeout=10)
        _wait(lambda: not _alive(helper), 8, f"helper {helper} to end ({_stat(helper)})")
        for t in trackers:
            _wait(lambda t=t: not _alive(t), 8, f"resource tracker {t} to end")
    finally:
        for pid in (helper, *trackers):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
