"""Where a worker's batch spends its time (issue 21): N images registered on host A (a
PostgreSQL schema, Redis; staged with ``AIDETECT_BLOBS=redis``), then scored in one process
by :class:`aidetect.worker.scoring.BatchScorer` in batches of 16 under cProfile, on host B
(a network namespace on a veth pair, A's folders hidden, PostgreSQL through a relay, as in
tests/pipeline/test_several_hosts.py) and, for comparison, on A with ``file`` blobs.
Prints each variant's images/s, the summed phase timings of the batches (claim, inputs,
classify, heatmaps, record, release) and the functions with the largest cumulative time.

    python benchmarks/profile_worker_batch.py            # --n 96; needs root + ip for host B
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_blobs  # noqa: E402
from bench_blobs import PG_BASE, base_env, load, make_images  # noqa: E402

# run in the scoring host's process: score the registered ids, print one JSON line
SCORE = r"""
import cProfile, io, json, pstats, sys, time
import torch
torch.set_num_threads(1)
from aidetect.worker.scoring import BatchScorer
ids = json.loads(sys.argv[1]); top = int(sys.argv[2])
sc = BatchScorer(); sc.ensure_model()
phases = {}
prof = cProfile.Profile()
t0 = time.perf_counter()
prof.enable()
for i in range(0, len(ids), 16):
    rep = sc.score(ids[i:i + 16])
    for k, v in rep.phases.items():
        phases[k] = phases.get(k, 0.0) + v
prof.disable()
dt = time.perf_counter() - t0
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
print(json.dumps({"seconds": dt, "n": len(ids), "phases": phases, "profile": out.getvalue()}))
"""


def register(env: dict[str, str], folder: Path) -> list[int]:
    code = (
        "import json,sys; from pathlib import Path; from aidetect.ingest import submit; "
        f"s = submit(sorted(Path({str(folder)!r}).glob('*.jpg')), route='workers'); print(json.dumps(list(s.registration)))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(name: str, res: dict, top_lines: int) -> None:
    n, dt = res["n"], res["seconds"]
    print(f"\n== {name}: {n} images in {dt:.2f} s, {n / dt:.1f} images/s in one process (load {load()})")
    batches = (n + 15) // 16
    for k, v in sorted(res["phases"].items(), key=lambda kv: -kv[1]):
        print(f"   {k:<10} {v:7.3f} s in all, {v / batches * 1000:7.1f} ms per batch of 16")
    lines = [ln for ln in res["profile"].splitlines() if ln.strip()]
    print("\n".join(lines[: top_lines + 8]))


def main() -> None:
    import sqlalchemy as sa
    from netns import Forward, Host, why_not
    from redis_server import RedisServer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--only", choices=("a", "b"), default=None)
    ap.add_argument("--model", type=Path, default=bench_blobs.MODEL, help="the model folder to score with")
    args = ap.parse_args()
    bench_blobs.MODEL = args.model.resolve()
    reason = why_not()
    if reason and args.only != "a":
        raise SystemExit(f"host B: {reason}")
    tmp = Path(tempfile.mkdtemp(prefix="profile_batch_"))
    folder = tmp / "images"
    total = make_images(folder, args.n, args.side)
    print(f"{args.n} JPEGs of {args.side} px ({total / 1e6:.1f} MB); load {load()}", flush=True)
    host = Host().create() if args.only != "a" else None
    bind = f"127.0.0.1 {host.peer_addr}" if host else "127.0.0.1"
    server = RedisServer(tmp / "redis", persist=False, bind=bind).start()
    fwd = Forward(host.peer_addr, ("127.0.0.1", 5432)) if host else None
    admin = sa.create_engine(PG_BASE)
    schemas: list[str] = []
    try:
        addr = host.peer_addr if host else "127.0.0.1"
        redis_url = f"redis://{addr}:{server.port}/0"
        for variant in ("a", "b"):
            if args.only and variant != args.only:
                continue
            schema = f"aidetect_prof_{uuid.uuid4().hex[:8]}"
            schemas.append(schema)
            with admin.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            blobs = "file" if variant == "a" else "redis"
            env_a = base_env(tmp / f"home-{variant}", redis_url, {
                "AIDETECT_DATABASE_URL": f"{PG_BASE}?options=-csearch_path%3D{schema}", "AIDETECT_BLOBS": blobs}, None)
            ids = register(env_a, folder)
            argv = [sys.executable, "-c", SCORE, json.dumps(ids), str(args.top)]
            if variant == "a":
                out = subprocess.run(argv, env=env_a, capture_output=True, text=True)
                name = "worker on A, file blobs, PostgreSQL direct"
            else:
                home_b = tmp / "home-b"
                db_b = f"postgresql+psycopg://postgres@{host.peer_addr}:{fwd.port}/test?options=-csearch_path%3D{schema}"
                env_b = base_env(home_b, redis_url, {"AIDETECT_DATABASE_URL": db_b, "AIDETECT_BLOBS": "redis"}, None)
                out = subprocess.run(host.argv(argv, hide=[tmp], mkdirs=[home_b], hostname="hostb"), env=env_b,
                                     capture_output=True, text=True)
                name = "worker on B, redis blobs, PostgreSQL over the link"
            if out.returncode != 0:
                raise SystemExit(f"{name}: failed:\n{out.stderr[-3000:]}")
            report(name, json.loads(out.stdout.strip().splitlines()[-1]), args.top)
    finally:
        if fwd is not None:
            fwd.close()
        server.stop()
        with admin.begin() as conn:
            for schema in schemas:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
        if host is not None:
            host.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
