"""``aidetect predict``: table, JSON, heatmaps, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aidetect.cli import main
from aidetect.config import FAST_MODEL_DIR

MINI = Path(__file__).resolve().parents[1] / "data" / "cifake_mini"


@pytest.fixture
def files(tmp_path: Path) -> tuple[list[str], str]:
    good = [str(p) for p in (sorted((MINI / "ai").glob("*"))[:2] + sorted((MINI / "real").glob("*"))[:1])]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return good, str(bad)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["predict", "--model", str(FAST_MODEL_DIR), *args])  # the CNN; the fused default: test_fused.py
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_one_object_per_image(files, capsys, aidetect_home) -> None:  # type: ignore[no-untyped-def]
    good, _ = files
    rc, out, _ = run(capsys, "--json", *good)
    assert rc == 0
    rows = json.loads(out)
    assert [r["path"] for r in rows] == good
    for r in rows:
        assert r["label"] in ("ai", "real") and 0 <= r["prob_ai"] <= 1 and isinstance(r["uncertain"], bool)
        assert r["model_version"] and r["status"] == "done" and r["error"] is None and r["overlay_path"] is None


def test_bad_file_gets_its_own_error_and_exit_1(files, capsys, aidetect_home) -> None:  # type: ignore[no-untyped-def]
    good, bad = files
    rc, out, err = run(capsys, "--json", good[0], bad, good[1], "/no/such/file.png")
    assert rc == 1
    rows = json.loads(out)
    assert [r["status"] for r in rows] == ["done", "failed", "done", "failed"]
    assert rows[1]["path"] == bad and rows[1]["error"] and rows[3]["error"].endswith("file not found")
    assert "2 of 4" in err


def test_table_and_heatmaps(files, capsys, aidetect_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good, bad = files
    hm = tmp_path / "heat"
    rc, out, _ = run(capsys, "--heatmap", str(hm), "--cam-method", "gradcam++", "--explain-other", good[0], bad)
    assert rc == 1
    flat = "".join(ch for ch in out if ch.isascii() and not ch.isspace())
    assert "prob_ai" in flat and "uncertain" in flat and "broken.jpg" in flat
    overlays = list(hm.rglob("*.overlay.jpg"))
    assert len(overlays) == 1 and "-gradcam++-other" in overlays[0].name
    assert overlays[0].name in flat
    rc, out, _ = run(capsys, "--json", "--heatmap", str(hm), good[0])
    assert rc == 0
    (row,) = json.loads(out)
    assert Path(row["overlay_path"]).is_file() and Path(row["cam_path"]).is_file()


def test_missing_model_is_one_line_exit_2(capsys, aidetect_home) -> None:  # type: ignore[no-untyped-def]
    rc = main(["predict", "--model", "/no/such/model", str(next((MINI / "ai").glob("*")))])
    _, err = capsys.readouterr()
    assert rc == 2
    assert err.strip().count("\n") == 0 and "model directory not found" in err


def test_a_photo_seen_in_part_says_how_much(tmp_path, capsys, aidetect_home) -> None:  # type: ignore[no-untyped-def]
    """A photo above 1 MP is seen through windows: the table gets a "seen" column and the JSON a
    ``seen`` share below 1; an image seen whole has ``seen`` 1.0."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    big, small = tmp_path / "big.jpg", tmp_path / "small.jpg"
    Image.fromarray(rng.integers(0, 256, (1600, 2400, 3), dtype=np.uint8)).save(big, quality=90)
    Image.fromarray(rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)).save(small, quality=90)
    rc, out, _ = run(capsys, "--json", str(big), str(small))
    assert rc == 0
    seen = [r["seen"] for r in json.loads(out)]
    assert 0.3 < seen[0] < 0.7 and seen[1] == 1.0  # 8 windows of 512 px over 3.84 MP
    rc, out, _ = run(capsys, str(big), str(small))
    flat = "".join(ch for ch in out if ch.isascii() and not ch.isspace())
    assert rc == 0 and "seen" in flat and f"{seen[0] * 100:.0f}%" in flat and "100%" in flat
