"""docker-compose.yml and Dockerfile, checked without a docker engine: the YAML parses, the
services/volumes/health checks are there, and every ``aidetect ...`` command it runs exists
in the CLI with the options it passes."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from aidetect.cli import COMMANDS, cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _argv(value: Any) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _command_lines(argv: list[str]) -> list[list[str]]:
    """The command lines a service runs: argv itself, or each line of an ``sh -c`` script
    (``exec`` dropped; compose's ``$$`` escapes and ``$(...)`` left as one word)."""
    if argv[:2] == ["sh", "-c"]:
        lines = []
        for part in argv[2].replace("&&", ";").split(";"):
            words = shlex.split(part.replace("$$", "$"))
            if words and words[0] == "exec":
                words = words[1:]
            if words:
                lines.append(words)
        return lines
    return [argv]


def _check_aidetect_argv(argv: list[str]) -> None:
    """Resolve ``aidetect <cmd> [<sub>] [options]`` through the real click objects."""
    assert argv[0] == "aidetect"
    assert argv[1] in COMMANDS, f"unknown command {argv[1]!r}"
    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, argv[1])
    assert cmd is not None, f"{argv[1]}: module {COMMANDS[argv[1]][0]} not importable"
    rest = argv[2:]
    if isinstance(cmd, click.Group):
        sub = cmd.get_command(ctx, rest[0])
        assert sub is not None, f"aidetect {argv[1]} has no sub-command {rest[0]!r}"
        cmd, rest = sub, rest[1:]
    known: set[str] = {"--help"}
    for p in cmd.params:
        known.update(p.opts)
        known.update(p.secondary_opts)
    for tok in rest:
        if tok.startswith("-"):
            assert tok.split("=")[0] in known, f"{' '.join(argv)}: no option {tok!r}"
    # and click accepts the whole line (types, counts), without running it
    cmd.make_context(argv[1], list(rest), resilient_parsing=False)


def test_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "worker", "watcher", "trainer"} <= set(services)
    assert services["trainer"].get("profiles") == ["train"]
    gpu = services["worker-gpu"]
    assert gpu.get("profiles") == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    # the scalable worker must not pin a container name or a host port (--scale worker=N)
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    for name in ("redis", "worker", "watcher"):
        assert "healthcheck" in services[name], f"{name} has no health check"
        assert services[name]["healthcheck"]["test"], name


def test_volumes_for_inbox_data_models(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    assert {"data", "models"} <= declared
    for name in ("watcher", "trainer"):
        mounts = compose["services"][name]["volumes"]
        targets = {m.split(":")[1] for m in mounts}
        assert {"/data", "/models"} <= targets, name
        for m in mounts:
            src = m.split(":")[0]
            assert src.startswith((".", "/")) or src in declared, f"{name}: undeclared volume {src}"
        if name != "trainer":
            assert "/inbox" in targets, name
    env = compose["services"]["worker"]["environment"]
    assert env["AIDETECT_BROKER_URL"].startswith("redis://redis:")
    assert env["AIDETECT_HOME"] == "/data" and env["AIDETECT_INBOX"] == "/inbox"
    # watcher and workers share the broker, the store and the blob setting (no volume)
    assert compose["services"]["watcher"]["environment"] == env
    assert env["AIDETECT_BLOBS"] == "redis"


def test_workers_share_no_volume(compose: dict[str, Any]) -> None:
    """Workers run on any host that reaches Redis and PostgreSQL: no shared volume, the bytes,
    heatmaps and model travel through AIDETECT_BLOBS; the CPU worker is replicated."""
    for name in ("worker", "worker-gpu"):
        svc = compose["services"][name]
        assert not svc.get("volumes"), name
        assert svc["environment"]["AIDETECT_BLOBS"] != "file"
    assert compose["services"]["worker"]["deploy"]["replicas"] >= 2


def test_every_aidetect_command_exists(compose: dict[str, Any]) -> None:
    checked = 0
    for name, svc in compose["services"].items():
        lines = []
        if "command" in svc:
            lines.extend(_command_lines(_argv(svc["command"])))
        test = (svc.get("healthcheck") or {}).get("test") or []
        if test and test[0] == "CMD":
            lines.append([str(t) for t in test[1:]])
        for argv in lines:
            if argv and argv[0] == "aidetect":
                _check_aidetect_argv(argv)
                checked += 1
        if svc.get("image", "").startswith("aidetect"):
            assert "command" in svc or name == "aidetect", name
    assert checked >= 4


def test_trainer_publishes_a_new_directory_each_run(compose: dict[str, Any]) -> None:
    argv = _argv(compose["services"]["trainer"]["command"])
    (line,) = [w for w in _command_lines(argv) if w[0] == "aidetect"]
    assert line[:2] == ["aidetect", "train"] and "--publish" in line
    assert line[line.index("--out") + 1] == "$out"
    assert "out=/models/run-$$(date" in argv[2]  # never the active model's folder


def test_worker_health_check_pings_its_own_node(compose: dict[str, Any]) -> None:
    for name in ("worker", "worker-gpu"):
        svc = compose["services"][name]
        argv = _argv(svc["command"])
        node = argv[argv.index("-n") + 1]
        assert node.endswith("@%h")  # celery expands %h to the container's hostname
        test = svc["healthcheck"]["test"][1]
        assert f"-d {node.replace('%h', '$$HOSTNAME')}" in test, test


def test_watcher_service_only_watches(compose: dict[str, Any]) -> None:
    argv = _argv(compose["services"]["watcher"]["command"])
    assert argv[:2] == ["aidetect", "up"] and "--no-workers" in argv


def test_dockerfile_runs_the_main_job() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "constraints.txt" in text
    cmd = next(line for line in text.splitlines() if line.startswith("CMD"))
    assert '"aidetect", "up"' in cmd
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignore and ".git" in ignore
