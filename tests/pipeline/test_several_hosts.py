"""Two real hosts (issue 21). Host A (this network namespace) runs a PostgreSQL-backed
`aidetect up --no-workers` (watcher + inbox) and Redis; host B is a network namespace joined
by a veth pair, running `aidetect worker` in its own mount namespace where A's data folder,
inbox, heatmaps and registered model do not exist (a tmpfs over the test's folder) and whose
host name is `hostb`. B reaches A's Redis and PostgreSQL over the link only (A's PostgreSQL
listens on loopback; the test relays A's veth address to it). Bytes travel as staged blobs
(AIDETECT_BLOBS=redis), heatmaps and the model through the store.

200 images dropped into A's inbox are all scored by B (the `worker` column), heatmaps are
readable on A, B's worker is SIGKILLed mid-scan and restarted: every image has exactly one
row and one prediction, and no staged bytes are left. The namespaces are created and removed
by the test; it skips with the reason where it cannot make them (not root, no `ip`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from images import image_bytes
from netns import Forward, Host, why_not
from redis_server import RedisServer
from sqlalchemy import func, select
from workers import pipeline_env

from aidetect.config import FAST_MODEL_DIR

pytestmark = pytest.mark.timeout(420)
N = 200
HOST_B = "hostb"


@pytest.fixture
def host_b() -> Iterator[Host]:
    reason = why_not()
    if reason:
        pytest.skip(f"several-hosts test: {reason}")
    host = Host().create()
    try:
        yield host
    finally:
        host.remove()


class Proc:
    """A child process with its output in a file (kept readable when the child's view of
    the file system hides it)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the main process and its pool
        self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def _wait(pred, timeout: float, what: str, log: str = "") -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log()}" if callable(log) else f"timed out: {what}")


def test_workers_on_another_host(
    host_b: Host, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    import redis

    from aidetect.store import Image, Prediction, session_scope
    from aidetect.store.engine import reset_engines
    from aidetect.store.status import status_counts, worker_beats

    home_a, inbox = tmp_path / "a", tmp_path / "a" / "inbox"
    home_a.mkdir()
    logs = tmp_path.parent / f"{tmp_path.name}-logs"  # outside the folder B does not see
    logs.mkdir(exist_ok=True)
    server = RedisServer(tmp_path / "redis", bind=f"127.0.0.1 {host_b.peer_addr}").start()
    pg = Forward(host_b.peer_addr, ("127.0.0.1", 5432))
    up = worker = None
    try:
        redis_a = f"redis://{host_b.peer_addr}:{server.port}/0"
        env_a = pipeline_env(home_a, redis_a) | {"AIDETECT_DATABASE_URL": pg_url, "AIDETECT_BLOBS": "redis"}
        for k, v in env_a.items():
            if k.startswith("AIDETECT_"):
                monkeypatch.setenv(k, v)
        reset_engines()
        # the active model: a copy registered on A (A's data folder: B has to fetch it)
        model = tmp_path / "model-src"
        shutil.copytree(FAST_MODEL_DIR, model)  # the CNN: 200 images in time on 2 shared cores
        reg = subprocess.run([sys.executable, "-m", "aidetect.cli", "models", "register", "--activate", str(model)],
                             env=env_a, capture_output=True, text=True, timeout=60)
        assert reg.returncode == 0, reg.stderr
        up = Proc([sys.executable, "-m", "aidetect.cli", "up", "--no-workers", "--inbox", str(inbox)], env_a,
                  logs / "up.log")
        _wait(lambda: "main job is running" in up.log(), 60, "aidetect up on A", up.log)
        assert "blobs     images in redis" in up.log()

        schema = pg_url.split("search_path%3D")[1]
        home_b = tmp_path / "b-home"  # inside the tmpfs: only B sees it
        env_b = pipeline_env(home_b, f"redis://{host_b.peer_addr}:{server.port}/0") | {
            "AIDETECT_DATABASE_URL": f"postgresql+psycopg://postgres@{host_b.peer_addr}:{pg.port}/test"
                                     f"?options=-csearch_path%3D{schema}",
            "AIDETECT_BLOBS": "redis",
        }
        check = f"test -e {inbox} || test -e {home_a} && echo A-PATHS-VISIBLE || echo A-PATHS-HIDDEN"
        worker_argv = ["sh", "-c", f"{check}; exec {sys.executable} -m aidetect.cli worker -c 2 -l INFO"]

        def start_b() -> Proc:
            return Proc(host_b.argv(worker_argv, hide=[tmp_path], mkdirs=[home_b], hostname=HOST_B), env_b,
                        logs / "worker-b.log")

        def b_alive() -> bool:
            return any(w["host"] == HOST_B and w["age_s"] is not None and w["age_s"] < 5 for w in worker_beats())

        worker = start_b()
        _wait(b_alive, 150, "the worker on host B", worker.log)
        assert "A-PATHS-HIDDEN" in worker.log()
        assert "fetched from the blob layer" in worker.log()  # the registered model came over the link

        # 200 images land in A's inbox (written elsewhere, renamed in)
        drop = tmp_path / "drop"
        drop.mkdir()
        for i in range(N):
            p = drop / f"img_{i:04d}.jpg"
            p.write_bytes(image_bytes(5000 + i, side=320, fmt="JPEG"))
            os.rename(p, inbox / p.name)

        def done() -> int:
            return status_counts().get("done", 0)

        _wait(lambda: done() >= 30, 180, "the first 30 scores", worker.log)
        at_kill = done()
        worker.kill()  # host B's worker dies mid-scan (SIGKILL, main process and pool)
        assert at_kill < N, "the scan finished before the worker could be killed"
        worker = start_b()
        _wait(lambda: status_counts() == {"done": N}, 240, f"all {N} done (killed at {at_kill})",
              lambda: f"{status_counts()}\n--- up\n{up.log()}\n--- worker\n{worker.log()}")

        with session_scope() as s:
            per_image = s.execute(select(Prediction.image_id, func.count()).group_by(Prediction.image_id)).all()
            hosts = set(s.scalars(select(Prediction.worker)).all())
            images = s.scalar(select(func.count()).select_from(Image))
        assert images == N and len(per_image) == N and all(n == 1 for _i, n in per_image)  # nothing doubled
        assert {h.rpartition(":")[0] for h in hosts} == {HOST_B}  # every image scored on B

        out = subprocess.run([sys.executable, "-m", "aidetect.cli", "results", "--json"], env=env_a,
                             capture_output=True, text=True, timeout=120)
        rows = json.loads(out.stdout)
        assert len(rows) == N and all(r["status"] == "done" for r in rows)
        for r in rows:  # heatmaps written on B, readable on A
            assert r["heatmap_error"] is None
            assert Path(r["cam_path"]).is_relative_to(home_a / "heatmaps"), r["cam_path"]
            assert cv2.imread(r["cam_path"], cv2.IMREAD_UNCHANGED) is not None
            assert cv2.imread(r["overlay_path"]).shape[:2] == (320, 320)

        print(f"\nB killed with {at_kill}/{N} done; up said: "
              + " | ".join(line for line in up.log_path.read_text().splitlines() if "stopped answering" in line or "re-queued" in line))
        client = redis.Redis(host="127.0.0.1", port=server.port)
        _wait(lambda: not list(client.scan_iter(match="aidetect:blob*")), 30, "staged bytes to be deleted")

        status = subprocess.run([sys.executable, "-m", "aidetect.cli", "status", "--json"], env=env_a,
                                capture_output=True, text=True, timeout=60)
        info = json.loads(status.stdout)
        (b,) = [h for h in info["hosts"] if h["host"] == HOST_B]
        assert b["live"] and b["scored_total"] == N and b["processes"] == 2
    finally:
        if worker is not None:
            worker.kill()
        if up is not None:
            assert up.stop() == 0, up.log()
        pg.close()
        server.stop()
        reset_engines()
        shutil.rmtree(logs, ignore_errors=True)
