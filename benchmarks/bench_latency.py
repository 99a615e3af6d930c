"""Inbox latency and burst throughput of `aidetect up`, embedded broker vs Redis.

For each broker, `aidetect up` runs as a child process in a fresh AIDETECT_HOME (SQLite,
shipped model); Redis is our own `redis-server` on a free loopback port.

- latency: N files written one at a time (each after the previous one has its row); the
  time from the writer's close() to the prediction row's `created` stamp (both wall
  clock on this machine), p50 / p95 / max;
- burst: B distinct files copied into the inbox as fast as possible; time from the first
  write to the last final row, as files/s.

    .venv/bin/python benchmarks/bench_latency.py                # 40 files + burst of 1,000
    .venv/bin/python benchmarks/bench_latency.py --n 20 --burst 200 --brokers redis

Prints a table and the ratio of each p95 to its goal (Redis <= 1 s, embedded <= 2 s);
run it on an otherwise idle machine (the load average is printed with the figures).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

GOALS = {"redis": 1.0, "embedded": 2.0}


def image_bytes(seed: int, side: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


class Up:
    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aidetect.cli", "up", "--workers", str(workers)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        end = time.monotonic() + 180
        while not any("main job is running" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise SystemExit("aidetect up did not start:\n" + "\n".join(self.lines[-30:]))
            time.sleep(0.1)

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Store:
    def __init__(self, db: Path) -> None:
        self.db = db

    def created(self, shas: set[str]) -> dict[str, float]:
        """sha -> UNIX time of the final row (prediction created, or failure update)."""
        if not self.db.exists():
            return {}
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute(
                "SELECT i.sha256, COALESCE(p.created, i.updated) FROM images i "
                "LEFT JOIN predictions p ON p.image_id = i.id WHERE i.status IN ('done','failed')"
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
        finally:
            con.close()
        out = {}
        for sha, stamp in rows:
            if sha in shas:
                out[sha] = _parse(stamp)
        return out

    def wait(self, shas: set[str], timeout: float, poll: float = 0.02) -> dict[str, float]:
        end = time.monotonic() + timeout
        got: dict[str, float] = {}
        while time.monotonic() < end:
            got = self.created(shas)
            if len(got) == len(shas):
                return got
            time.sleep(poll)
        raise SystemExit(f"timed out: {len(shas) - len(got)} of {len(shas)} files have no row")


def _parse(stamp: str) -> float:
    dt = datetime.fromisoformat(stamp)
    if dt.tzinfo is None:  # stored as naive UTC
        from datetime import UTC

        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def write_file(path: Path, data: bytes) -> float:
    with path.open("wb") as fh:
        fh.write(data)
    return time.time()  # just after close()


def run_broker(name: str, args: argparse.Namespace, root: Path) -> dict[str, float]:
    home = root / name
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    env["AIDETECT_HOME"] = str(home)
    redis_proc = None
    if name == "redis":
        redis_proc, url = start_redis(home)
        env["AIDETECT_BROKER_URL"] = url
    up = Up(env, args.workers)
    store = Store(home / "aidetect.sqlite")
    inbox = home / "inbox"
    try:
        seed = 0
        # warm-up: model loaded in every worker process
        warm = {}
        for _ in range(args.workers * 2):
            data = image_bytes(seed := seed + 1)
            write_file(inbox / f"warm_{seed}.png", data)
            warm[hashlib.sha256(data).hexdigest()] = 0.0
        store.wait(set(warm), timeout=180)
        time.sleep(1.0)
        # latency: one file at a time
        lat = []
        for i in range(args.n):
            data = image_bytes(seed := seed + 1)
            sha = hashlib.sha256(data).hexdigest()
            t_close = write_file(inbox / f"lat_{i:03d}.png", data)
            t_row = store.wait({sha}, timeout=60)[sha]
            lat.append(t_row - t_close)
            time.sleep(args.gap)
        # burst: B files as fast as they can be copied in
        staging = root / f"{name}_staging"
        staging.mkdir()
        burst = {}
        for i in range(args.burst):
            data = image_bytes(seed := seed + 1)
            (staging / f"b_{i:04d}.png").write_bytes(data)
            burst[hashlib.sha256(data).hexdigest()] = i
        load_before = os.getloadavg()[0]
        t0 = time.time()
        for f in sorted(staging.iterdir()):
            shutil.copy(f, inbox / f.name)
        t_written = time.time()
        done = store.wait(set(burst), timeout=1800, poll=0.2)
        t_end = max(done.values())
    finally:
        up.stop()
        if redis_proc:
            redis_proc.terminate()
            redis_proc.wait()
    lat.sort()
    return {
        "n": len(lat),
        "p50": statistics.median(lat),
        "p95": lat[max(0, int(round(0.95 * len(lat))) - 1)],
        "max": lat[-1],
        "burst": args.burst,
        "copy_s": t_written - t0,
        "burst_s": t_end - t0,
        "burst_per_s": args.burst / (t_end - t0),
        "load": load_before,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="latency samples per broker")
    ap.add_argument("--gap", type=float, default=0.3, help="pause between latency files (s)")
    ap.add_argument("--burst", type=int, default=1000, help="files in the throughput burst")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--brokers", default="embedded,redis")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average before start {os.getloadavg()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="aidetect-bench-") as tmp:
        for name in args.brokers.split(","):
            print(f"[{name}] running ...", flush=True)
            results[name] = run_broker(name, args, Path(tmp))
    print()
    print(
        f"{'broker':<10}{'n':>4}{'p50 s':>8}{'p95 s':>8}{'max s':>8}{'goal':>7}{'p95/goal':>10}"
        f"{'burst':>7}{'burst s':>9}{'files/s':>9}{'load':>6}"
    )
    for name, r in results.items():
        goal = GOALS.get(name, float("nan"))
        print(
            f"{name:<10}{r['n']:>4}{r['p50']:>8.3f}{r['p95']:>8.3f}{r['max']:>8.3f}{goal:>7.1f}"
            f"{r['p95'] / goal:>10.2f}{r['burst']:>7}{r['burst_s']:>9.1f}{r['burst_per_s']:>9.1f}"
            f"{r['load']:>6.2f}"
        )
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
