"""Throughput of ``aidetect scan`` (Celery workers + store + heatmaps) against inference alone.

Over N images (half 512 px JPEGs from ../shared/data/coco_sd, half 32 px CIFAKE images from
the test parquet; generated stand-ins without the shared data), in the same run:

  inference-only      `cores` processes x 1 torch thread each (the workers' parallelism), pulling
                      batches from one shared queue and running Detector.classify(explain) +
                      heatmap files, model loaded before the clock; timed before and after every scan
  scan / redis        `aidetect worker -c cores` on a throwaway redis-server + `aidetect scan DIR`
  scan / embedded     the same on the embedded filesystem broker (no server)

Scan figures are wall time of the whole `aidetect scan` command (hashing, registration,
queueing, scoring with heatmaps, DB writes, polling) with the workers already up and their
model loaded; each is printed as a ratio of the mean of the inference-only runs just before
and just after it (goal: Redis >= 0.80, embedded >= 0.60). Inference with explain but no
heatmap files is printed too.

    python benchmarks/bench_scan.py                       # 2,000 images, both brokers
    python benchmarks/bench_scan.py --n 400 --brokers embedded --batch-size 32

Prints the load average: the machine may be shared, which moves every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AIDETECT_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "support"))


# -- data -------------------------------------------------------------------------------------
def make_images(folder: Path, n: int) -> dict[str, int]:
    """n/2 512 px JPEGs + n/2 32 px images with distinct bytes, interleaved by name."""
    from images import image_bytes  # tests/support
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    n_big, n_small = n // 2, n - n // 2
    coco = sorted((SHARED / "coco_sd" / "real").glob("*.jpg")) + sorted((SHARED / "coco_sd" / "ai").glob("*.jpg"))
    for i in range(n_big):
        dest = folder / f"img_{2 * i:05d}_512.jpg"
        if coco and i < len(coco):
            shutil.copyfile(coco[i], dest)
        elif coco:  # more than the set holds: mirrored re-encodes (distinct bytes)
            with Image.open(coco[i % len(coco)]) as im:
                buf = io.BytesIO()
                ImageOps.mirror(im.convert("RGB")).save(buf, "JPEG", quality=95 - (i // len(coco)) % 5)
                dest.write_bytes(buf.getvalue())
        else:
            dest.write_bytes(image_bytes(1_000_000 + i, side=512, fmt="JPEG"))
    small: list[bytes] = []
    parquet = SHARED / "cifake" / "test.parquet"
    if parquet.is_file():
        import pyarrow.parquet as pq

        small = [r["image"]["bytes"] for r in pq.read_table(parquet).slice(0, n_small).to_pylist()]
    for i in range(n_small):
        data = small[i] if i < len(small) else image_bytes(2_000_000 + i, side=32, fmt="JPEG")
        (folder / f"img_{2 * i + 1:05d}_32.jpg").write_bytes(data)
    return {"512px": n_big, "32px": n_small, "coco": bool(coco), "cifake": bool(small)}


# -- inference only ---------------------------------------------------------------------------
def _infer_worker(files: list[str], threads: int, out: str, files_on: bool, start, jobs, q) -> None:  # noqa: ANN001
    import torch

    torch.set_num_threads(threads)
    from aidetect.inference import Detector

    det = Detector()
    det.classify(files[:2], explain=True)  # warm-up
    start.wait()
    t0 = time.perf_counter()
    while True:  # pull batches from a shared queue, as pool children pull tasks
        job = jobs.get()
        if job is None:
            break
        a, b = job
        chunk = files[a:b]
        if files_on:
            det.classify(chunk, heatmap_dir=out)
        else:
            det.classify(chunk, explain=True)
    q.put(time.perf_counter() - t0)


def inference_only(files: list[Path], procs: int, threads: int, batch: int, files_on: bool, tmp: Path) -> float:
    """images/s of Detector.classify(explain) (+ heatmap files) in `procs` spawned processes
    sharing one queue of batches (no broker, no database)."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(procs + 1)
    q = ctx.Queue()
    jobs = ctx.Queue()
    for a in range(0, len(files), batch):
        jobs.put((a, min(len(files), a + batch)))
    for _ in range(procs):
        jobs.put(None)
    out = Path(tempfile.mkdtemp(dir=tmp))
    names = [str(f) for f in files]
    ps = [ctx.Process(target=_infer_worker, args=(names, threads, str(out), files_on, start, jobs, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    for _ in ps:
        q.get()
    wall = time.perf_counter() - t0
    for p in ps:
        p.join()
    shutil.rmtree(out, ignore_errors=True)
    return len(files) / wall


# -- scan through workers ---------------------------------------------------------------------
def scan_once(folder: Path, n: int, broker: str, concurrency: int, batch: int, tmp: Path) -> dict:
    from redis_server import RedisServer  # tests/support
    from workers import WorkerProcess, pipeline_env

    home = tmp / f"home-{broker}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    server = None
    url = None
    if broker == "redis":
        server = RedisServer(tmp / "redis", persist=False).start()
        url = server.url
    env = pipeline_env(home, url)
    os.environ["AIDETECT_HOME"] = str(home)  # this process reads the store (live workers)
    os.environ.pop("AIDETECT_BROKER_URL", None)
    if url:
        os.environ["AIDETECT_BROKER_URL"] = url
    from aidetect.store.engine import reset_engines

    reset_engines()
    worker = WorkerProcess(env, tmp / f"worker-{broker}.log", concurrency)
    try:
        worker.start(timeout=300)
        time.sleep(2.0)  # let every pool child finish loading
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "aidetect.cli", "scan", str(folder), "--no-fallback", "--json",
             "--batch-size", str(batch)],
            env=env, capture_output=True, text=True,
        )
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
        rows = json.loads(proc.stdout)
    finally:
        worker.stop()
        if server is not None:
            server.stop()
    done = sum(r["status"] == "done" for r in rows)
    overlays = sum(1 for r in rows if r.get("overlay_path") and Path(r["overlay_path"]).is_file())
    return {"seconds": dt, "images_per_s": n / dt, "done": done, "rows": len(rows), "overlays": overlays}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch-size", type=int, default=None, help="images per task and per classify call")
    ap.add_argument("--brokers", default="redis,embedded")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--single-process-ref", action="store_true",
                    help="also time inference in one process with torch threads = cores")
    args = ap.parse_args()
    from aidetect.config import get_settings

    batch = args.batch_size or get_settings().task_batch_size
    cores = os.cpu_count() or 1
    print(f"load average before: {os.getloadavg()}; cores {cores}; n {args.n}; batch {batch}; concurrency {args.concurrency}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_scan_"))
    try:
        folder = tmp / "images"
        src = make_images(folder, args.n)
        files = sorted(folder.iterdir())
        print(f"images: {src}")
        res: dict[str, float | dict] = {}
        # The machine may be shared: inference-only is measured right before and right after
        # each scan (brackets shared between neighbours), and each scan is compared with the
        # mean of its two brackets.
        brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
        if args.single_process_ref:
            res["infer_1proc_files"] = inference_only(files, 1, cores, batch, True, tmp)
            print(f"inference-only, 1 process x {cores} threads, explain + heatmap files: {res['infer_1proc_files']:.1f} images/s")
        res["infer_nproc_nofiles"] = inference_only(files, args.concurrency, 1, batch, False, tmp)
        print(f"inference-only, {args.concurrency} processes x 1 thread, explain, no files: {res['infer_nproc_nofiles']:.1f} images/s")
        brackets = [inference_only(files, args.concurrency, 1, batch, True, tmp)]
        print(f"inference-only, {args.concurrency} processes x 1 thread, explain + heatmap files: {brackets[-1]:.1f} images/s")
        goals = {"redis": 0.80, "embedded": 0.60}
        for broker in brokers:
            r = scan_once(folder, args.n, broker, args.concurrency, batch, tmp)
            brackets.append(inference_only(files, args.concurrency, 1, batch, True, tmp))
            print(f"inference-only, {args.concurrency} processes x 1 thread, explain + heatmap files: {brackets[-1]:.1f} images/s")
            ref = (brackets[-2] + brackets[-1]) / 2
            r["inference_ref"] = ref
            r["ratio"] = ratio = r["images_per_s"] / ref
            res[f"scan_{broker}"] = r
            print(
                f"scan / {broker}: {r['images_per_s']:.1f} images/s ({r['seconds']:.1f}s, {r['done']}/{r['rows']} done, "
                f"{r['overlays']} overlays) = {ratio:.2f} of inference-only ({ref:.1f} images/s, mean of the runs "
                f"before and after; goal >= {goals.get(broker, 0):.2f}: {'met' if ratio >= goals.get(broker, 0) else 'NOT met'})"
            )
        res["inference_brackets"] = brackets
        print(f"load average after: {os.getloadavg()}")
        if args.json_out:
            args.json_out.write_text(json.dumps(res, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
