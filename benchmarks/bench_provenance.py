"""Cost of reading provenance evidence, next to the cost of decoding the image.

Makes JPEGs here (photo-like gradients and noise, quality 90, with camera EXIF), then times
per image, median over the set, after one warm-up read:

* ``aidetect.model.decode.load_image`` (what scoring pays anyway);
* ``read_evidence(..., watermark=False)`` (metadata only: container walk, XMP, EXIF, text);
* ``read_evidence(...)`` (metadata and the SD v1 + SDXL watermark check);
* the SD v1 + SDXL decoders on the whole frame (aidetect's own, and invisible-watermark's where
  that test tool is installed, for comparison); with ``--large`` all of it on 12 MP images
  (4000 x 3000) too, where ``read_evidence`` decodes only a top band of ``WATERMARK_MAX_PIXELS``.

Run:

    python benchmarks/bench_provenance.py [--n 40] [--large] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image


def make_jpeg(seed: int, width: int, height: int) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 255 / (width + height)], -1)
    arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS R5"
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def median_ms(fn: Callable[[bytes], object], images: list[bytes]) -> float:
    fn(images[0])  # warm-up: imports, native library start
    times = []
    for data in images:
        t0 = time.perf_counter()
        fn(data)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def full_frame_watermark_ms(images: list[bytes], reference: bool = False) -> float:
    """The SD v1 + SDXL decoders on the whole frame: what reading without the top-band cap would
    cost; aidetect's own decoder, or (``reference``) invisible-watermark's, where installed."""
    from aidetect.provenance.watermark import MARKS, decode_dwtdct

    if reference:
        from imwatermark import WatermarkDecoder

    def run(data: bytes) -> None:
        with Image.open(io.BytesIO(data)) as img:
            bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])
        for mark in MARKS:
            if reference:
                WatermarkDecoder(mark.wm_type, mark.length).decode(bgr, "dwtDct")
            else:
                decode_dwtdct(bgr, mark.length)

    return median_ms(run, images)


def measure(label: str, images: list[bytes], full_frame: bool) -> dict[str, float | str | int]:
    from aidetect.model.decode import load_image
    from aidetect.provenance import read_evidence

    decode = median_ms(load_image, images)
    meta = median_ms(lambda d: read_evidence(d, watermark=False), images)
    with_wm = median_ms(read_evidence, images)
    row: dict[str, float | str | int] = {
        "images": label, "n": len(images), "decode_ms": decode, "metadata_ms": meta, "with_watermark_ms": with_wm,
        "metadata_vs_decode": meta / decode, "with_watermark_vs_decode": with_wm / decode,
    }
    if full_frame:
        row["full_frame_watermark_ms"] = full_frame_watermark_ms(images)
        with contextlib.suppress(ImportError):  # invisible-watermark is a test tool (bootstrap.sh test)
            row["full_frame_reference_ms"] = full_frame_watermark_ms(images, reference=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="512 px images (default 40)")
    ap.add_argument("--large", action="store_true", help="also 12 MP images (4000 x 3000)")
    ap.add_argument("--n-large", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()

    rows = [measure("512x512 JPEG", [make_jpeg(i, 512, 512) for i in range(args.n)], full_frame=True)]
    if args.large:
        rows.append(measure("4000x3000 JPEG (12 MP)", [make_jpeg(i, 4000, 3000) for i in range(args.n_large)],
                            full_frame=True))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['images']} (n={r['n']}, median per image)")
        print(f"  load_image (decode)           {r['decode_ms']:8.2f} ms")
        print(f"  read_evidence, no watermark   {r['metadata_ms']:8.2f} ms   x{r['metadata_vs_decode']:.2f} of decode")
        print(f"  read_evidence, with watermark {r['with_watermark_ms']:8.2f} ms   "
              f"x{r['with_watermark_vs_decode']:.2f} of decode")
        if "full_frame_watermark_ms" in r:
            print(f"  (watermark decoders on the whole frame: {r['full_frame_watermark_ms']:.2f} ms", end="")
            if "full_frame_reference_ms" in r:
                print(f"; invisible-watermark's own: {r['full_frame_reference_ms']:.2f} ms, "
                      f"x{r['full_frame_reference_ms'] / r['full_frame_watermark_ms']:.1f}", end="")
            print(")")


if __name__ == "__main__":
    main()
