"""The dashboard's building blocks without a full window: background lanes, heatmap
re-blending, SQL-side filters and paging."""

from __future__ import annotations

import threading
import time
import tkinter as tk
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetect.errors import ImageLoadError
from aidetect.explain.overlay import read_cam_png, render_overlay
from aidetect.gui import imaging
from aidetect.gui.tasks import TaskRunner
from aidetect.gui.tkgc import TkThreadCollector


def test_runner_delivers_on_tk_thread_and_drops_superseded() -> None:
    root = tk.Tk()
    try:
        runner = TaskRunner(root, lanes=("io",), poll_ms=5)
        got: list[tuple[int, bool]] = []
        gate = threading.Event()
        runner.submit("io", gate.wait)  # hold the lane so the next two queue up
        for i in range(2):
            runner.submit(
                "io",
                lambda i=i: i,
                lambda v: got.append((v, threading.current_thread() is threading.main_thread())),
                key="k",
            )
        errors: list[BaseException] = []
        runner.submit("io", lambda: 1 / 0, on_error=errors.append)
        gate.set()
        end = time.monotonic() + 5
        while (not got or not errors) and time.monotonic() < end:
            root.update()
            time.sleep(0.005)
        assert got == [(1, True)]  # only the newest of key "k", delivered on the Tk thread
        assert isinstance(errors[0], ZeroDivisionError)
        assert runner.idle()
        runner.close()
    finally:
        root.destroy()


def test_tk_garbage_is_collected_on_the_tk_thread_only() -> None:
    """While the dashboard runs, a worker thread's allocations never start a cyclic collection
    (which could free a Tk image off the Tk thread and abort Tcl); the Tk loop collects instead,
    and closing restores automatic collection."""
    import gc
    import weakref

    root = tk.Tk()
    try:
        enabled = gc.isenabled()
        collector = TkThreadCollector(root, every_ms=20)
        assert not gc.isenabled()

        class Holder:
            pass

        h = Holder()
        h.cycle, h.image = h, tk.PhotoImage(master=root, width=4, height=4)
        ref = weakref.ref(h)
        del h
        worker = threading.Thread(target=lambda: [[i] for i in range(300_000)])
        worker.start()
        worker.join()
        assert ref() is not None  # the worker's allocations collected nothing
        end = time.monotonic() + 5
        while ref() is not None and time.monotonic() < end:
            root.update()
            time.sleep(0.005)
        assert ref() is None and collector.collections > 0
        collector.close()
        assert gc.isenabled() == enabled
    finally:
        root.destroy()


def test_blend_and_cam_roundtrip(tmp_path: Path) -> None:
    """The window re-blends the saved raw CAM with the core's JET colouring and blend: at the
    same opacity its picture is the saved overlay's (RGB rather than BGR)."""
    cam = np.zeros((8, 8), np.float32)
    cam[:, 4:] = 1.0
    Image.fromarray(np.uint8(cam * 255), mode="L").save(tmp_path / "c.cam.png")
    loaded = read_cam_png(tmp_path / "c.cam.png")
    assert loaded.shape == (8, 8) and loaded.max() == 1.0 and loaded.min() == 0.0
    base = Image.new("RGB", (32, 32), (128, 128, 128))
    heat = imaging.colorize(loaded, base.size)
    r, g, b = heat.getpixel((31, 16))
    assert r > 100 and b < 60  # high influence is red
    r, g, b = heat.getpixel((0, 16))
    assert b > 100 and r < 60  # low influence is blue
    assert imaging.blend(base, heat, 0.0).tobytes() == base.tobytes()
    assert imaging.blend(base, heat, 1.0).tobytes() == heat.tobytes()
    saved = render_overlay(base, loaded, max_side=32, alpha=0.45)
    assert np.array_equal(np.asarray(imaging.blend(base, heat, 0.45))[..., ::-1], saved)
    with pytest.raises(ImageLoadError, match="cannot read heatmap"):
        read_cam_png(tmp_path / "missing.png")
