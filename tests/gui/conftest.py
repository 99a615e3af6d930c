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


def add_row(
    home: Path,
    name: str,
    *,
    src: Path | None = None,
    label: str | None = "ai",
    prob_ai: float = 0.9,
    uncertain: bool = False,
    reason: str | None = None,
    error: str | None = None,
    model: str = "efficientnet_lite-dac71e34da29",
    cam: bool = False,
) -> int:
    """Store one file the way a worker leaves it (a direct insert: no model needed): scored
    with ``label`` / ``prob_ai`` (and a raw Grad-CAM file with ``cam``), or failed with
    ``error`` (``label=None``). ``src`` is copied to ``home/files/<name>``. Returns the
    file id."""
    import hashlib
    from datetime import UTC, datetime

    import numpy as np

    from aidetect.explain.overlay import cam_to_png8, write_image
    from aidetect.store import File, Image, Prediction, init_db, session_scope

    init_db()
    folder = home / "files"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(src.read_bytes() if src is not None else b"not a picture")
    digest = hashlib.sha256(path.read_bytes() + name.encode()).hexdigest()
    now = datetime.now(UTC)
    with session_scope() as s:
        img = Image(
            key=f"sha256:{digest}",
            sha256=digest,
            path=str(path),
            status="failed" if error else "done",
            error=error,
            width=32 if src else None,
            height=32 if src else None,
            first_seen=now,
            updated=now,
        )
        s.add(img)
        s.flush()
        f = File(path=str(path), image_id=img.id)
        s.add(f)
        if label is not None and not error:
            cam_path = None
            if cam:
                yy, xx = np.mgrid[0:32, 0:32]
                blob = np.exp(-((xx - 20) ** 2 + (yy - 12) ** 2) / 60.0).astype(np.float32)
                cam_path = home / "heatmaps" / f"{digest}.cam.png"
                write_image(cam_path, cam_to_png8(blob))
            s.add(
                Prediction(
                    image_id=img.id,
                    model_version=model,
                    label=label,
                    prob_ai=prob_ai,
                    uncertain=uncertain,
                    uncertain_reason=reason,
                    cam_path=str(cam_path) if cam_path else None,
                )
            )
        s.flush()
        return f.id


def widget_tree(widget) -> Iterator:
    yield widget
    for child in widget.winfo_children():
        yield from widget_tree(child)


def clipped(widget) -> str | None:
    """Why ``widget`` (mapped) is not fully shown: squeezed below what it asks for, or reaching
    past one of its ancestors (up to the window); None when it is fully shown."""
    w, h = widget.winfo_width(), widget.winfo_height()
    if w < widget.winfo_reqwidth() - 1 or h < widget.winfo_reqheight() - 1:
        return f"{w}x{h} < asked {widget.winfo_reqwidth()}x{widget.winfo_reqheight()}"
    x0, y0 = widget.winfo_rootx(), widget.winfo_rooty()
    parent = widget.master
    while parent is not None:
        px, py = parent.winfo_rootx(), parent.winfo_rooty()
        pw, ph = parent.winfo_width(), parent.winfo_height()
        if x0 < px or y0 < py or x0 + w > px + pw + 1 or y0 + h > py + ph + 1:
            return f"at {x0},{y0} {w}x{h} outside {parent} at {px},{py} {pw}x{ph}"
        if parent is widget.winfo_toplevel():
            break
        parent = parent.master
    return None
