"""Heatmap files: raw CAM + overlay, named by content and model version, never duplicated."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from aidetect.errors import AidetectError
from aidetect.explain.overlay import read_cam_png, render_overlay
from aidetect.inference import Detector

MINI = Path(__file__).resolve().parents[1] / "data" / "cifake_mini"


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_overlay_and_cam_written_once(detector: Detector, tmp_path: Path) -> None:
    files = sorted((MINI / "ai").glob("*"))[:3]
    out = tmp_path / "hm"
    verdicts = detector.classify(files, heatmap_dir=out)
    written = all_files(out)
    assert len(written) == 6
    for v in verdicts:
        cam_path, ov_path = Path(v.cam_path), Path(v.overlay_path)
        assert cam_path.parent.name == v.sha256[:2]
        assert v.sha256 in cam_path.name and detector.version in ov_path.name
        cam = read_cam_png(cam_path)
        assert cam.shape == v.cam.shape and np.abs(cam - v.cam).max() <= 1 / 255 + 1e-6
        ov = Image.open(ov_path)
        assert ov.size == (v.width, v.height) and ov.mode == "RGB"
    stamps = {p: p.stat().st_mtime_ns for p in written}
    # re-run (and the same file content under another name): nothing new, nothing rewritten
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(files[0].read_bytes())
    again = detector.classify([*files, copy], heatmap_dir=out)
    assert all_files(out) == written
    assert {p: p.stat().st_mtime_ns for p in written} == stamps
    assert again[3].overlay_path == verdicts[0].overlay_path
    # explaining the other class, or another method, gets its own files
    other = detector.classify(files[:1], target="other", heatmap_dir=out)[0]
    assert other.overlay_path != verdicts[0].overlay_path and other.overlay_path.endswith("-other.overlay.jpg")


def test_save_heatmaps_after_the_fact(detector: Detector, tmp_path: Path) -> None:
    f = sorted((MINI / "real").glob("*"))[0]
    (v,) = detector.classify([f])
    assert v.cam_path is None
    cam_path, ov_path = detector.save_heatmaps(v, tmp_path)
    assert cam_path.is_file() and ov_path.is_file()
    (b,) = detector.classify([f.read_bytes()])
    with pytest.raises(AidetectError):
        detector.save_heatmaps(b, tmp_path)  # bytes source: needs the image
    assert detector.save_heatmaps(b, tmp_path, image=f.read_bytes())[1] == ov_path
    (n,) = detector.classify([f], explain=False)
    with pytest.raises(AidetectError):
        detector.save_heatmaps(n, tmp_path)


def test_overlay_colours_capped_size_and_opacity() -> None:
    img = np.full((600, 1500, 3), 128, np.uint8)
    cam = np.zeros((60, 150), np.float32)
    cam[:, 75:] = 1.0  # right half important
    ov = render_overlay(img, cam, max_side=1024, alpha=0.5)
    assert ov.shape == (410, 1024, 3)  # long side capped, aspect kept
    b, g, r = ov[200, 1000].astype(int)
    assert r > b + 40  # high = red
    b, g, r = ov[200, 20].astype(int)
    assert b > r + 40  # low = blue
    faint = render_overlay(img, cam, max_side=1024, alpha=0.1)
    assert np.abs(faint.astype(int) - 128).mean() < np.abs(ov.astype(int) - 128).mean()
    ok, _ = cv2.imencode(".png", ov)
    assert ok


def test_unwritable_heatmap_dir_keeps_the_verdicts(detector: Detector, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    files = sorted((MINI / "ai").glob("*"))[:2]
    verdicts = detector.classify(files, heatmap_dir=blocker / "hm")
    for v in verdicts:
        assert v.ok and v.label and v.cam is not None
        assert v.overlay_path is None and v.heatmap_error and "heatmap not written" in v.heatmap_error
