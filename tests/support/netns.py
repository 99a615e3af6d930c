"""Real hosts for tests: a network namespace joined to this one by a veth pair, commands run
in it (optionally in their own mount namespace with folders hidden under a tmpfs and their own
host name), and a TCP forwarder that makes a loopback-only service (the machine's PostgreSQL)
reachable at this host's veth address. Needs root and iproute2's ``ip``; :func:`why_not`
says why a test must skip."""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path


def why_not() -> str | None:
    """None when network namespaces can be made here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (ip netns, veth, unshare --mount)"
    for tool in ("ip", "unshare", "mount", "hostname"):
        if shutil.which(tool) is None:
            return f"needs the `{tool}` command"
    probe = f"aidprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip() or made.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Host:
    """A network namespace ``name`` with address ``addr`` on a veth pair whose other end
    (``peer_addr``) stays in this namespace."""

    def __init__(self, subnet: int | None = None) -> None:
        tag = secrets.token_hex(3)
        self.name = f"aid{tag}"
        self.veth_here, self.veth_there = f"va{tag}", f"vb{tag}"
        n = subnet if subnet is not None else 16 + secrets.randbelow(200)
        self.peer_addr, self.addr = f"10.231.{n}.1", f"10.231.{n}.2"

    def create(self) -> Host:
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.veth_here, "type", "veth", "peer", "name", self.veth_there)
            _ip("link", "set", self.veth_there, "netns", self.name)
            _ip("addr", "add", f"{self.peer_addr}/30", "dev", self.veth_here)
            _ip("link", "set", self.veth_here, "up")
            _ip("-n", self.name, "addr", "add", f"{self.addr}/30", "dev", self.veth_there)
            _ip("-n", self.name, "link", "set", self.veth_there, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth_here], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def argv(self, argv: Sequence[str], hide: Sequence[Path] = (), hostname: str | None = None,
             mkdirs: Sequence[Path] = ()) -> list[str]:
        """``argv`` run in this namespace, in its own mount (and UTS) namespace where each of
        ``hide`` is an empty tmpfs, ``mkdirs`` are then created, the host name is ``hostname``."""
        script = []
        for folder in hide:
            script.append(f"mount -t tmpfs -o size=512m tmpfs {shlex.quote(str(folder))}")
        for folder in mkdirs:
            script.append(f"mkdir -p {shlex.quote(str(folder))}")
        if hostname:
            script.append(f"hostname {shlex.quote(hostname)}")
        script.append("exec " + " ".join(shlex.quote(a) for a in argv))
        return ["ip", "netns", "exec", self.name, "unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", "; ".join(script)]


class Forward:
    """Accepts on ``host:0`` (``.port``) and relays every connection to ``target``: with
    ``socat`` when it is installed (a C relay, a process per connection), else in threads of
    this process (which then shares its CPU and GIL with the relay). Both sides without
    Nagle's delay (TCP_NODELAY), as libpq and PostgreSQL set it: a relay that waits for an
    ACK before sending a statement's last segment adds a 40 ms delayed-ACK stall per
    statement of more than one segment (a heatmap put), which no real link has."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.proc: subprocess.Popen[bytes] | None = None
        self.server = socket.create_server((host, 0))
        self.port = int(self.server.getsockname()[1])
        self._stop = False
        if shutil.which("socat"):
            self.server.close()
            self.proc = subprocess.Popen(
                ["socat", f"TCP-LISTEN:{self.port},bind={host},fork,reuseaddr,nodelay",
                 f"TCP:{target[0]}:{target[1]},nodelay"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for _ in range(100):
                try:
                    socket.create_connection((host, self.port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            return
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop = True
        self.server.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
