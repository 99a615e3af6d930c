"""Faults that once lost work or hung (issue 20), each with the real fault: a real symlink loop,
a real FIFO, a real 1 x 1,000,000 PNG, a heatmap folder really replaced while a scan runs,
heatmap files under a real umask, a real model card with wrong types. The race of a rescan
against a running `aidetect up` is in tests/watcher/test_faults_up.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from images import write_images
from PIL import Image

from aidetect.cli import main
from aidetect.config import SHIPPED_MODEL_DIR

pytestmark = pytest.mark.timeout(300)


def _cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`aidetect ARGS` in a child process (a hang is a failure after ``timeout`` s, not a stuck suite)."""
    return subprocess.run([sys.executable, "-m", "aidetect.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def env(aidetect_home: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    e["AIDETECT_HOME"] = str(aidetect_home)
    return e


def _loop_and_fifo(folder: Path) -> None:
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    os.mkfifo(folder / "pipe.jpg")


def test_scan_gives_loops_and_fifos_failed_rows_and_scores_the_rest(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "in"
    good = write_images(folder, 3)
    _loop_and_fifo(folder)
    export = tmp_path / "out.json"
    run = _cli(["scan", str(folder), "--inline", "--export", str(export)], env)
    assert run.returncode == 1, run.stderr  # some files failed
    assert "Traceback" not in run.stderr + run.stdout
    rows = {Path(r["path"]).name: r for r in json.loads(export.read_text())}
    assert len(rows) == 6
    for p in good:
        assert rows[p.name]["status"] == "done" and rows[p.name]["label"] in ("ai", "real")
    for name in ("loop_a.jpg", "loop_b.jpg"):
        assert rows[name]["status"] == "failed" and "symlink loop" in rows[name]["error"]
    assert rows["pipe.jpg"]["status"] == "failed" and "FIFO" in rows["pipe.jpg"]["error"]


def test_predict_does_not_block_on_a_fifo(env: dict[str, str], tmp_path: Path) -> None:
    (good,) = write_images(tmp_path, 1)
    _loop_and_fifo(tmp_path)
    run = _cli(["predict", "--json", str(tmp_path / "pipe.jpg"), str(tmp_path / "loop_a.jpg"), str(good)], env,
               timeout=120)
    assert run.returncode == 1, run.stderr
    rows = {Path(r["path"]).name: r for r in json.loads(run.stdout)}
    assert rows[good.name]["status"] == "done"
    assert "FIFO" in rows["pipe.jpg"]["error"] and "symlink loop" in rows["loop_a.jpg"]["error"]


def test_read_file_bytes_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    from aidetect.errors import ImageLoadError
    from aidetect.model.decode import read_file_bytes

    _loop_and_fifo(tmp_path)
    (tmp_path / "big.jpg").write_bytes(b"x" * 100)
    for name, reason in (("pipe.jpg", "FIFO"), ("loop_a.jpg", "symlink loop"), ("nope.jpg", "not found")):
        with pytest.raises(ImageLoadError, match=reason):
            read_file_bytes(tmp_path / name)
    with pytest.raises(ImageLoadError, match="over the limit of 99 bytes"):
        read_file_bytes(tmp_path / "big.jpg", max_bytes=99)
    with pytest.raises(ImageLoadError, match="directory"):
        read_file_bytes(tmp_path)


def test_a_one_pixel_wide_png_of_a_million_rows_is_refused_from_its_header(tmp_path: Path) -> None:
    from aidetect.inference import Detector
    from aidetect.model.decode import MAX_ASPECT, MAX_SIDE

    narrow = tmp_path / "narrow.png"
    Image.new("RGB", (1, 1_000_000), (120, 130, 140)).save(narrow)
    assert narrow.stat().st_size < 20_000  # the real thing: ~10 KB on disk
    strip = tmp_path / "strip.png"  # over the aspect limit, under the side limit
    Image.new("RGB", (20, 20 * int(MAX_ASPECT) + 40), (10, 200, 30)).save(strip)
    within = tmp_path / "banner.png"  # a wide banner inside the limits is scored, its views bounded
    Image.new("RGB", (224 * 30, 224), (90, 90, 200)).save(within)
    det = Detector(SHIPPED_MODEL_DIR)
    v_narrow, v_strip, v_banner = det.classify([narrow, strip, within], explain=True, heatmap_dir=tmp_path / "hm")
    assert v_narrow.error and f"limit of {MAX_SIDE} px" in v_narrow.error
    assert v_strip.error and "aspect ratio" in v_strip.error
    assert v_banner.error is None and v_banner.label in ("ai", "real")
    assert v_banner.tiles is not None and v_banner.tiles <= det.max_windows
    assert v_banner.cam is not None and max(v_banner.cam.shape) <= 256


def test_small_model_resizes_only_the_centre_square(tmp_path: Path) -> None:
    """A 31:1 strip under 224 px goes to the 32 px model: the centre square is cut before the
    resize (the old resize of the whole strip to 32 px high made a 32 x 1000 image first)."""
    from aidetect.model.preprocess import EvalPreset

    img = Image.new("RGB", (62, 1922), (0, 0, 0))
    img.paste((255, 255, 255), (0, 930, 62, 992))  # a white band in the centre square only
    t = EvalPreset(32).to_uint8(img)
    assert tuple(t.shape) == (3, 32, 32)
    assert t.float().mean() > 200  # the centre square is the white band


def test_heatmap_folder_that_is_a_file_is_one_line_and_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    (good,) = write_images(tmp_path / "in", 1)
    blocker = tmp_path / "heatmaps-file"
    blocker.write_text("not a folder")
    for args, extra in ((["predict", "--heatmap", str(blocker), str(good)], {}),
                        (["scan", str(tmp_path / "in"), "--inline"], {"AIDETECT_HEATMAP_DIR": str(blocker)})):
        run = _cli(args, {**env, **extra})
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr and len(lines) <= 3, run.stderr
        assert "is a file" in run.stderr or "not a folder" in run.stderr


def test_heatmap_folder_replaced_by_a_file_mid_scan_keeps_every_verdict(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_images(folder, 40, side=256, fmt="JPEG")  # the default model's path: heatmaps of 256 px images
    heatmaps = Path(env["AIDETECT_HOME"]) / "heatmaps"
    export = tmp_path / "out.json"
    replaced = threading.Event()

    def replace_once_the_first_heatmap_is_written() -> None:
        end = time.monotonic() + 240
        while time.monotonic() < end:
            if heatmaps.is_dir() and any(p.is_file() for p in heatmaps.rglob("*")):
                for n in range(100):  # the scan may make the folder again between the two steps
                    heatmaps.rename(tmp_path / f"old-heatmaps-{n}")
                    try:
                        with heatmaps.open("x") as fh:
                            fh.write("a file where the heatmap folder was")
                    except (FileExistsError, IsADirectoryError):
                        continue
                    replaced.set()
                    return
            time.sleep(0.02)

    t = threading.Thread(target=replace_once_the_first_heatmap_is_written, daemon=True)
    t.start()
    run = _cli(["scan", str(folder), "--inline", "--batch-size", "4", "--export", str(export)], env, timeout=280)
    t.join(timeout=5)
    assert replaced.is_set(), "the folder was never replaced: the test did not test anything"
    assert run.returncode == 0, run.stderr
    rows = json.loads(export.read_text())
    assert len(rows) == 40 and all(r["status"] == "done" and r["label"] in ("ai", "real") for r in rows)
    lost = [r for r in rows if r["heatmap_error"]]
    assert lost, "no verdict says its heatmap was not written"
    assert all(r["overlay_path"] is None and "heatmap not written" in r["heatmap_error"] for r in lost)
    # results --json reads the same from the store
    out = _cli(["results", "--json", "--limit", "100"], env)
    stored = {r["path"]: r for r in json.loads(out.stdout)}
    assert {r["path"] for r in lost} <= {p for p, r in stored.items() if r["heatmap_error"]}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_heatmap_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    from aidetect.explain.overlay import write_image

    old = os.umask(umask)
    try:
        import numpy as np

        write_image(tmp_path / "ab" / "x.cam.png", np.zeros((8, 8), np.uint8))
        write_image(tmp_path / "ab" / "x.overlay.jpg", np.zeros((8, 8, 3), np.uint8))
    finally:
        os.umask(old)
    for f in (tmp_path / "ab").iterdir():
        assert f.stat().st_mode & 0o777 == mode, (f.name, oct(f.stat().st_mode))


def _broken_model(tmp_path: Path, **changes: object) -> Path:
    model = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL_DIR, model)
    card = json.loads((model / "card.json").read_text())
    card.update(changes)
    (model / "card.json").write_text(json.dumps(card))
    return model


@pytest.mark.parametrize(("change", "said"), [
    ({"arch_kwargs": "oops"}, "arch_kwargs: 'oops' is not of type 'object'"),
    ({"uncertain_band": [0.8, "x"]}, "uncertain_band.1"),
    ({"temperature": -1}, "temperature"),
    ({"views": {"window": "big"}}, "views.window"),
])
def test_a_model_card_with_wrong_types_is_one_line_and_exit_2(
    env: dict[str, str], tmp_path: Path, change: dict, said: str
) -> None:
    model = _broken_model(tmp_path, **change)
    (good,) = write_images(tmp_path / "in", 1)
    for args in (["predict", str(good)], ["scan", str(tmp_path / "in"), "--inline"]):
        run = _cli(args, {**env, "AIDETECT_MODEL": str(model)})
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert len(lines) == 1 and said in lines[0] and "invalid model card" in lines[0], run.stderr


def test_shipped_cards_pass_the_schema() -> None:
    from aidetect.model.card import ModelCard

    for d in SHIPPED_MODEL_DIR.parent.iterdir():
        if (d / "card.json").is_file() and (d / "model.safetensors").is_file():
            ModelCard.load(d)


def test_a_card_broken_after_it_was_registered_fails_the_rows_with_the_reason(
    aidetect_home: Path, tmp_path: Path, capsys
) -> None:
    """What a worker under `up` does when the active model's card breaks: the batch's rows are
    failed with the reason (the worker task, run here in-process), none stays queued."""
    from aidetect.ingest import register_files
    from aidetect.store.model_versions import publish_model
    from aidetect.store.status import status_counts
    from aidetect.worker.tasks import score_batch

    model = _broken_model(tmp_path)  # a good copy first
    publish_model(model)
    good = write_images(tmp_path / "in", 3)
    reg = register_files(good)
    card = json.loads((model / "card.json").read_text())
    card["arch_kwargs"] = "oops"
    (model / "card.json").write_text(json.dumps(card))
    score_batch(list(reg))
    assert status_counts() == {"failed": 3}
    assert main(["results", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all("invalid model card" in r["error"] for r in rows)
