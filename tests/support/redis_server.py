"""A throwaway ``redis-server`` on a free loopback port, for tests.

Plain helpers plus a pytest fixture. Use from a conftest (tests are not packages)::

    import sys; from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
    from redis_server import RedisServer, free_port, redis_server  # noqa: F401  (fixture)

``redis_server`` yields a started :class:`RedisServer` (``.url``, ``.port``, ``.restart()``,
``.stop()``, ``.start()``) with append-only persistence (fsync always), so a restart keeps
the queued messages; it is stopped (and its files removed with tmp_path) after the test.
Skips the test with a reason when no ``redis-server`` binary is installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None, persist: bool = True, bind: str = "127.0.0.1") -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise FileNotFoundError("redis-server not installed")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.persist = persist
        self.bind = bind  # addresses to listen on, space-separated; 127.0.0.1 must be one
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", *self.bind.split(), "--dir", str(self.workdir),
            "--save", "", "--protected-mode", "no", "--daemonize", "no",
            "--logfile", str(self.workdir / "redis.log"),
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}):\n{log}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (redis flushes its append-only file and exits) and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, downtime: float = 0.0) -> None:
        """Stop and start again on the same port (queued messages kept when persist=True)."""
        self.stop()
        time.sleep(downtime)
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started throwaway redis-server (see module doc); stopped after the test."""
    try:
        server = RedisServer(tmp_path / "redis")
    except FileNotFoundError:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server.start()
    try:
        yield server
    finally:
        server.stop()
