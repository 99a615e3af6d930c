"""The CLI's contract (issue "Hardening", CLI part): every error a user can cause is one
line and exit code 2, never a traceback; the exit codes mean the same for every command
(aidetect.errors); ``--help`` and usage errors never import torch; ``results`` lists the
newest first and fits 80 columns; what ``scan`` and ``models`` print is true."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from images import bomb_png, write_images
from result_schema import assert_results

from aidetect import errors
from aidetect.cli import COMMANDS, main
from aidetect.config import SHIPPED_MODEL_DIR, Settings, get_settings, model_setting_note

MINI = Path(__file__).resolve().parents[1] / "data" / "cifake_mini"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_error_line(err: str) -> str:
    """The single line an error prints (no traceback, nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aidetect: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDETECT_")}
    return {**env, "AIDETECT_HOME": str(home), **extra}


# -- exit codes, defined once ----------------------------------------------------------------
def test_exit_codes_are_defined_once() -> None:
    assert (errors.EXIT_OK, errors.EXIT_SOME_FAILED, errors.EXIT_USAGE) == (0, 1, 2)


# -- --help and usage errors: instant, no torch ----------------------------------------------
HELP_CASES = [[name, "--help"] for name in COMMANDS] + [
    ["models", "list", "--help"], ["models", "register", "--help"], ["models", "promote", "--help"], ["--help"],
]
USAGE_CASES = [
    (["predict"], "Missing argument"),
    (["predict", "--device", "bogus", "x.jpg"], "not a torch device"),
    (["worker", "-c", "0"], "0 is not in the range x>=1"),
    (["worker", "--concurrency", "-3"], "-3 is not in the range x>=1"),
    (["scan"], "missing FOLDER"),
    (["results", "--limit", "-1"], "-1 is not in the range"),
    (["nosuchcommand"], "No such command"),
]


def _without_torch(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """``python -X importtime -m aidetect.cli ARGS``; asserts torch was not imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aidetect.cli", *args],
        env=_clean_env(home), capture_output=True, text=True, timeout=120,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported and "pytorch_grad_cam" not in imported, f"{args} imported torch"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("args", HELP_CASES, ids=" ".join)
def test_help_works_without_torch_even_with_a_bad_config_file(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("max_tiles = [\n")  # malformed TOML
    proc = _without_torch(args, tmp_path)
    assert proc.returncode == 0 and "Usage:" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize(("args", "message"), USAGE_CASES, ids=[" ".join(a) for a, _ in USAGE_CASES])
def test_usage_errors_exit_2_without_torch(args: list[str], message: str, tmp_path: Path) -> None:
    proc = _without_torch(args, tmp_path)
    assert proc.returncode == errors.EXIT_USAGE, proc.stderr[-2000:]
    assert message in proc.stderr


def test_cam_methods_offered_without_torch_are_the_implemented_ones() -> None:
    from aidetect.config import CAM_METHODS
    from aidetect.explain import cam

    assert tuple(cam._LIBRARY) == CAM_METHODS  # every name offered has a class, and no other
    assert [cam.resolve_method(m) for m in CAM_METHODS] == list(CAM_METHODS)


# -- settings and services: one line, exit 2 -------------------------------------------------
@pytest.mark.parametrize(
    ("var", "value", "expects"),
    [
        ("AIDETECT_MAX_TILES", "abc", "expected an integer"),
        ("AIDETECT_BATCH_SIZE", "3.5", "expected an integer"),
        ("AIDETECT_OVERLAY_ALPHA", "half", "expected a number"),
        ("AIDETECT_WATCH_POLLING", "maybe", "expected a boolean"),
    ],
)
def test_bad_setting_is_one_line_naming_it(var, value, expects, aidetect_home, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv(var, value)
    for args in (["results"], ["scan", str(MINI), "--inline"], ["predict", str(MINI / "ai" / "ai_000.jpg")],
                 ["worker"], ["models", "list"]):
        code, _, err = _run(args, capsys)
        assert code == errors.EXIT_USAGE, (args, err)
        line = _one_error_line(err)
        assert f"{var}={value!r}" in line and expects in line, line


def test_unknown_precision_is_one_line(aidetect_home, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv("AIDETECT_PRECISION", "int4")
    for args in (["predict", str(MINI / "ai" / "ai_000.jpg")], ["evaluate", "--data", str(MINI), "--no-robustness"]):
        code, _, err = _run(args, capsys)
        assert code == errors.EXIT_USAGE, (args, err)
        line = _one_error_line(err)
        assert "AIDETECT_PRECISION='int4'" in line and "choose auto, fp32, bf16, fp16" in line, line


def test_settings_are_parsed_strictly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIDETECT_HOME", str(tmp_path))
    for raw, want in (("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False), ("false", False)):
        monkeypatch.setenv("AIDETECT_WATCH_POLLING", raw)
        assert get_settings().watch_polling is want
    monkeypatch.delenv("AIDETECT_WATCH_POLLING")
    monkeypatch.setenv("AIDETECT_MAX_TILES", " 8 ")
    monkeypatch.setenv("AIDETECT_WATCH_DEBOUNCE_S", "1")
    s = get_settings()
    assert s.max_tiles == 8 and s.watch_debounce_s == 1.0
    monkeypatch.delenv("AIDETECT_MAX_TILES")
    (tmp_path / "config.toml").write_text("max_tiles = 4\nwatch_polling = true\noverlay_alpha = 1\n")
    s = get_settings()
    assert (s.max_tiles, s.watch_polling, s.overlay_alpha) == (4, True, 1.0)
    (tmp_path / "config.toml").write_text("max_tiles = true\n")
    with pytest.raises(errors.ConfigError, match=r"config\.toml: max_tiles = True: expected an integer"):
        get_settings()


def test_malformed_config_file(aidetect_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (aidetect_home / "config.toml").write_text('broker_url = "redis://\n')
    assert main(["--help"]) == 0 and "Commands" in capsys.readouterr().out
    code, _, err = _run(["results"], capsys)
    assert code == errors.EXIT_USAGE
    assert "config.toml: not valid TOML" in _one_error_line(err)
    (aidetect_home / "config.toml").write_text('max_tiles = "many"\n')
    code, _, err = _run(["results"], capsys)
    assert code == errors.EXIT_USAGE and "max_tiles = 'many': expected an integer" in _one_error_line(err)


@pytest.mark.parametrize("url", ["bogus://x", "bogus", "mysql+nosuchdriver://u:secret@h/db"])
def test_bad_database_url(url: str, aidetect_home, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv("AIDETECT_DATABASE_URL", url)
    for args in (["results"], ["models", "list"], ["scan", str(MINI), "--inline"]):
        code, _, err = _run(args, capsys)
        assert code == errors.EXIT_USAGE, (args, err)
        line = _one_error_line(err)
        assert "AIDETECT_DATABASE_URL=" in line and "secret" not in line, line


def test_data_folder_that_cannot_be_created(tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    homes = [blocker / "home"] + ([Path("/proc/nope")] if Path("/proc/self").is_dir() else [])
    for home in homes:
        monkeypatch.setenv("AIDETECT_HOME", str(home))
        for args in (["results"], ["scan", str(MINI), "--inline"], ["worker"], ["models", "list"]):
            code, _, err = _run(args, capsys)
            assert code == errors.EXIT_USAGE, (args, err)
            assert str(home) in _one_error_line(err)


def test_predict_errors_before_scoring(tmp_path, aidetect_home, capsys) -> None:  # noqa: ANN001
    img = str(MINI / "ai" / "ai_000.jpg")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, out, err = _run(["predict", "--heatmap", str(blocker / "heat"), img], capsys)
    assert code == errors.EXIT_USAGE and not out
    assert "--heatmap" in _one_error_line(err) and "cannot create" in err
    if Path("/proc/self").is_dir():
        code, out, err = _run(["predict", "--heatmap", "/proc/x", img], capsys)
        assert code == errors.EXIT_USAGE and not out and "/proc/x" in _one_error_line(err)
    code, out, err = _run(["predict", "--device", "bogus", img], capsys)
    assert code == errors.EXIT_USAGE and "not a torch device" in _one_error_line(err)


def test_predict_device_this_machine_lacks(aidetect_home, capsys) -> None:  # noqa: ANN001
    import torch

    img = str(MINI / "ai" / "ai_000.jpg")
    devices = ["cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
    if not torch.backends.mps.is_available():
        devices.append("mps")
    for device in devices:
        code, out, err = _run(["predict", "--model", str(SHIPPED_MODEL_DIR), "--device", device, img], capsys)
        assert code == errors.EXIT_USAGE and not out, err
        assert device in _one_error_line(err)


# -- exit codes per command -------------------------------------------------------------------
def test_predict_exit_codes(tmp_path, aidetect_home, capsys) -> None:  # noqa: ANN001
    good = str(MINI / "ai" / "ai_000.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert _run(["predict", "--json", good], capsys)[0] == errors.EXIT_OK
    code, out, _ = _run(["predict", "--json", good, str(bad)], capsys)
    assert code == errors.EXIT_SOME_FAILED
    rows = json.loads(out)
    assert rows[1]["error"] == "not an image Pillow can read"  # the reason, not the path again
    assert _run(["predict", "--model", str(tmp_path / "nope"), good], capsys)[0] == errors.EXIT_USAGE


def test_scan_exit_codes_and_rate(tmp_path, aidetect_home, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "in"
    write_images(folder, 3)
    code, _, err = _run(["scan", str(folder), "--inline"], capsys)
    assert code == errors.EXIT_OK, err
    assert "3 scored in this run" in err and "images/s" in err
    (folder / "bad.jpg").write_text("not an image")
    (folder / "bomb.png").write_bytes(bomb_png())
    code, out, err = _run(["scan", str(folder), "--inline", "--json"], capsys)
    assert code == errors.EXIT_SOME_FAILED, err
    assert "images/s" not in err  # nothing was scored in this run: no rate
    rows = {Path(r["path"]).name: r for r in assert_results(json.loads(out))}
    assert rows["bad.jpg"]["error"] == "not an image Pillow can read"
    bomb = rows["bomb.png"]["error"]
    assert re.fullmatch(r"refused: 10000000000 pixels is over the decompression bomb limit of \d+", bomb), bomb
    for r in rows.values():
        assert r["path"] not in (r["error"] or "")
    assert _run(["scan", str(folder), "--inline", "--json"], capsys)[0] == errors.EXIT_SOME_FAILED  # still failed


def test_other_commands_exit_codes(tmp_path, aidetect_home, monkeypatch, capsys) -> None:  # noqa: ANN001
    assert _run(["results"], capsys)[0] == errors.EXIT_OK
    assert _run(["results", "--since", "yesterday"], capsys)[0] == errors.EXIT_USAGE
    assert _run(["models", "list"], capsys)[0] == errors.EXIT_OK
    assert _run(["models", "promote", "no-such-version"], capsys)[0] == errors.EXIT_USAGE
    assert _run(["models", "register", str(tmp_path)], capsys)[0] == errors.EXIT_USAGE
    assert _run(["train", "--out", str(tmp_path / "m")], capsys)[0] == errors.EXIT_USAGE  # no --data
    assert _run(["evaluate", "--batch-size", "many"], capsys)[0] == errors.EXIT_USAGE
    assert _run(["up", "--no-such-option"], capsys)[0] == errors.EXIT_USAGE
    assert _run(["gui", "--page-size", "1"], capsys)[0] == errors.EXIT_USAGE
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = _run(["gui"], capsys)
    assert code == errors.EXIT_USAGE and "no display" in _one_error_line(err)


def test_worker_service_error_and_model_note(aidetect_home, monkeypatch, capsys) -> None:  # noqa: ANN001
    from redis_server import free_port

    monkeypatch.setenv("AIDETECT_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert _run(["models", "list"], capsys)[0] == 0  # the shipped model is registered and active
    monkeypatch.setenv("AIDETECT_MODEL", "/nope")
    code, _, err = _run(["worker"], capsys)
    assert code == errors.EXIT_USAGE
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "AIDETECT_MODEL=/nope does not exist" in warnings[0]
    assert str(SHIPPED_MODEL_DIR) in warnings[0]  # names what is used instead
    assert "broker not reachable" in err


# -- results: newest first, readable at 80 columns ------------------------------------------
@pytest.fixture
def two_scans(tmp_path: Path, aidetect_home: Path, capsys: pytest.CaptureFixture[str]) -> tuple[list[Path], list[Path]]:
    deep = tmp_path / "a rather long folder name" / "with more levels below it" / "and one more"
    first = write_images(deep / "first", 3)
    second = write_images(deep / "second", 2, start=10)
    (deep / "second" / "broken.jpg").write_text("not an image")
    assert _run(["scan", str(deep / "first"), "--inline"], capsys)[0] == 0
    assert _run(["scan", str(deep / "second"), "--inline"], capsys)[0] == 1
    return first, second + [deep / "second" / "broken.jpg"]


def test_results_newest_first(two_scans, capsys) -> None:  # noqa: ANN001
    first, second = two_scans
    rows = assert_results(json.loads(_run(["results", "--json"], capsys)[1]))
    times = [r["time"] for r in rows]
    assert times == sorted(times, reverse=True)
    assert {r["path"] for r in rows[:3]} == {str(p) for p in second}
    oldest_first = json.loads(_run(["results", "--json", "--asc"], capsys)[1])
    assert [r["file_id"] for r in oldest_first] == [r["file_id"] for r in reversed(rows)]
    by_path = [r["path"] for r in json.loads(_run(["results", "--json", "--sort", "path"], capsys)[1])]
    assert by_path == sorted(by_path)
    by_path_desc = [r["path"] for r in json.loads(_run(["results", "--json", "--sort", "path", "--desc"], capsys)[1])]
    assert by_path_desc == sorted(by_path, reverse=True)
    by_id = [r["file_id"] for r in json.loads(_run(["results", "--json", "--sort", "id"], capsys)[1])]
    assert by_id == sorted(by_id)
    code, out, _ = _run(["results", "--limit", "2"], capsys)  # the table: the newest rows
    assert code == 0 and "2 of 6 matching results, newest first" in out
    assert all(p.name not in out for p in first)


def test_results_table_fits_80_columns(two_scans, monkeypatch, capsys) -> None:  # noqa: ANN001
    first, second = two_scans
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = _run(["results"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    for p in first + second:  # each file on one line of its own, its name whole
        assert sum(p.name in line for line in lines) == 1, (p.name, out)
    assert str(first[0]) not in out and "…" in out  # folders shortened in the middle
    assert "not an image" in out  # a failed row's reason under its name
    assert "fused_clip_cnn" not in "".join(lines[:-1])  # no model column; the footer names it
    assert "model fused_clip_cnn" in lines[-1]

    monkeypatch.setenv("COLUMNS", "200")
    out = _run(["results"], capsys)[1]
    assert all(len(line) <= 200 for line in out.splitlines())
    assert "model" in out.splitlines()[1] and "fused_clip_cnn" in out  # every column
    monkeypatch.setenv("COLUMNS", "320")
    out = _run(["results"], capsys)[1]
    for p in first + second:
        assert str(p) in out  # whole paths when there is room
    flat = json.loads(_run(["results", "--json"], capsys)[1])
    assert {r["path"] for r in flat} == {str(p) for p in first + second}  # --json: whole paths


# -- models register tells the truth ---------------------------------------------------------
def test_register_of_the_active_model_says_so(tmp_path, aidetect_home, capsys) -> None:  # noqa: ANN001
    assert _run(["models", "list"], capsys)[0] == 0  # the shipped model becomes active
    code, out, _ = _run(["models", "register", str(SHIPPED_MODEL_DIR)], capsys)
    assert code == 0 and "already the active version" in out and "not active" not in out
    other = tmp_path / "other"
    shutil.copytree(SHIPPED_MODEL_DIR, other)
    card = json.loads((other / "card.json").read_text())
    card["version"] += "-other"
    (other / "card.json").write_text(json.dumps(card))
    code, out, _ = _run(["models", "register", str(other)], capsys)
    assert code == 0 and "not active" in out and f"promote {card['version']}" in out
    rows = {r["version"]: r["active"] for r in json.loads(_run(["models", "list", "--json"], capsys)[1])}
    assert rows[card["version"]] is False


# -- AIDETECT_MODEL against the registered active model -------------------------------------
def test_model_setting_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDETECT_HOME", str(tmp_path))
    monkeypatch.delenv("AIDETECT_MODEL", raising=False)
    active = tmp_path / "models" / "v1"
    shutil.copytree(SHIPPED_MODEL_DIR, active)
    version = json.loads((active / "card.json").read_text())["version"]
    assert model_setting_note(get_settings(), active, version) is None  # not set
    for setting, expect in (("/nope", "does not exist"), (str(tmp_path / "elsewhere"), "does not exist")):
        monkeypatch.setenv("AIDETECT_MODEL", setting)
        note = model_setting_note(get_settings(), active, version)
        assert note and f"AIDETECT_MODEL={setting}" in note and expect in note and str(active) in note
        assert "\n" not in note
    monkeypatch.setenv("AIDETECT_MODEL", str(SHIPPED_MODEL_DIR.parent / "cifake"))
    note = model_setting_note(get_settings(), active, version)
    assert note and "not the active model" in note
    monkeypatch.setenv("AIDETECT_MODEL", str(SHIPPED_MODEL_DIR))  # a copy of the active one
    settings: Settings = get_settings()
    assert model_setting_note(settings, active, version) is None
    monkeypatch.setenv("AIDETECT_MODEL", str(active))
    assert model_setting_note(get_settings(), active, version) is None


def test_scan_warns_once_about_a_missing_model_setting(tmp_path, aidetect_home, monkeypatch, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "in"
    write_images(folder, 1)
    assert _run(["models", "list"], capsys)[0] == 0
    monkeypatch.setenv("AIDETECT_MODEL", "/nope")
    code, _, err = _run(["scan", str(folder), "--inline"], capsys)
    assert code == 0
    warnings = [line for line in err.splitlines() if "AIDETECT_MODEL" in line]
    assert len(warnings) == 1 and "does not exist" in warnings[0] and "registered active model" in warnings[0]
