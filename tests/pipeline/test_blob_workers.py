"""Workers that cannot see the files: images registered and staged by the submitter
(AIDETECT_BLOBS=redis on a real redis-server, or the store), their files and the registered
model folder deleted before a real `aidetect worker` starts; the worker scores the staged
bytes with the model fetched from the blob layer, keeps the heatmaps there, and the staged
bytes are gone at the end. `results --json` gives heatmap paths readable on this host."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from images import write_images
from workers import pipeline_env

from aidetect.config import FAST_MODEL_DIR, SHIPPED_MODEL_DIR


@pytest.mark.parametrize("blobs", ["redis", "store"])
def test_worker_scores_staged_bytes(
    blobs: str, aidetect_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server, start_worker  # noqa: ANN001
) -> None:
    from aidetect.blobs import blob_layer
    from aidetect.ingest import submit
    from aidetect.store.engine import reset_engines
    from aidetect.store.model_versions import publish_model
    from aidetect.store.status import status_counts, worker_beats

    monkeypatch.setenv("AIDETECT_BROKER_URL", redis_server.url)
    monkeypatch.setenv("AIDETECT_BLOBS", blobs)
    reset_engines()
    model = tmp_path / "model-copy"
    shutil.copytree(SHIPPED_MODEL_DIR, model)
    publish_model(model)  # the active model lives in a folder the worker will not have
    paths = write_images(tmp_path / "in", 30, side=40) + write_images(tmp_path / "in", 6, start=100, side=300, fmt="JPEG")
    sub = submit(paths, route="workers")
    assert sub.route == "workers" and len(sub.registration) == 36
    layer = blob_layer()
    assert layer is not None and len(list(layer.staging.keys("img/"))) == 36
    shutil.rmtree(tmp_path / "in")
    shutil.rmtree(model)

    env = pipeline_env(aidetect_home, redis_server.url)
    env["AIDETECT_BLOBS"] = blobs
    env["AIDETECT_HOME"] = str(tmp_path / "worker-home")  # its own data folder
    env["AIDETECT_DATABASE_URL"] = f"sqlite:///{aidetect_home}/aidetect.sqlite"
    w = start_worker(env, concurrency=1)
    end = time.monotonic() + 120
    while time.monotonic() < end and status_counts().get("done", 0) < 36:
        time.sleep(0.3)
    assert status_counts() == {"done": 36}, w.log()
    assert "fetched from the blob layer" in w.log() or (tmp_path / "worker-home" / "models").is_dir()
    end = time.monotonic() + 30  # released once scored: right after the batch's rows are final
    while time.monotonic() < end and list(layer.staging.keys("img/")):
        time.sleep(0.3)
    assert list(layer.staging.keys("img/")) == [], w.log()
    assert worker_beats()[0]["host"]

    out = subprocess.run([sys.executable, "-m", "aidetect.cli", "results", "--json"], env={
        **pipeline_env(aidetect_home), "AIDETECT_BLOBS": blobs, "AIDETECT_BROKER_URL": redis_server.url,
    }, capture_output=True, text=True, timeout=60)
    rows = json.loads(out.stdout)
    assert len(rows) == 36
    for r in rows:
        assert r["heatmap_error"] is None
        assert Path(r["cam_path"]).is_file() and Path(r["overlay_path"]).is_file(), r
        assert str(r["cam_path"]).startswith(str(aidetect_home / "heatmaps"))


def test_file_blobs_do_no_blob_work(aidetect_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AIDETECT_BLOBS=file (the default) adds no per-image work: the submitter stages nothing
    and publishes no model, the scorer reads paths and keeps heatmaps in the local folder,
    nothing is released; every blob entry point is made to fail if it is reached."""
    from aidetect.blobs import heatmaps, models, staging
    from aidetect.ingest import queue_for_workers, register_files, score_inline
    from aidetect.store import blobs as sql
    from aidetect.store.status import status_counts
    from aidetect.worker import broker

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("blob work with AIDETECT_BLOBS=file")

    for mod, names in ((staging, ("stage_images", "read_staged", "read_staged_many", "release")),
                       (heatmaps, ("keep",)), (models, ("publish",)),
                       (sql, ("image_sources", "image_states", "put_blobs", "blob_info"))):
        for name in names:
            monkeypatch.setattr(mod, name, boom)
    sent: list[list[int]] = []
    monkeypatch.setattr(broker, "enqueue", lambda ids, batch_size=None, force=False: sent.append(list(ids)) or 1)
    paths = write_images(tmp_path / "in", 5, side=64)
    reg = register_files(paths)
    assert queue_for_workers(list(reg)) == 1 and sent == [list(reg)]  # sent as they are, one call
    score_inline(list(reg))
    assert status_counts() == {"done": 5}
    heat = aidetect_home / "heatmaps"
    assert len([p for p in heat.rglob("*") if p.is_file()]) == 10  # CAM + overlay per image, local


def test_redis_down_mid_staging(
    aidetect_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server, start_worker  # noqa: ANN001
) -> None:
    """The Redis that holds the broker and the staged bytes stops (a real redis-server, SIGTERM)
    while `aidetect scan` stages: the scan ends with one error line and exit 2; every image is
    still registered and queued (none failed, nothing staged or sent is lost: Redis persists);
    once Redis is back, the same scan with a real worker completes the work, one prediction
    per image, and no staged bytes are left."""
    import redis
    from images import image_bytes
    from sqlalchemy import func, select

    from aidetect.store import Prediction, session_scope
    from aidetect.store.status import status_counts

    n = 300
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(n):  # ~70 KB each: staging all of them takes a while
        (folder / f"img_{i:04d}.jpg").write_bytes(image_bytes(9000 + i, side=512, fmt="JPEG"))
    model = str(FAST_MODEL_DIR)  # the model is not under test: the CNN alone keeps the rerun short
    env = pipeline_env(aidetect_home, redis_server.url) | {"AIDETECT_BLOBS": "redis", "AIDETECT_MODEL": model}
    monkeypatch.setenv("AIDETECT_BROKER_URL", redis_server.url)
    monkeypatch.setenv("AIDETECT_BLOBS", "redis")
    monkeypatch.setenv("AIDETECT_MODEL", model)
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)

    def staged() -> int:
        return sum(1 for _ in client.scan_iter(match="aidetect:blobmeta:img/*", count=1000))

    argv = [sys.executable, "-m", "aidetect.cli", "scan", str(folder), "--no-fallback"]
    scan = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while time.monotonic() < end and scan.poll() is None and staged() < 20:
        time.sleep(0.005)
    redis_server.stop()  # mid-staging: SIGTERM, its append-only file flushed
    out, err = scan.communicate(timeout=180)
    assert scan.returncode == 2, (out, err)
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith("aidetect: error: ") and ("Redis" in errors[0] or "broker" in errors[0]), errors[0]
    assert "stay queued in the store: run the same command again" in errors[0], errors[0]
    assert status_counts() == {"queued": n}  # all registered, none failed

    redis_server.start()  # the same port, the same data
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    at_stop = staged()
    assert 20 <= at_stop < n, f"Redis was stopped after {at_stop} of {n} staged"
    start_worker(env)
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert status_counts() == {"done": n}
    with session_scope() as s:
        per_image = s.execute(select(Prediction.image_id, func.count()).group_by(Prediction.image_id)).all()
    assert len(per_image) == n and all(c == 1 for _i, c in per_image)  # nothing doubled
    end = time.monotonic() + 30
    while time.monotonic() < end and staged():
        time.sleep(0.2)
    assert staged() == 0, "staged bytes left after every image is final"
    print(f"\nRedis stopped with {at_stop} of {n} images staged; first scan said: {errors[0]}")
