"""Fixtures for the dashboard tests: a real Tk window on the Xvfb display pytest-xvfb starts
(needs Debian's ``xvfb``; scripts/test.sh installs it), screenshots under artifacts/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
sys.path.insert(0, str(REPO / "tests" / "support"))

from redis_server import redis_server  # noqa: E402,F401  (fixture)
from tests.pipeline.conftest import pg_url, store_url  # noqa: E402,F401  (fixtures)


def pump(app, until: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Run the Tk event loop until ``until()`` holds (the lanes deliver through ``after``)."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last error: {app.last_error}"
            )
        app.root.update()
        time.sleep(0.01)


def settle(app, seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.root.update()
        time.sleep(0.01)


def screenshot(app, name: str) -> Path | None:
    """Save the dashboard window as artifacts/screenshots/<name>.png (imagemagick)."""
    if shutil.which("import") is None:
        return None
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = SHOTS / f"{name}.png"
    app.root.update()
    subprocess.run(
        ["import", "-window", "root", "-crop", _geometry(app), "+repage", str(out)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out


def _geometry(app) -> str:
    r = app.root
    return f"{r.winfo_width()}x{r.winfo_height()}+{r.winfo_rootx()}+{r.winfo_rooty()}"


@pytest.fixture(autouse=True)
def _collect_tk_garbage_on_the_main_thread() -> Iterator[None]:
    """Tk objects left in reference cycles by a test (images, variables) must be freed on
    the Tk thread: if the cyclic collector happens to run in another thread (a progress-bar
    monitor, a worker lane), Tcl aborts the whole process ("Tcl_AsyncDelete: async handler
    deleted by the wrong thread"; seen once here under load)."""
    import gc

    gc.collect()
    yield
    gc.collect()


@pytest.fixture
def dashboard(aidetect_home: Path) -> Iterator:
    from aidetect.gui.app import Dashboard

    app = Dashboard(live_ms=300, status_ms=400)
    app.root.update()
    pump(app, lambda: app.table.page_loads > 0, 60, "the first page")
    yield app
    app.close()
