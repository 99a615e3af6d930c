"""The scoring code (the same the Celery task runs) switches to a newly promoted model
between batches, records the version on every prediction, and a rescan by the new
version adds a second prediction instead of replacing the old one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from images import write_images
from sqlalchemy import select

from aidetect.config import SHIPPED_MODEL_DIR
from aidetect.ingest import register_files
from aidetect.store import Prediction, session_scope
from aidetect.store.model_versions import active_version, publish_model
from aidetect.worker.scoring import BatchScorer


def test_scorer_switches_model_between_batches(aidetect_home: Path, tmp_path: Path) -> None:
    files = write_images(tmp_path / "in", 6)
    scorer = BatchScorer()
    v1 = active_version()
    first = register_files(files[:3])
    rep = scorer.score(first)
    assert rep.done == 3 and rep.model_version == v1

    v2_dir = tmp_path / "v2"
    shutil.copytree(SHIPPED_MODEL_DIR, v2_dir)
    card = json.loads((v2_dir / "card.json").read_text())
    card["version"] = "switch-test-v2"
    (v2_dir / "card.json").write_text(json.dumps(card))
    assert publish_model(v2_dir) == "switch-test-v2"

    second = register_files(files[3:])
    rep = scorer.score(second)
    assert rep.done == 3 and rep.model_version == "switch-test-v2" and scorer.version == "switch-test-v2"
    again = register_files(files[:3])  # scored by v1 only: to be scored by v2
    assert sorted(again) == sorted(first)
    assert scorer.score(again).done == 3
    assert scorer.score(again).skipped == 3  # a redelivered batch does nothing twice
    with session_scope() as s:
        rows = s.execute(select(Prediction.image_id, Prediction.model_version)).all()
    versions: dict[int, set[str]] = {}
    for image_id, version in rows:
        versions.setdefault(image_id, set()).add(version)
    assert len(rows) == 9
    assert all(versions[i] == {v1, "switch-test-v2"} for i in first)
    assert all(versions[i] == {"switch-test-v2"} for i in second)
