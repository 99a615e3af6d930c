"""Inference throughput: images/s, beside this machine's yardstick (ResNet-18 forward), for

  (a) decode + preprocess only            (Detector.prepare)
  (b) (a) + forward                        (Detector.classify(explain=False))
  (c) (a) + forward + Grad-CAM + files     (Detector.classify(heatmap_dir=fresh dir))

on 512 px JPEGs from ../shared/data/coco_sd (tiled at native resolution) and on 32 px CIFAKE
images (test parquet bytes written to a temp dir; tests/data/cifake_mini without the shared
data), at several batch sizes, with the ratios the project's goal is stated in:
(c)/(a) >= 0.5 and CAM+overlay cost <= 1.5x the forward alone, at batch 32. Column "(b+cam)"
is Grad-CAM without writing files (classify(explain=True)), "cam / fwd" what it adds. The CAM+overlay
cost is reported both as (t_c - t_b) / (t_b - t_a) (what the CAM and the files add, per unit
of forward time) and as (t_c - t_a) / (t_b - t_a) (forward + backward + files vs forward).

    python benchmarks/bench_inference.py                  # all, 1 torch thread
    python benchmarks/bench_inference.py --threads 2 --n 64 --batch-sizes 1,16,32,64
    python benchmarks/bench_inference.py --device cuda    # on a GPU machine

Prints the load average before and after: the machine's CPU may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AIDETECT_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO / "src"))

from aidetect.config import SHIPPED_MODEL_DIR  # noqa: E402
from aidetect.inference import Detector  # noqa: E402
from aidetect.model import ModelCard  # noqa: E402
from aidetect.model.precision import precision_name  # noqa: E402


def coco_files(n: int) -> list[Path]:
    root = SHARED / "coco_sd"
    files = sorted((root / "real").glob("*.jpg"))[: n // 2] + sorted((root / "ai").glob("*.jpg"))[: n - n // 2]
    return files


def cifake_files(n: int, tmp: Path) -> tuple[list[Path], str]:
    parquet = SHARED / "cifake" / "test.parquet"
    if parquet.is_file():
        import pyarrow.parquet as pq

        table = pq.read_table(parquet).slice(0, n).to_pylist()
        out = []
        for i, row in enumerate(table):
            data = row["image"]["bytes"]
            suffix = ".png" if data[:4] == b"\x89PNG" else ".jpg"
            p = tmp / f"cifake_{i:05d}{suffix}"
            p.write_bytes(data)
            out.append(p)
        return out, "CIFAKE test parquet"
    mini = sorted((REPO / "tests" / "data" / "cifake_mini").rglob("*.*"))
    return (mini * (n // max(1, len(mini)) + 1))[:n], "tests/data/cifake_mini"


def yardstick(device: str | None, repeat: int, batch: int = 32, steps: int = 4) -> float:
    """This machine's yardstick: torchvision ResNet-18, random weights, forward only at 224 px,
    batch 32, fp32, channels_last, all the threads torch was given: images/s."""
    from torchvision.models import resnet18

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = resnet18(weights=None).eval().to(dev, memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device=dev).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        net(x)  # warm-up
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(steps):
                net(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return batch * steps / best


def paired_ratio(det: Detector, files: list[Path], tmp: Path, device: str | None, pairs: int) -> None:
    """The goal's ratio measured in pairs: the yardstick, then at once the ``predict --heatmap``
    path on ``files``, ``pairs`` times. The machine's own speed drifts between runs (the
    yardstick alone moved 46-55 img/s on the development machine); a ratio taken within a pair
    cancels most of that drift, and the spread of the pairs shows what is left."""
    ratios = []
    for _ in range(pairs):
        y = yardstick(device, 1)
        w = run_stage(det, files, 32, "c", tmp)[0]
        ratios.append(len(files) / w / y)
    ratios.sort()
    print(f"paired (yardstick, then the same path, {pairs} times): x the yardstick "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; median {ratios[len(ratios) // 2]:.3f}")


def large_photos(n: int, tmp: Path, size: tuple[int, int] = (4032, 3024)) -> list[Path]:
    """``n`` 12 MP JPEGs (q 90) made from coco_sd photos upscaled to 4032 x 3024 (the size of a
    phone photo; the content only has to be photo-like for timing)."""
    from PIL import Image

    out = []
    for i, src in enumerate(coco_files(n)):
        p = tmp / f"photo12mp_{i:03d}.jpg"
        with Image.open(src) as im:
            im.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(p, quality=90)
        out.append(p)
    return out


def run_stage(det: Detector, files: list[Path], bs: int, stage: str, tmp: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to push ``files`` through ``stage``."""
    out = None
    if stage == "c":
        # a fresh folder, so every file is really written; its 256 shard folders made up
        # front, as in a heatmap folder that has seen a few thousand images
        out = Path(tempfile.mkdtemp(dir=tmp))
        for i in range(256):
            (out / f"{i:02x}").mkdir()
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(files), bs):
        chunk = files[i : i + bs]
        if stage == "a":
            det.prepare(chunk)
        elif stage == "b":
            det.classify(chunk, explain=False)
        elif stage == "g":
            det.classify(chunk, explain=True)
        else:
            det.classify(chunk, heatmap_dir=out)
    dt = (time.perf_counter() - w0, time.process_time() - c0)
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    return dt


def _row(label: str, n: int, t: dict[str, float]) -> str:
    rate = {s: n / t[s] for s in t}
    fwd = max(t["b"] - t["a"], 1e-9)
    extra = (t["c"] - t["b"]) / fwd
    total = (t["c"] - t["a"]) / fwd
    cam_only = (t["g"] - t["b"]) / fwd
    return (f"{label:>10} | {rate['a']:>10.1f} | {rate['b']:>10.1f} | {rate['g']:>10.1f} | {rate['c']:>10.1f} "
            f"| {rate['c'] / rate['a']:>6.3f} | {rate['c'] / rate['b']:>6.3f} | {cam_only:>9.2f} | {extra:>15.2f} "
            f"| {total:>21.2f}")


def bench(det: Detector, name: str, files: list[Path], batch_sizes: list[int], tmp: Path, repeat: int) -> None:
    print(f"\n## {name}: {len(files)} images, model {det.version}, input {det.input_size} px, "
          f"device {det.device}, precision {det.precision} ({precision_name(det.amp_dtype)}), "
          f"views {det.card.views or 'input-size tiles'}, tile_min_side {det.tile_min_side}, max_tiles {det.max_tiles}")
    print("img/s from wall-clock time, and from this process's CPU time (robust when the CPU is shared)")
    print(f"{'batch/clk':>10} | {'(a) img/s':>10} | {'(b) img/s':>10} | {'(b+cam)':>10} | {'(c) img/s':>10} "
          f"| {'c/a':>6} | {'c/b':>6} | {'cam / fwd':>9} | {'cam+files / fwd':>15} | {'(fwd+bwd+files) / fwd':>21}")
    for bs in batch_sizes:
        run_stage(det, files[: min(len(files), max(bs, 2))], bs, "c", tmp)  # warm-up this shape
        runs = {s: [run_stage(det, files, bs, s, tmp) for _ in range(repeat)] for s in "abgc"}
        wall = {s: min(r[0] for r in runs[s]) for s in runs}
        cpu = {s: min(r[1] for r in runs[s]) for s in runs}
        print(_row(f"{bs} wall", len(files), wall))
        print(_row(f"{bs} cpu", len(files), cpu))


def tiling_cost(model: Path, device: str | None, files: list[Path], tmp: Path, threads: int, repeat: int) -> None:
    print(f"\n## tiling cost on {len(files)} 512 px JPEGs, batch 32, img/s from CPU time "
          "(max_tiles 1 = resize + centre crop)")
    print(f"{'max_tiles':>9} | {'tiles/img':>9} | {'(b) img/s':>10} | {'(c) img/s':>10}")
    for mt in (1, 4, 16, 64):
        det = Detector(model, device=device, max_tiles=mt, threads=threads)
        tiles = det.classify(files[:1], explain=False)[0].tiles
        run_stage(det, files[:2], 32, "c", tmp)
        tb = min(run_stage(det, files, 32, "b", tmp)[1] for _ in range(repeat))
        tc = min(run_stage(det, files, 32, "c", tmp)[1] for _ in range(repeat))
        print(f"{mt:>9} | {tiles:>9} | {len(files) / tb:>10.1f} | {len(files) / tc:>10.1f}")


def what_helps(model: Path, device: str | None, files: list[Path], tmp: Path, threads: int, repeat: int,
               yard: float) -> None:
    """The predict --heatmap path on 512 px JPEGs with each speed-up of Detector v2 taken away:
    the card's whole-image views (vs 224 px tiles), bf16 autocast (vs fp32)."""
    tiles_dir = tmp / "model-tiles"
    shutil.copytree(model, tiles_dir)
    card = ModelCard.load(tiles_dir)
    card.views = {}
    card.save(tiles_dir)
    print(f"\n## what helps: {len(files)} 512 px JPEGs, predict --heatmap path, batch 32, wall img/s, x the yardstick")
    for label, mdir, prec in (("card views (whole image), auto precision", model, "auto"),
                              ("card views, fp32", model, "fp32"),
                              ("224 px tiles, auto precision", tiles_dir, "auto"),
                              ("224 px tiles, fp32 (before)", tiles_dir, "fp32")):
        det = Detector(mdir, device=device, threads=threads, precision=prec)
        tiles = det.classify(files[:1], explain=False)[0].tiles
        run_stage(det, files[:4], 32, "c", tmp)
        w = min(run_stage(det, files, 32, "c", tmp)[0] for _ in range(max(1, repeat)))
        print(f"{label:>42} ({precision_name(det.amp_dtype)}, {tiles} views/img): {len(files) / w:6.2f} img/s = "
              f"{len(files) / w / yard:.3f} x")
    shutil.rmtree(tiles_dir, ignore_errors=True)


def provenance_cost(det: Detector, files: list[Path], tmp: Path, repeat: int) -> None:
    """What reading each file's provenance (aidetect.provenance, on by default) adds to the
    predict --heatmap path: 512 px JPEGs (metadata only: a watermark cannot survive JPEG),
    and the same pictures as PNG (metadata + the invisible-watermark decode)."""
    from PIL import Image

    pngs = []
    for f in files:
        out = tmp / (f.stem + ".png")
        Image.open(f).convert("RGB").save(out)
        pngs.append(out)
    for name, group in (("512 px JPEG", files), ("512 px PNG (+ watermark check)", pngs)):
        cpu: dict[bool, float] = {False: float("inf"), True: float("inf")}
        for _ in range(max(3, repeat)):  # alternated, best of each: load changes between runs
            for on in (False, True):
                det.read_provenance = on
                cpu[on] = min(cpu[on], run_stage(det, group, 32, "c", tmp)[1])
        det.read_provenance = True
        extra = cpu[True] / cpu[False] - 1.0
        print(f"{name}, predict --heatmap path, batch 32, CPU time: provenance off {len(group) / cpu[False]:.2f} img/s, "
              f"on {len(group) / cpu[True]:.2f} img/s: {extra * 100:+.1f} %" + (" (goal <= 10 %)" if "JPEG" in name else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--n", type=int, default=64, help="images per dataset")
    ap.add_argument("--batch-sizes", default="1,16,32,64")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per cell")
    ap.add_argument("--pairs", type=int, default=5,
                    help="(yardstick, path) pairs for the goal's ratio; more on a machine whose speed drifts")
    ap.add_argument("--no-tiling-table", action="store_true")
    ap.add_argument("--no-what-helps", action="store_true", help="skip the table of each speed-up taken away")
    ap.add_argument(
        "--tmp",
        type=Path,
        default=Path.home() / ".cache" / "aidetect-bench",
        help="where heatmaps are written (not /tmp: file creation there was measured ~10x slower on this machine)",
    )
    args = ap.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}; torch {torch.__version__}; "
          f"threads {args.threads or torch.get_num_threads()}")
    det = Detector(args.model, device=args.device, threads=args.threads)
    args.tmp.mkdir(parents=True, exist_ok=True)
    yard = yardstick(args.device, max(1, args.repeat))
    print(f"\nyardstick: torchvision ResNet-18 forward, 224 px, batch 32, random weights: {yard:.1f} img/s")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp_s:
        tmp = Path(tmp_s)
        coco = coco_files(args.n)
        if coco:
            bench(det, "coco_sd 512 px JPEG (tiled)", coco, batch_sizes, tmp, args.repeat)
        else:
            print(f"\n(no {SHARED / 'coco_sd'}: 512 px part skipped)")
        if coco:
            w = min(run_stage(det, coco, 32, "c", tmp)[0] for _ in range(max(1, args.repeat)))
            fused = bool(det.card.fusion)
            print(f"\n512 px JPEG, predict --heatmap path (decode to overlay file), batch 32: {len(coco) / w:.2f} img/s "
                  f"= {len(coco) / w / yard:.3f} x the yardstick (goal >= {0.25 if fused else 0.5})")
            if fused:  # the cascade: on how many of these the CNN alone was firm enough
                branches = [v.branches or {} for v in det.classify(coco, explain=False)]
                ran = sum(1 for b in branches if b.get("clip") is not None)
                print(f"the CLIP branch ran on {ran} of {len(coco)} images (cascade fusion.cnn_firm "
                      f"{(det.card.fusion or {}).get('cnn_firm')}; the rest: {sorted({str(b.get('skipped')) for b in branches if b.get('clip') is None})})")
            paired_ratio(det, coco, tmp, args.device, max(args.pairs, args.repeat))
            provenance_cost(det, coco, tmp, max(1, args.repeat))
            big = large_photos(min(8, args.n), tmp)
            run_stage(det, big[:1], 8, "c", tmp)
            w = min(run_stage(det, big, 8, "c", tmp)[0] for _ in range(max(1, args.repeat)))
            print(f"12 MP JPEG (4032 x 3024, {det.classify(big[:1], explain=False)[0].tiles} views), same path, "
                  f"batch 8: {len(big) / w:.2f} img/s = {len(big) / w / yard:.3f} x the yardstick")
            if not args.no_what_helps:
                what_helps(args.model, args.device, coco, tmp, args.threads, args.repeat, yard)
        cif, where = cifake_files(max(args.n, 256), tmp)
        bench(det, f"CIFAKE 32 px ({where})", cif, batch_sizes, tmp, args.repeat)
        if coco and not args.no_tiling_table:
            tiling_cost(args.model, args.device, coco, tmp, args.threads, args.repeat)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
