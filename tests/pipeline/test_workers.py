"""Real `celery worker` processes on a real redis-server (started by the test on a free
loopback port) and on the embedded filesystem broker: 500 images, each exactly one final
row and one prediction, through a SIGKILLed pool child and a Redis restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from images import write_images
from sqlalchemy import func, select
from workers import WorkerProcess, pipeline_env

from aidetect.store import Image, Prediction, session_scope
from aidetect.store.status import status_counts

N = 500
BATCH = 8


class ScanProcess:
    def __init__(self, env: dict[str, str], folder: Path, out: Path) -> None:
        self.out = out
        self.err = out.with_suffix(".err")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aidetect.cli", "scan", str(folder), "--no-fallback", "--json",
             "--batch-size", str(BATCH), "--stall-timeout", "6"],
            env=env, stdout=out.open("wb"), stderr=self.err.open("wb"),
        )

    def wait(self, timeout: float = 240) -> list[dict]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("scan did not finish:\n" + self.err.read_text()[-3000:]) from None
        assert code == 0, self.err.read_text()[-3000:]
        return json.loads(self.out.read_text())


def _counts() -> dict[str, int]:
    return status_counts()


def _wait_until(pred, timeout: float, what: str) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; status {_counts()}")


def _assert_exactly_once(rows: list[dict]) -> None:
    assert len(rows) == N
    assert all(r["status"] == "done" for r in rows), [r for r in rows if r["status"] != "done"][:3]
    with session_scope() as s:
        assert s.scalar(select(func.count(Image.id))) == N
        per_image = s.execute(select(Prediction.image_id, func.count()).group_by(Prediction.image_id)).all()
        assert len(per_image) == N and all(n == 1 for _, n in per_image), "a prediction lost or doubled"
        assert s.scalar(select(func.count(Prediction.id))) == N
    assert _counts() == {"done": N}


def _scan_with_child_kill(env: dict[str, str], tmp_path: Path, worker: WorkerProcess) -> None:
    folder = tmp_path / "images"
    write_images(folder, N)
    scan = ScanProcess(env, folder, tmp_path / "scan.json")
    _wait_until(lambda: _counts().get("done", 0) >= 40, 180, "first results")
    assert _counts().get("done", 0) < N, "scan ended before the kill"
    killed = worker.kill_child()
    rows = scan.wait()
    _assert_exactly_once(rows)
    full_log = worker.log_path.read_text(errors="replace")
    assert f"pid:{killed} exited with 'signal 9" in full_log, worker.log()


def test_redis_500_images_with_child_sigkill(aidetect_home: Path, tmp_path: Path, redis_server, start_worker, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("AIDETECT_BROKER_URL", redis_server.url)
    env = pipeline_env(aidetect_home, redis_server.url)
    worker = start_worker(env, concurrency=2)
    _scan_with_child_kill(env, tmp_path, worker)


def test_embedded_500_images_with_child_sigkill(aidetect_home: Path, tmp_path: Path, start_worker) -> None:  # noqa: ANN001
    env = pipeline_env(aidetect_home)
    worker = start_worker(env, concurrency=2)
    _scan_with_child_kill(env, tmp_path, worker)


def test_redis_restart_mid_scan(aidetect_home: Path, tmp_path: Path, redis_server, start_worker, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("AIDETECT_BROKER_URL", redis_server.url)
    env = pipeline_env(aidetect_home, redis_server.url)
    start_worker(env, concurrency=2)
    folder = tmp_path / "images"
    write_images(folder, N)
    scan = ScanProcess(env, folder, tmp_path / "scan.json")
    _wait_until(lambda: _counts().get("done", 0) >= 40, 180, "first results")
    assert _counts().get("done", 0) < N, "scan ended before the restart"
    port = redis_server.port
    redis_server.restart(downtime=1.0)
    assert redis_server.port == port
    rows = scan.wait()
    _assert_exactly_once(rows)


def test_recycled_pool_children_come_up_and_score(aidetect_home: Path, tmp_path: Path, redis_server, start_worker,  # noqa: ANN001
                                                  monkeypatch) -> None:  # noqa: ANN001
    """A child replaced after every task (``--max-tasks-per-child 1``; in production after 500
    tasks or past the memory guard) loads the model before it reports up: every replacement must
    come up and score, none killed for a slow start (Celery's default 4 s killed them in a loop on
    a loaded 2-core machine and the queue stalled; ``worker_proc_alive_timeout`` 120 s)."""
    from aidetect.config import FAST_MODEL_DIR

    n = 48
    monkeypatch.setenv("AIDETECT_BROKER_URL", redis_server.url)
    env = pipeline_env(aidetect_home, redis_server.url) | {"AIDETECT_MODEL": str(FAST_MODEL_DIR)}
    monkeypatch.setenv("AIDETECT_MODEL", str(FAST_MODEL_DIR))
    worker = start_worker(env, concurrency=2, extra=("--max-tasks-per-child", "1"))
    folder = tmp_path / "images"
    write_images(folder, n)
    rows = ScanProcess(env, folder, tmp_path / "scan.json").wait(timeout=400)
    assert len(rows) == n and all(r["status"] == "done" for r in rows)
    log = worker.log_path.read_text(errors="replace")
    assert log.count("loaded model") >= n // BATCH, worker.log()  # a fresh child (a fresh load) per task
    assert "Timed out waiting for UP" not in log, worker.log()


def test_broker_down_is_one_line_exit_2(aidetect_home: Path, tmp_path: Path) -> None:
    from redis_server import free_port

    write_images(tmp_path / "images", 2)
    env = pipeline_env(aidetect_home, f"redis://127.0.0.1:{free_port()}/0")
    for cmd in (["scan", str(tmp_path / "images")], ["worker"]):
        proc = subprocess.run([sys.executable, "-m", "aidetect.cli", *cmd], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("aidetect: error:")]
        assert lines and "broker not reachable" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


pytestmark = pytest.mark.timeout(400)
