"""`aidetect models list|register|promote` and `aidetect scan --rescore` on a real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aidetect.cli import main
from aidetect.config import SHIPPED_MODEL_DIR


def _model_copy(tmp: Path, suffix: str) -> tuple[Path, str]:
    d = tmp / f"model_{suffix}"
    shutil.copytree(SHIPPED_MODEL_DIR, d)
    card = json.loads((d / "card.json").read_text())
    card["version"] = f"{card['version']}-{suffix}"
    (d / "card.json").write_text(json.dumps(card))
    return d, card["version"]


def _versions(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_models_register_promote_list(aidetect_home: Path, tmp_path: Path, capsys) -> None:
    v1 = json.loads((SHIPPED_MODEL_DIR / "card.json").read_text())["version"]
    rows = _versions(capsys)
    assert [(r["version"], r["active"]) for r in rows] == [(v1, True)]  # fresh store: shipped model
    d2, v2 = _model_copy(tmp_path, "b")
    assert main(["models", "register", str(d2)]) == 0
    rows = {r["version"]: r for r in _versions(capsys)}
    assert rows[v1]["active"] and not rows[v2]["active"]  # registered, not active
    copied = Path(rows[v2]["path"])
    assert copied.parent == aidetect_home / "models" and (copied / "model.safetensors").is_file()
    assert main(["models", "promote", v2]) == 0
    rows = {r["version"]: r for r in _versions(capsys)}
    assert rows[v2]["active"] and not rows[v1]["active"]
    assert main(["models", "promote", v1]) == 0
    assert main(["models", "list"]) == 0 and v1 in capsys.readouterr().out
    # user errors: one line, exit 2
    assert main(["models", "promote", "no-such-version"]) == 2
    assert "unknown model version" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text(json.dumps({"version": "x", "architecture": "npr_resnet"}))
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["models", "register", str(broken)]) == 2
    assert "safetensors" in capsys.readouterr().err
    assert "x" not in {r["version"] for r in _versions(capsys)}


def test_scan_rescore_rescores_older_versions_only(
    aidetect_home: Path, tmp_path: Path, mini_dir: Path, capsys
) -> None:
    from aidetect.ingest import register_files, score_inline

    folder = tmp_path / "imgs"
    folder.mkdir()
    for f in sorted((mini_dir / "ai").iterdir())[:6]:
        shutil.copy(f, folder / f.name)
    reg = register_files(sorted(folder.iterdir()), root=folder)
    score_inline(list(reg))
    d2, v2 = _model_copy(tmp_path, "c")
    assert main(["models", "register", str(d2), "--activate"]) == 0
    # one image already scored by v2: --rescore must leave it alone
    first = sorted(folder.iterdir())[0]
    score_inline(list(register_files([first], root=folder)))
    capsys.readouterr()
    assert main(["scan", "--rescore", "--inline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 5 and all(r["model_version"] == v2 for r in out)

    from sqlalchemy import func, select

    from aidetect.store.engine import session_scope
    from aidetect.store.tables import Prediction

    with session_scope() as s:
        per_version = dict(
            s.execute(select(Prediction.model_version, func.count()).group_by(Prediction.model_version)).all()
        )
    assert per_version[v2] == 6 and sum(per_version.values()) == 12  # old results kept
    assert main(["scan", "--rescore", "--inline"]) == 0  # nothing left to do
    capsys.readouterr()
    assert main(["scan"]) == 2  # no FOLDER and no --rescore: a usage error
    assert "FOLDER" in capsys.readouterr().err
