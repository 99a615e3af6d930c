"""`aidetect scan` / `aidetect results` in one process (no worker): bad inputs never stop a
batch, re-scans skip what the active model already scored, exports hold the contract fields."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from images import write_bad_inputs, write_images

from aidetect.cli import main

FIELDS = ("path", "sha256", "status", "label", "prob_ai", "uncertain", "model_version", "error")


def _scan(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["scan", *args])
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


def test_scan_inline_bad_inputs_and_rescan(aidetect_home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "scan"
    good = write_images(folder, 12) + write_images(folder / "sub", 4, start=100, side=64, fmt="JPEG")
    bad = write_bad_inputs(folder, tmp_path / "outside")
    export = tmp_path / "out.json"
    code, out, err = _scan([str(folder), "--recursive", "--inline", "--batch-size", "5", "--json",
                            "--export", str(export)], capsys)
    assert code == 1, err  # some files failed (exit-code contract, aidetect.errors)
    rows = json.loads(out)
    assert json.loads(export.read_text()) == rows
    by_path = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == len(good) + len(bad)
    for r in rows:
        for key in FIELDS:
            assert key in r
    for p in good:
        r = by_path[p.name]
        assert r["status"] == "done" and r["label"] in ("ai", "real") and 0 <= r["prob_ai"] <= 1
        assert r["model_version"] and Path(r["overlay_path"]).is_file() and Path(r["cam_path"]).is_file()
    reasons = {name: by_path[p.name]["error"] for name, p in bad.items()}
    for name, p in bad.items():
        assert by_path[p.name]["status"] == "failed", (name, by_path[p.name])
        assert reasons[name], name
    assert "outside the scanned folder" in reasons["symlink_out"]
    assert "0 bytes" in reasons["zero"] or "empty" in reasons["zero"]
    assert "in-process" in err or "no worker" in err
    assert "failed 5" in err

    # scanned again: nothing re-run; --rescan re-runs, still one prediction per image
    code, out, err = _scan([str(folder), "-r", "--inline", "--json"], capsys)
    assert code == 1 and "0 to score" in err and "5 failed" in err
    code, out, err = _scan([str(folder), "-r", "--inline", "--rescan"], capsys)
    assert code == 1 and f"{len(good) + 4} to score" in err
    from sqlalchemy import func, select

    from aidetect.store import Prediction, session_scope

    with session_scope() as s:
        per_image = s.execute(select(Prediction.image_id, func.count()).group_by(Prediction.image_id)).all()
    assert len(per_image) == len(good) and all(n == 1 for _, n in per_image)

    # results: filters and output formats
    assert main(["results", "--status", "failed", "--json"]) == 0
    failed = json.loads(capsys.readouterr().out)
    assert len(failed) == len(bad)
    assert main(["results", "--label", "ai", "--csv"]) == 0
    ai_rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert all(r["label"] == "ai" for r in ai_rows)
    assert main(["results", "--path", f"{folder}/sub/*", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert main(["results", "--prob-min", "0.5", "--json"]) == 0
    assert all(r["prob_ai"] >= 0.5 for r in json.loads(capsys.readouterr().out))
    assert main(["results"]) == 0
    assert "matching results" in capsys.readouterr().out
    assert main(["results", "--since", "yesterday"]) == 2


def test_unreadable_file_fails_alone(tmp_path: Path) -> None:
    """A file the scanning user cannot read becomes a failed row. Tests run as root, for
    whom chmod 000 blocks nothing, so the scan then runs as user nobody (setpriv), in a
    folder of its own outside pytest's private (0700) temp root."""
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    base = Path(tempfile.mkdtemp(prefix="aidetect-unreadable-")) if as_root else tmp_path
    try:
        base.chmod(0o777)
        home, folder = base / "home", base / "scan"
        home.mkdir()
        home.chmod(0o777)
        write_images(folder, 3)
        folder.chmod(0o755)
        secret = folder / "secret.png"
        secret.write_bytes((folder / "img_00000.png").read_bytes() + b"x")
        secret.chmod(0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
        env["AIDETECT_HOME"] = str(home)
        env["HOME"] = str(home)
        cmd = [sys.executable, "-m", "aidetect.cli", "scan", str(folder), "--inline", "--json"]
        if as_root:
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 1, proc.stderr  # one file failed
        rows = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
        assert rows["secret.png"]["status"] == "failed"
        assert "permission denied" in rows["secret.png"]["error"]
        assert sum(r["status"] == "done" for r in rows.values()) == 3
    finally:
        if as_root:
            shutil.rmtree(base, ignore_errors=True)


def test_scan_without_worker_scores_in_process(aidetect_home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """No worker alive on the embedded broker: scan says so and scores in this process."""
    write_images(tmp_path / "scan", 4)
    code, out, err = _scan([str(tmp_path / "scan"), "--worker-wait", "1", "--json"], capsys)
    assert code == 0, err
    assert "no worker alive" in err and "scoring in this process" in err
    rows = json.loads(out)
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
