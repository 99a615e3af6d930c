"""The dashboard's building blocks without a full window: background lanes, heatmap
re-blending, SQL-side filters and paging."""

from __future__ import annotations

import threading
import time
import tkinter as tk
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetect.errors import ImageLoadError
from aidetect.gui import imaging, queries
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
    cam = np.zeros((8, 8), np.float32)
    cam[:, 4:] = 1.0
    Image.fromarray(np.uint8(cam * 255), mode="L").save(tmp_path / "c.cam.png")
    loaded = imaging.load_cam(tmp_path / "c.cam.png")
    assert loaded.shape == (8, 8) and loaded.max() == 1.0 and loaded.min() == 0.0
    base = Image.new("RGB", (32, 32), (128, 128, 128))
    heat = imaging.colorize(loaded, base.size)
    r, g, b = heat.getpixel((31, 16))
    assert r > 100 and b < 60  # high influence is red
    r, g, b = heat.getpixel((0, 16))
    assert b > 100 and r < 60  # low influence is blue
    assert imaging.blend(base, heat, 0.0).tobytes() == base.tobytes()
    assert imaging.blend(base, heat, 1.0).tobytes() == heat.tobytes()
    with pytest.raises(ImageLoadError):
        imaging.load_cam(tmp_path / "missing.png")


def test_sql_filters_sort_and_paging(store_url: str) -> None:
    """On SQLite and on PostgreSQL (skipped with the reason when no server answers)."""
    from sqlalchemy import insert

    from aidetect.db import Image as Img
    from aidetect.db import Prediction, init_db

    engine = init_db()
    now = datetime.now(UTC)
    n = 500
    with engine.begin() as conn:
        conn.execute(
            insert(Img),
            [
                dict(
                    id=i + 1,
                    key=f"sha256:{i:064x}",
                    sha256=f"{i:064x}",
                    path=f"/d/pic_{i:04d}.jpg",
                    first_seen=now,
                    updated=now - timedelta(minutes=n - i),
                    status="failed" if i % 10 == 0 else "done",
                    error="bad file" if i % 10 == 0 else None,
                )
                for i in range(n)
            ],
        )
        conn.execute(
            insert(Prediction),
            [
                dict(
                    image_id=i + 1,
                    model_version="v",
                    label="ai" if i % 3 else "real",
                    prob_ai=(i % 100) / 100,
                    uncertain=False,
                    created=now - timedelta(minutes=n - i),
                )
                for i in range(n)
                if i % 10
            ],
        )
    eng = queries.read_engine(store_url)
    everything = queries.Filters()
    assert queries.count(eng, everything) == n
    pages = [queries.fetch_page(eng, everything, off, 60) for off in range(0, n, 60)]
    keys = [r.key for p in pages for r in p]
    assert len(keys) == n == len(set(keys))  # paging covers every row exactly once
    assert [
        r.key for r in queries.iter_rows(eng, everything, chunk=77)
    ] == keys  # the export's stream
    from_end = [queries.fetch_page(eng, everything, off, 60, total=n) for off in range(0, n, 60)]
    assert [r.key for p in from_end for r in p] == keys  # back half read in reverse: same rows
    by_conf = queries.Filters(sort="confidence")
    assert [r.key for r in queries.fetch_page(eng, by_conf, 430, 70, total=n)] == [
        r.key for r in queries.fetch_page(eng, by_conf, 430, 70)
    ]
    times = [r.time for p in pages for r in p]
    assert times == sorted(times, reverse=True)
    failed = queries.Filters(status="failed")
    assert queries.count(eng, failed) == 50
    assert all(
        r.error == "bad file" and r.label is None for r in queries.fetch_page(eng, failed, 0, 100)
    )
    ai = queries.Filters(label="ai", conf_min=0.8, sort="confidence", descending=False)
    rows = queries.fetch_page(eng, ai, 0, 1000)
    assert rows and all(r.label == "ai" and r.confidence >= 0.8 for r in rows)
    assert [r.confidence for r in rows] == sorted(r.confidence for r in rows)
    assert queries.count(eng, ai) == len(rows)
    named = queries.Filters(text="PIC_012")  # case-insensitive substring of the name
    assert {r.name for r in queries.fetch_page(eng, named, 0, 100)} == {
        f"pic_{i:04d}.jpg" for i in range(120, 130)
    }
    today = queries.Filters(
        since=(now - timedelta(days=3)).date(), until=(now + timedelta(days=1)).date()
    )
    assert queries.count(eng, today) == n
    assert queries.count(eng, queries.Filters(until=(now - timedelta(days=3)).date())) == 0
