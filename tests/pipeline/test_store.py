"""The store on SQLite and PostgreSQL: migrations, idempotent registration and upserts,
the model registry, result queries; SQLite write concurrency (BEGIN IMMEDIATE)."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import date
from pathlib import Path

import pytest
from images import write_images
from sqlalchemy import func, inspect, select

from aidetect.config import SHIPPED_MODEL_DIR
from aidetect.errors import AidetectError, ModelLoadError
from aidetect.ingest import register_files
from aidetect.store import File, Image, Prediction, init_db, read_engine, session_scope
from aidetect.store.model_versions import (
    active_model_dir,
    active_version,
    list_versions,
    promote,
    publish_model,
)
from aidetect.store.results import ResultFilter, count, fetch_page, iter_rows, to_csv
from aidetect.store.status import status_counts, stranded_ids
from aidetect.store.writes import upsert_prediction


def _pred(image_id: int, version: str, label: str = "ai", prob: float = 0.9) -> dict:
    return {
        "image_id": image_id, "model_version": version, "label": label, "prob_ai": prob,
        "uncertain": False, "cam_path": None, "overlay_path": None, "timings": {"t": 1.0},
    }


def test_migrations_create_schema(store_url: str) -> None:
    engine = init_db()
    tables = set(inspect(engine).get_table_names())
    assert {"files", "images", "predictions", "model_versions", "worker_beats", "alembic_version"} <= tables
    init_db()  # idempotent


def test_register_is_idempotent_by_content(store_url: str, tmp_path: Path) -> None:
    files = write_images(tmp_path / "in", 5)
    dup = tmp_path / "in" / "copy_of_0.png"
    shutil.copy(files[0], dup)
    reg = register_files([*files, dup], root=tmp_path / "in")
    assert len(reg.ids) == 6 and len(set(reg.ids)) == 5
    assert reg.ids[0] == reg.ids[5]
    assert sorted(reg) == sorted(set(reg.ids))
    again = register_files(files)  # not scored yet: queued again, no new rows
    assert sorted(again) == sorted(reg)
    with session_scope() as s:
        assert s.scalar(select(func.count(Image.id))) == 5
        assert s.scalar(select(func.count(File.id))) == 6  # every path its own row
    assert status_counts() == {"queued": 6}
    assert len(set(reg.file_ids)) == 6
    assert sorted(stranded_ids()) == sorted(reg)


def test_prediction_upsert_and_skip_already_scored(store_url: str, tmp_path: Path) -> None:
    files = write_images(tmp_path / "in", 3)
    reg = register_files(files)
    version = active_version()
    with session_scope() as s:
        for _ in range(3):  # a redelivered task writes the same row again
            upsert_prediction(s, _pred(reg[0], version, prob=0.7))
        s.execute(Image.__table__.update().where(Image.id == reg[0]).values(status="done"))
    with session_scope() as s:
        upsert_prediction(s, _pred(reg[0], version, label="real", prob=0.2))
    with session_scope() as s:
        rows = s.scalars(select(Prediction).where(Prediction.image_id == reg[0])).all()
        assert len(rows) == 1 and rows[0].label == "real" and rows[0].prob_ai == pytest.approx(0.2)
    again = register_files(files)
    assert reg[0] in again.already_done and reg[0] not in again
    assert reg[0] in register_files(files, rescan=True)


def test_registry_publish_promote(store_url: str, tmp_path: Path) -> None:
    shipped = json.loads((SHIPPED_MODEL_DIR / "card.json").read_text())
    assert active_version() == shipped["version"]  # registered on first use
    assert active_model_dir() == SHIPPED_MODEL_DIR.resolve()
    other = tmp_path / "model2"
    shutil.copytree(SHIPPED_MODEL_DIR, other)
    card = json.loads((other / "card.json").read_text())
    card["version"] = "test-v2"
    card["metrics"] = {"test_accuracy": 0.5}
    (other / "card.json").write_text(json.dumps(card))
    assert publish_model(other, activate=False) == "test-v2"
    assert active_version() == shipped["version"]
    promote("test-v2")
    assert active_version() == "test-v2" and active_model_dir() == other.resolve()
    versions = {v["version"]: v for v in list_versions()}
    assert versions["test-v2"]["active"] and not versions[shipped["version"]]["active"]
    assert versions["test-v2"]["metrics"] == {"test_accuracy": 0.5}
    with pytest.raises(AidetectError, match="unknown model version"):
        promote("nope")
    with pytest.raises(ModelLoadError):
        publish_model(tmp_path)


def test_query_filters(store_url: str, tmp_path: Path) -> None:
    files = write_images(tmp_path / "a", 4) + write_images(tmp_path / "b", 2, start=10)
    reg = register_files(files)
    v = active_version()
    with session_scope() as s:
        for i, image_id in enumerate(reg[:4]):
            upsert_prediction(s, _pred(image_id, v, "ai" if i % 2 else "real", 0.1 + 0.25 * i))
        s.execute(Image.__table__.update().where(Image.id.in_(reg[:4])).values(status="done"))
        s.execute(Image.__table__.update().where(Image.id == reg[4]).values(status="failed", error="bad"))
    eng = read_engine()

    def n(**kw: object) -> int:
        return count(eng, ResultFilter(**kw), view="latest")

    assert n() == 6
    assert [r.label for r in fetch_page(eng, ResultFilter(label="ai"), view="latest")] == ["ai", "ai"]
    assert n(status="failed") == 1
    assert n(prob_min=0.3, prob_max=0.7) == 2
    assert n(conf_min=0.8) == 2  # P(ai) 0.1 and 0.85: sure of real / sure of ai
    assert n(path_glob=f"{tmp_path}/b/*") == 2
    assert n(text="IMG_00003") == 1  # case-insensitive substring
    assert n(since="2000-01-01") == 6 and n(until="2000-01-01") == 0
    today = ResultFilter(since=date.today(), until=date.today())  # a date is its whole day
    assert count(eng, today, view="latest") == 6
    top = fetch_page(eng, ResultFilter(sort="prob_ai", descending=True), 0, 1, view="latest")[0]
    assert top.prob_ai == pytest.approx(0.85)
    failed = fetch_page(eng, ResultFilter(status="failed"), view="latest")[0]
    assert failed.error == "bad" and failed.label is None
    rows = list(iter_rows(eng, ResultFilter(sort="id", descending=False), view="latest"))
    assert [r.path for r in rows] == [str(f) for f in files]
    assert to_csv(rows).count("\n") == 7


def test_sqlite_concurrent_writers(store_url: str, tmp_path: Path) -> None:
    """Threads writing at once: BEGIN IMMEDIATE makes them wait, never 'database is locked'."""
    files = write_images(tmp_path / "in", 40)
    reg = register_files(files)
    v = active_version()
    errors: list[BaseException] = []

    def writer(ids: list[int]) -> None:
        try:
            for image_id in ids:
                with session_scope() as s:
                    n = s.scalar(select(func.count(Prediction.id)))  # read, then write
                    upsert_prediction(s, _pred(image_id, v, prob=min(1.0, 0.01 * (n or 0))))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(list(reg[i::4]) * 2,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with session_scope() as s:
        assert s.scalar(select(func.count(Prediction.id))) == 40


def test_pipeline_modules_do_not_import_torch() -> None:
    """The Celery parent, the CLI and the watcher import these before forking workers:
    torch must not be imported (or run) there."""
    import subprocess
    import sys

    code = (
        "import sys, aidetect.worker.app, aidetect.worker.tasks, aidetect.ingest, aidetect.store.model_versions, "
        "aidetect.store.results, aidetect.commands.scan, aidetect.commands.worker; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
