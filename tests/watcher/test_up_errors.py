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


def test_scan_with_the_broker_down_leaves_nothing_queued(
    aidetect_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, make_image_bytes
) -> None:
    from aidetect.store.status import status_counts

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIDETECT_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    (tmp_path / "in").mkdir()
    for i in range(4):
        (tmp_path / "in" / f"p{i}.png").write_bytes(make_image_bytes(i))
    assert main(["scan", str(tmp_path / "in")]) == 2
    assert "broker not reachable" in capsys.readouterr().err
    assert status_counts() == {}  # checked before anything was registered: no stranded rows


def test_up_names_the_model_it_uses_when_aidetect_model_is_not_it(
    aidetect_home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert main(["models", "list"]) == 0  # the shipped model is registered and active
    capsys.readouterr()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIDETECT_MODEL", "/nope")
    monkeypatch.setenv("AIDETECT_BROKER_URL", f"redis://127.0.0.1:{port}/0")  # stops before starting
    assert main(["up", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "AIDETECT_MODEL=/nope does not exist" in err and "registered active model" in err
