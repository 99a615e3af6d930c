"""Real `aidetect worker` processes for tests (Celery prefork on whatever broker the env
names), and the environment for child processes of a test. Plain helpers; import after
putting tests/support on sys.path (see redis_server.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(x) for x in text.split()]
    except OSError:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d.name))
                except (OSError, IndexError, ValueError):
                    pass
        return out


class WorkerProcess:
    """`aidetect worker -c N` as a real subprocess (Celery prefork)."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int = 2, extra: tuple[str, ...] = ()) -> None:
        self.env = env
        self.log_path = log
        self.concurrency = concurrency
        self.extra = extra  # more `aidetect worker` options
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aidetect.cli", "worker", "-c", str(self.concurrency), "-l", "INFO", *self.extra],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        from aidetect.store.status import live_workers

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.log()}")
            if live_workers():
                return self
            time.sleep(0.3)
        raise AssertionError(f"worker not alive after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def children(self) -> list[int]:
        assert self.proc is not None
        return _children(self.proc.pid)

    def kill_child(self) -> int:
        kids = self.children()
        assert kids, "worker has no pool children"
        os.kill(kids[0], signal.SIGKILL)
        return kids[0]

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for kid in self.children():
                    os.kill(kid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.proc = None


def pipeline_env(home: Path, broker_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    env["AIDETECT_HOME"] = str(home)
    if broker_url:
        env["AIDETECT_BROKER_URL"] = broker_url
    env["PYTHONUNBUFFERED"] = "1"
    return env
