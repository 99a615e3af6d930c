"""Uploads from the dashboard go to a real Celery worker (real Redis started by the test)
when one is alive, and its results stream into the open window without a click."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.gui.conftest import pump, screenshot
from tests.pipeline.conftest import WorkerProcess, pipeline_env

pytestmark = pytest.mark.timeout(300)


def test_upload_goes_to_live_worker(
    aidetect_home: Path, redis_server, mini_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("AIDETECT_BROKER_URL", redis_server.url)
    worker = WorkerProcess(
        pipeline_env(aidetect_home, redis_server.url), tmp_path / "worker.log", concurrency=1
    )
    worker.start()
    try:
        from aidetect.gui.app import Dashboard

        app = Dashboard(live_ms=300, status_ms=400)
        try:
            pump(app, lambda: app.table.page_loads > 0, 60, "the first page")
            up = tmp_path / "up"
            up.mkdir()
            for name in ("ai_010.jpg", "ai_011.jpg"):
                shutil.copy(mini_dir / "ai" / name, up / name)
            shutil.copy(mini_dir / "real" / "real_010.jpg", up / "real_010.jpg")
            app.upload_paths([up])
            pump(
                app,
                lambda: app.last_upload is not None or app.last_error is not None,
                60,
                "the upload",
            )
            assert app.last_error is None, app.last_error
            assert app.last_upload.mode == "workers"
            pump(
                app,
                lambda: (
                    sorted(app.tree.item(k, "values")[6] for k in app.tree.get_children())
                    == ["done"] * 3
                ),
                120,
                f"the worker's results\n{worker.log()}",
            )
            # firm verdicts say ai / real; a verdict inside the uncertain band says which way it leans
            assert {app.tree.item(k, "values")[1] for k in app.tree.get_children()} <= {
                "ai",
                "real",
                "ai?",  # undecided, leans AI
                "real?",
            }
            pump(
                app,
                lambda: app.workers_label.cget("text").startswith("Workers: 1"),
                10,
                "the status bar",
            )
            assert app.queue_label.cget("text").startswith("Queue: ")
            # the result view follows the uploaded image from "queued" to its verdict
            pump(
                app,
                lambda: (
                    app.detail.row is not None
                    and app.detail.row.label is not None
                    and app.detail.rendered is not None
                ),
                30,
                "the result view",
            )
            assert app.detail.has_heatmap
            screenshot(app, "dashboard-workers")
        finally:
            app.close()
    finally:
        worker.stop()
