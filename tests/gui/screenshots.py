"""Screenshots of the dashboard at the window sizes it supports, for docs/gui.md and for
looking at (is anything cut?). Not a test: run it under an X server big enough, e.g.

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python tests/gui/screenshots.py

It fills a temporary store through the real pipeline (``aidetect.ingest.submit``, scored in
this process): files with long names, broken files whose reasons are long, and an image the
model is unsure of; then opens the window at each size with that image selected and its
heatmap shown, after an upload of three files (one broken) through the window, and saves
``docs/img/dashboard-<w>x<h>.png`` (plus ``-failed`` with a failed row selected). ``--sizes 1024x640`` for one size, ``--out DIR`` elsewhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests" / "data" / "cifake_mini"
SIZES = ((1024, 640), (1280, 800), (1920, 1080))
UNSURE = "ai/ai_011.jpg"  # P(ai) ~ 0.64 with the shipped model: in the uncertain band
LONG = "holiday_2024_summer_trip_to_the_mountains_with_the_whole_family_and_friends"


def make_files(folder: Path) -> dict[str, Path]:
    """Image files to upload: long and short names, broken files, the unsure image."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def copy(src: str, name: str) -> None:
        out[name] = folder / name
        shutil.copy(MINI / src, out[name])

    copy(UNSURE, f"{LONG}_unsure_IMG_20240812_183512.jpg")
    for i in range(6):
        copy(f"ai/ai_{40 + i:03d}.jpg", f"{LONG}_IMG_2024081{i}_1{i}3512.jpg")
        copy(f"real/real_{40 + i:03d}.jpg", f"real_{40 + i:03d}.jpg")
    for i in range(2):
        name = f"scanned_document_from_the_office_printer_page_{i + 1}_of_2_final_version.jpg"
        out[name] = folder / name
        out[name].write_bytes(b"not a picture at all, just some bytes " * (i + 1))
    name = f"{LONG}_panorama_stitched_from_forty_frames.png"
    out[name] = folder / name
    out[name].write_bytes(_huge_png(200_000, 100_000))  # refused: over the bomb limit
    return out


def _huge_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (its data is one byte)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def upload_files(folder: Path, n: int) -> list[Path]:
    """Two images and a broken file for the window's own upload (new content each ``n``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / f"beach_{n}.jpg", folder / f"street_{n}.jpg", folder / f"notes_{n}.jpg"]
    shutil.copy(MINI / "ai" / f"ai_{70 + n:03d}.jpg", out[0])
    shutil.copy(MINI / "real" / f"real_{70 + n:03d}.jpg", out[1])
    out[2].write_text("meeting notes, saved with the wrong extension\n")
    return out


def upload(app, files: list[Path]) -> None:
    """Upload through the window (its helper process scores them) and wait for the result."""
    app.upload_paths(files)
    pump(app.root, lambda: app.last_upload is not None or app.last_error is not None, 300)
    pump(app.root, lambda: not app.table.loading and not app.toolbar.busy)


def fill_store(files: list[Path]) -> None:
    """Register and score ``files`` in this process, the same pipeline as ``aidetect scan``."""
    from aidetect.ingest import submit

    submit(files, route="inline")


def pump(root, until: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there")
        root.update()
        time.sleep(0.01)


def settle(root, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        root.update()
        time.sleep(0.01)


def select(app, name_part: str) -> None:
    """Select the row whose file name contains ``name_part`` and wait for its picture."""
    key = next(k for k, r in app.table.rows.items() if name_part in r.name)
    app.tree.selection_set(key)
    app.tree.see(key)
    pump(app.root, lambda: app.detail.row is not None and app.detail.row.key == key)
    pump(app.root, lambda: app.detail.rendered is not None or app.detail.row.status == "failed")
    settle(app.root, 0.8)


def shoot(app, out: Path) -> Path:
    r = app.root
    r.update()
    geometry = f"{r.winfo_width()}x{r.winfo_height()}+{r.winfo_rootx()}+{r.winfo_rooty()}"
    subprocess.run(
        ["import", "-window", "root", "-crop", geometry, "+repage", str(out)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out


def window(size: tuple[int, int]):
    from aidetect.gui.app import Dashboard

    app = Dashboard(size=size, live_ms=500, status_ms=500)
    pump(app.root, lambda: app.table.page_loads > 0 and not app.table.loading)
    pump(app.root, lambda: "Model:" in app.model_label.cget("text") and "–" not in app.model_label.cget("text"))
    settle(app.root, 0.5)
    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    ap.add_argument("--sizes", nargs="*", default=[f"{w}x{h}" for w, h in SIZES])
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aidetect-shots-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["AIDETECT_HOME"] = str(home)
        for var in ("AIDETECT_DATABASE_URL", "AIDETECT_BROKER_URL", "AIDETECT_INBOX", "AIDETECT_CONFIG"):
            os.environ.pop(var, None)
        files = make_files(Path(tmp) / "Pictures" / "camera uploads" / "2024")
        fill_store(list(files.values()))
        for n, (w, h) in enumerate(sizes):
            app = window((w, h))
            try:
                upload(app, upload_files(Path(tmp) / "upload", n))
                select(app, "unsure")
                print(shoot(app, args.out / f"dashboard-{w}x{h}.png"))
                select(app, "panorama")
                print(shoot(app, args.out / f"dashboard-{w}x{h}-failed.png"))
            finally:
                app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
