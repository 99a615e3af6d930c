"""Helpers for the watcher / `aidetect up` tests: distinct images made on the fly, an
`aidetect up` child process, and a read-only look at the store."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_image_bytes(seed: int, fmt: str = "PNG", side: int = 32) -> bytes:
    """A small distinct image (random colour blocks + noise): different seed, different bytes."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8).repeat(side // 4, 0).repeat(side // 4, 1)
    noise = rng.integers(-20, 21, size=base.shape)
    arr = np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture(scope="session", name="make_image_bytes")
def make_image_bytes_fixture():
    return make_image_bytes


class UpProcess:
    """`aidetect up` as a child process with its output collected."""

    def __init__(self, env: dict[str, str], args: list[str]) -> None:
        self.env = env
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 120) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aidetect.cli", "up", *self.args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any("main job is running" in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("aidetect up did not start:\n" + self.output)

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """The last 80 lines (for failure messages)."""
        return "\n".join(self.lines[-80:])

    @property
    def text(self) -> str:
        """Everything it printed (a quiet `up` prints a line per scored file)."""
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        assert self.proc
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("aidetect up did not stop:\n" + self.output) from None
        if self._reader:
            self._reader.join(timeout=5)
        return code


@pytest.fixture
def up_env(aidetect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    env["AIDETECT_HOME"] = str(aidetect_home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def run_up(up_env: dict[str, str]) -> Iterator[callable]:
    procs: list[UpProcess] = []

    def _start(*args: str, env: dict[str, str] | None = None) -> UpProcess:
        p = UpProcess(env or up_env, list(args))
        procs.append(p)
        p.start()
        return p

    yield _start
    for p in procs:
        if p.proc and p.proc.poll() is None:
            p.stop(signal.SIGKILL)


class Store:
    """Read-only view of the SQLite store (what a user sees through `aidetect results`)."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def rows(self) -> list[dict]:
        """One dict per image row, with its predictions (oldest first) under
        ``predictions`` and the latest one's ``model_version`` / ``label``."""
        if not self.db.exists():
            return []
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        con.row_factory = sqlite3.Row
        try:
            images = [
                dict(r)
                for r in con.execute(
                    "SELECT id, key, sha256, path, status, error, first_seen FROM images ORDER BY id"
                )
            ]
            preds = con.execute(
                "SELECT image_id, model_version, label, prob_ai, created FROM predictions "
                "ORDER BY created, id"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()
        by_image: dict[int, list[dict]] = {}
        for p in preds:
            by_image.setdefault(p["image_id"], []).append(dict(p))
        for r in images:
            r["predictions"] = by_image.get(r["id"], [])
            last = r["predictions"][-1] if r["predictions"] else {}
            r["model_version"] = last.get("model_version")
            r["label"] = last.get("label")
        return images

    def count_done(self) -> int:
        """Cheap poll: images with status done."""
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
            try:
                return con.execute("SELECT count(*) FROM images WHERE status = 'done'").fetchone()[0]
            finally:
                con.close()
        except sqlite3.OperationalError:
            return 0

    def wait_final(self, keys: set[str], timeout: float) -> list[dict]:
        """Wait until every sha256 in ``keys`` has a done/failed row; return all rows."""
        end = time.monotonic() + timeout
        rows: list[dict] = []
        while time.monotonic() < end:
            rows = self.rows()
            final = {r["sha256"] for r in rows if r["status"] in ("done", "failed")}
            if keys <= final:
                return rows
            time.sleep(0.25)
        missing = keys - {r["sha256"] for r in rows if r["status"] in ("done", "failed")}
        seen = {r["sha256"]: f'{r["status"]} {r["path"]}' for r in rows if r["sha256"] in missing}
        detail = "; ".join(f"{k[:12]}: {seen.get(k, 'no row')}" for k in sorted(missing)[:10])
        raise AssertionError(f"{len(missing)} files have no final row after {timeout} s ({detail})")


@pytest.fixture
def store(aidetect_home: Path) -> Store:
    return Store(aidetect_home / "aidetect.sqlite")
