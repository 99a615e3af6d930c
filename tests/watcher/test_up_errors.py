"""`aidetect up` user errors: one line, exit code 2, nothing started."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aidetect.cli import main


def test_up_with_redis_down_says_so_in_one_line(
    aidetect_home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIDETECT_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    assert main(["up", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broker not reachable" in err[0] and "Traceback" not in err[0]


def test_up_help_lists_the_options(capsys) -> None:
    assert main(["up", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--inbox", "--workers", "--no-workers", "--polling", "--move-scored", "--heartbeat"):
        assert opt in out
