"""Workers on other hosts (issue 21): what the blob layer costs, measured in one run.

1. One host, ``AIDETECT_BLOBS=file`` (the default) against the code before the blob layer
   (``--before`` commit, extracted with ``git archive``): the same ``aidetect scan DIR`` of N
   JPEGs, workers already up (``aidetect worker -c 2``, Redis broker, SQLite), fresh store per
   run, alternating before/after in pairs so that the machine's drift cancels. Goal: the
   median after/before images/s ratio >= 0.95.
2. Two hosts (root + ``ip``; skipped otherwise): the worker in a network namespace behind a
   veth pair (as in tests/pipeline/test_several_hosts.py, A's folders hidden), Redis and
   PostgreSQL on A. Blob throughput over the link (a 64 MiB blob put and read from host B),
   and the scan with ``AIDETECT_BLOBS=redis`` (images/s, MB/s of image bytes staged) beside
   the same scan with the worker on A and ``file`` blobs on the same PostgreSQL.

    python benchmarks/bench_blobs.py                  # --n 300 --pairs 3
    python benchmarks/bench_blobs.py --n 200 --pairs 2 --skip-hosts

Prints the load average: the machine may be shared, which moves every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "support"))
BEFORE = "28ddc39"  # the last commit before the blob layer
PG_BASE = os.environ.get("AIDETECT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MODEL = REPO / "src" / "aidetect" / "shipped_models" / "default"  # --model changes it


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def make_images(folder: Path, n: int, side: int) -> int:
    from images import image_bytes

    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        data = image_bytes(70_000 + i, side=side, fmt="JPEG")
        (folder / f"img_{i:05d}.jpg").write_bytes(data)
        total += len(data)
    return total


def extract_before(rev: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "before.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "src", ":(exclude)src/aidetect/shipped_models"],
                       stdout=fh, check=True)  # both variants score with this checkout's shipped model
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    (dest / "src" / "aidetect" / "shipped_models").symlink_to(REPO / "src" / "aidetect" / "shipped_models")
    return dest / "src"


def base_env(home: Path, broker: str, extra: dict[str, str], pythonpath: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    env.update(AIDETECT_HOME=str(home), AIDETECT_BROKER_URL=broker, PYTHONUNBUFFERED="1",
               AIDETECT_MODEL=str(MODEL), **extra)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def start_worker(argv_prefix: list[str], env: dict[str, str], log: Path, ready: Path | None,
                 wait_beat: callable | None = None) -> subprocess.Popen[bytes]:  # type: ignore[valid-type]
    out = log.open("ab")
    argv = argv_prefix or [sys.executable, "-m", "aidetect.cli", "worker", "-c", "2", "-l", "WARNING"]
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 180
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited: {log.read_text()[-2000:]}")
        if ready is not None and (ready / f"worker-{proc.pid}.ready").exists():
            break
        if wait_beat is not None and wait_beat():
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"worker not ready: {log.read_text()[-2000:]}")
    time.sleep(1.0)  # the second pool child
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def timed_scan(folder: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "aidetect.cli", "scan", str(folder), "--no-fallback"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"scan failed ({res.returncode}): {res.stderr[-2000:]}")
    return dt


# -- 1: one host, file blobs vs before -----------------------------------------------------
def one_host(tmp: Path, folder: Path, n: int, pairs: int, before_rev: str) -> None:
    from redis_server import RedisServer

    before_src = extract_before(before_rev, tmp / "before")
    server = RedisServer(tmp / "redis1", persist=False).start()
    times: dict[str, list[float]] = {"before": [], "file": []}
    try:
        for i in range(pairs):
            order = ("before", "file") if i % 2 == 0 else ("file", "before")
            for variant in order:
                home = tmp / f"home-{variant}-{i}"
                server_flush(server)
                env = base_env(home, server.url, {"AIDETECT_BLOBS": "file"} if variant == "file" else {},
                               before_src if variant == "before" else None)
                w = start_worker([], env, tmp / f"w-{variant}-{i}.log", home / "run")
                try:
                    dt = timed_scan(folder, env)
                finally:
                    stop(w)
                times[variant].append(dt)
                print(f"  pair {i + 1} {variant:<6}: {dt:6.2f} s, {n / dt:6.1f} images/s  (load {load()})", flush=True)
    finally:
        server.stop()
    ratios = [b / a for a, b in zip(times["file"], times["before"], strict=True)]
    mb, mf = statistics.median(times["before"]), statistics.median(times["file"])
    print(f"one host, {n} images, {pairs} pairs: before {n / mb:.1f} images/s (median), "
          f"AIDETECT_BLOBS=file {n / mf:.1f} images/s; ratio file/before per pair "
          f"{', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f} (goal >= 0.95)")


def server_flush(server) -> None:  # noqa: ANN001
    import redis

    redis.Redis(host="127.0.0.1", port=server.port).flushall()


# -- 2: two hosts ----------------------------------------------------------------------------
def two_hosts(tmp: Path, folder: Path, n: int, total_bytes: int) -> None:
    import sqlalchemy as sa
    from netns import Forward, Host, why_not
    from redis_server import RedisServer

    reason = why_not()
    if reason:
        print(f"two hosts: skipped ({reason})")
        return
    host = Host().create()
    server = RedisServer(tmp / "redis2", persist=False, bind=f"127.0.0.1 {host.peer_addr}").start()
    fwd = Forward(host.peer_addr, ("127.0.0.1", 5432))
    admin = sa.create_engine(PG_BASE)
    schemas: list[str] = []
    try:
        redis_url = f"redis://{host.peer_addr}:{server.port}/0"
        # blob throughput over the link, from host B
        probe = (
            "import os,time,io; from aidetect.blobs.redisblobs import RedisBlobs; "
            f"b=RedisBlobs('{redis_url}'); d=os.urandom(64<<20); k='img/'+'e'*64; b.delete([k]); "
            "t=time.perf_counter(); b.put(k, io.BytesIO(d), 600); p=time.perf_counter()-t; "
            "t=time.perf_counter(); x=b.read(k); g=time.perf_counter()-t; assert x==d; b.delete([k]); "
            "print(f'{64/p:.1f} {64/g:.1f}')"
        )
        env_b0 = base_env(tmp / "probe-home", redis_url, {}, None)
        out = subprocess.run(host.argv([sys.executable, "-c", probe]), env=env_b0, capture_output=True, text=True)
        if out.returncode == 0:
            put_mb, get_mb = out.stdout.split()
            print(f"two hosts: a 64 MiB blob from B to A's Redis over the veth link: put {put_mb} MiB/s, "
                  f"read {get_mb} MiB/s")
        else:
            print(f"two hosts: link probe failed: {out.stderr[-500:]}")

        results = {}
        for variant in ("file, worker on A", "redis, worker on B"):
            schema = f"aidetect_bench_{uuid.uuid4().hex[:8]}"
            schemas.append(schema)
            with admin.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            home = tmp / f"home2-{len(schemas)}"
            db_a = f"{PG_BASE}?options=-csearch_path%3D{schema}"
            remote = variant.startswith("redis")
            extra = {"AIDETECT_DATABASE_URL": db_a, "AIDETECT_BLOBS": "redis" if remote else "file"}
            env_a = base_env(home, redis_url, extra, None)
            server_flush(server)
            subprocess.run([sys.executable, "-m", "aidetect.cli", "models", "list"], env=env_a,
                           capture_output=True, check=True)  # the schema, the active model
            if remote:
                home_b = tmp / "b-home"
                db_b = f"postgresql+psycopg://postgres@{host.peer_addr}:{fwd.port}/test?options=-csearch_path%3D{schema}"
                env_b = base_env(home_b, redis_url, {"AIDETECT_DATABASE_URL": db_b, "AIDETECT_BLOBS": "redis"}, None)
                argv = host.argv([sys.executable, "-m", "aidetect.cli", "worker", "-c", "2", "-l", "WARNING"],
                                 hide=[tmp], mkdirs=[home_b], hostname="hostb")
                log = tmp.parent / f"{tmp.name}-worker-b.log"
                w = start_worker(argv, env_b, log, None, wait_beat=lambda s=schema: beats(admin, s) > 0)
            else:
                w = start_worker([], env_a, tmp / "w2a.log", home / "run")
            try:
                dt = timed_scan(folder, env_a)
            finally:
                stop(w)
            results[variant] = dt
            with admin.connect() as conn:
                per = conn.exec_driver_sql(
                    f"SELECT avg((timings->>'total')::float), avg((timings->>'batch_s')::float), "
                    f"avg((timings->>'write')::float) FROM \"{schema}\".predictions").one()
            print(f"    per image in the worker: {per[0] * 1000:.1f} ms scoring (write {per[2] * 1000:.1f} ms); "
                  f"per batch of 16: {per[1]:.2f} s in classify")
            print(f"  {variant:<20}: {dt:6.2f} s, {n / dt:6.1f} images/s, {total_bytes / dt / 1e6:5.2f} MB/s of images"
                  f"{' staged' if remote else ''}  (load {load()})", flush=True)
        a, b = results["file, worker on A"], results["redis, worker on B"]
        print(f"two hosts, {n} images ({total_bytes / 1e6:.1f} MB), PostgreSQL store: worker on B over the link "
              f"{n / b:.1f} images/s and {total_bytes / b / 1e6:.2f} MB/s staged, {a / b:.2f} of the same scan "
              f"with the worker on A and file blobs ({n / a:.1f} images/s)")
    finally:
        fwd.close()
        server.stop()
        with admin.begin() as conn:
            for schema in schemas:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
        host.remove()


def beats(admin, schema: str) -> int:  # noqa: ANN001
    with admin.connect() as conn:
        try:
            return int(conn.exec_driver_sql(
                f'SELECT count(*) FROM "{schema}".worker_beats WHERE last_seen > now() - interval \'5 seconds\'').scalar())
        except Exception:  # noqa: BLE001 - not created yet
            return 0


def main() -> None:
    global MODEL
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--before", default=BEFORE)
    ap.add_argument("--skip-one-host", action="store_true")
    ap.add_argument("--skip-hosts", action="store_true")
    ap.add_argument("--model", type=Path, default=MODEL, help="the model folder every variant scores with")
    args = ap.parse_args()
    MODEL = args.model.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench_blobs_"))
    try:
        folder = tmp / "images"
        total = make_images(folder, args.n, args.side)
        print(f"{args.n} JPEGs of {args.side} px ({total / 1e6:.1f} MB); load {load()}; cores {os.cpu_count()}",
              flush=True)
        if not args.skip_one_host:
            one_host(tmp, folder, args.n, args.pairs, args.before)
        if not args.skip_hosts:
            two_hosts(tmp, folder, args.n, total)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
