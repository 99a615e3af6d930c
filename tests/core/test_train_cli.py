"""A tiny train -> evaluate -> predict run through the CLI on the 256 shipped images,
plus resuming an interrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aidetect.cli import main
from aidetect.model import ModelCard, load_model_dir

TINY = ["--arch", "npr_resnet_tiny", "--batch-size", "32", "--threads", "2", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, parquet_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("train") / "model"
    rc = main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "3", "--lr", "3e-3", *TINY])
    assert rc == 0
    return out


def test_train_writes_a_complete_model_dir(trained: Path) -> None:
    assert (trained / "model.safetensors").is_file() and (trained / "card.json").is_file()
    assert not list(trained.glob("*.pt*"))
    model, card = load_model_dir(trained)
    assert card.architecture == "npr_resnet_tiny" and card.input_size == 32
    assert card.source_classes == {"FAKE": "ai", "REAL": "real"}
    assert card.temperature > 0 and 0 < card.threshold < 1
    lo, hi = card.uncertain_band
    assert 0 <= lo <= card.threshold <= hi <= 1
    assert len(card.data["split_hash"]) == 16
    assert card.data["train"]["n"] + card.data["validation"]["n"] == 192  # the test split is held out
    assert "seeded stratified" in card.data["sources"][0]["split"]
    assert card.metrics["test"]["n"] == 64
    assert set(card.metrics["validation"]) >= {"accuracy", "roc_auc", "ece"}
    hist = card.training["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert card.training["seed"] if "seed" in card.training else card.training["config"]["seed"] == 0
    assert card.version.startswith("npr_resnet_tiny-") and card.created
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert card.training["amp"] == ("bfloat16" if bf16 else None)  # --precision auto on this CPU


def test_same_seed_same_split(trained: Path, parquet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "1", *TINY]) == 0
    assert ModelCard.load(out).data["split_hash"] == ModelCard.load(trained).data["split_hash"]


def test_evaluate_json_report_and_plots(trained: Path, mini_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    rc = main(["evaluate", "--model", str(trained), "--data", str(mini_dir), "--out", str(out), "--json",
               "--threads", "2"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "balanced_accuracy", "roc_auc", "average_precision", "ece", "n"):
        assert isinstance(summary[key], float | int), key
    assert summary["n"] == 256
    assert set(summary["robustness"]) == {"clean", "jpeg_q90", "jpeg_q75", "jpeg_q50", "downscale_0.5x",
                                          "blur_r1", "grayscale", "webp_q75", "social_1080_q80",
                                          "screenshot", "meme"}
    metrics = json.loads((out / "metrics.json").read_text())
    cm = np.array(metrics["overall"]["confusion_matrix"]["rows_true_cols_pred"])
    assert cm.sum() == 256 and cm[0].sum() == 128  # 128 real images, real row first
    assert abs(metrics["overall"]["accuracy"] - np.trace(cm) / 256) < 1e-12
    assert metrics["robustness"]["clean"]["accuracy"] == metrics["overall"]["accuracy"]
    for png in ("training_curves.png", "roc.png", "reliability.png", "confusion.png"):
        assert (out / png).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "## Robustness" in report and "jpeg_q50" in report and "roc.png" in report


def test_evaluate_per_group_on_combined_sources(trained: Path, parquet_dir: Path, hemg_folder: Path,
                                                tmp_path: Path, capsys) -> None:
    rc = main(["evaluate", "--model", str(trained), "--data", f"pq={parquet_dir}", "--data", f"art={hemg_folder}",
               "--out", str(tmp_path / "r"), "--no-robustness", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 64 + 256  # parquet: its test split; folder: all of it
    assert summary["per_group"]["pq"]["n"] == 64 and summary["per_group"]["art"]["n"] == 256


def test_predict_uses_the_trained_model(trained: Path, mini_dir: Path, capsys) -> None:
    images = sorted((mini_dir / "ai").iterdir())[:3] + sorted((mini_dir / "real").iterdir())[:3]
    rc = main(["predict", "--model", str(trained), "--json", *map(str, images)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6
    card = ModelCard.load(trained)
    for row in rows:
        assert row["label"] in ("ai", "real") and 0 <= row["prob_ai"] <= 1
        assert row["label"] == card.verdict(row["prob_ai"])[0]
        assert row["model_version"] == card.version


def test_evaluate_engines_agree_on_model_size_images(trained: Path, mini_dir: Path) -> None:
    """The evaluation scores 32 px images exactly as the product's Detector does."""
    from aidetect.model import load_image
    from aidetect.trainer.evaluate import EvalScorer

    images = [load_image(p) for p in sorted((mini_dir / "ai").iterdir())[:16]]
    det = EvalScorer(trained, engine="detector")
    direct = EvalScorer(trained, engine="direct")
    assert det.engine == "detector" and direct.engine == "direct"
    np.testing.assert_allclose(det(images), direct(images), atol=1e-5)


def test_resume_after_kill(parquet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    cmd = [sys.executable, "-m", "aidetect.cli", "train", "--data", str(parquet_dir), "--out", str(out),
           "--epochs", "4", "--arch", "npr_resnet_tiny", "--batch-size", "8", "--threads", "1", "--quiet",
           "--ema", "0.9"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / ".train_state" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())
    assert done["epoch"] < 3, "the run finished before it could be interrupted"
    assert not (out / "card.json").exists()
    rc = main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "4", "--arch", "npr_resnet_tiny",
               "--batch-size", "8", "--threads", "1", "--quiet", "--ema", "0.9", "--resume"])
    assert rc == 0
    assert ModelCard.load(out).training["ema"] == 0.9
    hist = ModelCard.load(out).training["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[: done["epoch"] + 1] == done["history"]
    # the resumed run restored weights, optimiser, schedule and weight average exactly:
    # it ends with the weights of a run that was never interrupted
    whole = tmp_path / "whole"
    assert main(["train", "--data", str(parquet_dir), "--out", str(whole), *cmd[cmd.index("--epochs"):]]) == 0
    resumed, uninterrupted = load_file(str(out / "model.safetensors")), load_file(str(whole / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    for k in resumed:
        torch.testing.assert_close(resumed[k], uninterrupted[k], atol=1e-6, rtol=0)


def test_resume_with_other_options_refused(parquet_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m"
    assert main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "1", *TINY]) == 0
    rc = main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "1", "--lr", "0.1", "--resume",
               *TINY])
    assert rc == 2 and "lr" in capsys.readouterr().err


def test_train_publish_makes_it_the_active_version(parquet_dir: Path, tmp_path: Path, aidetect_home: Path,
                                                   capsys) -> None:
    out = tmp_path / "published"
    rc = main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "1", "--publish", *TINY])
    assert rc == 0
    version = ModelCard.load(out).version
    assert f"active model version {version}" in capsys.readouterr().out
    from aidetect.store.model_versions import active_model_dir

    assert active_model_dir().resolve() == out.resolve()


def test_precision_choice() -> None:
    from aidetect.errors import AidetectError
    from aidetect.model.precision import pick_precision

    cpu = torch.device("cpu")
    assert pick_precision("fp32", cpu) is None
    assert pick_precision("bf16", cpu) is torch.bfloat16
    assert pick_precision("fp16", torch.device("cuda")) is torch.float16
    assert pick_precision("auto", torch.device("cuda")) is torch.float16
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert pick_precision("auto", cpu) is (torch.bfloat16 if bf16 else None)
    with pytest.raises(AidetectError, match="precision .int4.: choose auto"):
        pick_precision("int4", cpu)


def test_weight_average_warms_up() -> None:
    """The average starts close to the current weights (decay (1+n)/(10+n)) and reaches the
    requested decay only later, so early epochs are not dominated by the random init."""
    from aidetect.trainer.loop import ema_multi_avg_fn

    update = ema_multi_avg_fn(0.999)

    def avg(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        update([averaged], [current], n)
        return averaged

    zero, one = torch.zeros(3), torch.ones(3)
    torch.testing.assert_close(avg(zero.clone(), one, torch.tensor(1)), torch.full((3,), 1 - 2 / 11))
    torch.testing.assert_close(avg(zero.clone(), one, torch.tensor(10**6)), torch.full((3,), 0.001))


def test_sgd_and_progressive_resizing(parquet_dir: Path, tmp_path: Path) -> None:
    """--optimizer sgd and --small-crop: the first epochs run on smaller crops (same scale),
    the last at the input size (here moving on the 8 px grid over mirrored blocks); the model
    directory records it all and still predicts."""
    out = tmp_path / "m"
    rc = main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "3", "--optimizer", "sgd",
               "--lr", "0.05", "--small-crop", "24", "--small-crop-epochs", "2", "--crop-grid", "8", "--grid-pad", "8", *TINY])
    assert rc == 0
    card = ModelCard.load(out)
    cfg = card.training["config"]
    assert (cfg["optimizer"], cfg["small_crop"], cfg["small_crop_epochs"]) == ("sgd", 24, 2)
    assert (cfg["crop_grid"], cfg["grid_pad"]) == (8, 8)
    assert [h["crop"] for h in card.training["history"]] == [24, 24, 32]
    assert card.input_size == 32 and card.metrics["test"]["n"] == 64


def test_sgd_decays_weights_only() -> None:
    from aidetect.model import create_model
    from aidetect.trainer.loop import make_optimizer

    model = create_model("npr_resnet_tiny")
    opt = make_optimizer("sgd", model, 0.1, 5e-4)
    decayed, free = opt.param_groups
    assert decayed["weight_decay"] == 5e-4 and free["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in free["params"])
    assert len(decayed["params"]) + len(free["params"]) == len(list(model.parameters()))
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9


def test_options_are_the_config_fields(tmp_path: Path) -> None:
    """Every training option of ``aidetect train`` is a TrainConfig field: with no options the
    command line gives the dataclass's own defaults, and values are parsed into field values."""
    from dataclasses import fields

    from aidetect.commands.train import train
    from aidetect.trainer.config import CLI, TrainConfig

    params = train.make_context("train", ["--out", str(tmp_path)]).params
    cli_only = {"publish", "quiet"}
    assert set(params) - cli_only == {f.name for f in fields(TrainConfig) if CLI in f.metadata}
    options = {k: v for k, v in params.items() if k not in cli_only}
    assert TrainConfig(**options) == TrainConfig(data=[], out=tmp_path)
    args = ["--out", str(tmp_path), "--data", "a", "--data", "b", "--jpeg-quality", "30-100", "--arch-kw", "widths=[8]",
            "--group-split", "2,1,1", "--compile", "--max-train", "5"]
    params = train.make_context("train", args).params
    cfg = TrainConfig(**{k: v for k, v in params.items() if k not in cli_only})
    assert (cfg.data, cfg.jpeg_quality, cfg.arch_kwargs) == (["a", "b"], (30, 100), {"widths": [8]})
    assert (cfg.group_split, cfg.compile, cfg.max_train) == ((0.5, 0.25, 0.25), True, 5)


@pytest.mark.parametrize("bad", [["--ema", "1.5"], ["--label-smoothing", "-0.1"], ["--precision", "int4"],
                                 ["--optimizer", "lion"], ["--small-crop", "-8"],
                                 ["--small-crop", "33"], ["--crop-grid", "-1"], ["--grid-pad", "8"],
                                 ["--crop-grid", "8", "--grid-pad", "4"], ["--jpeg-quality", "0-50"],
                                 ["--group-split", "1,2"], ["--downscale-min", "0"], ["--arch-kw", "widths=["]])
def test_bad_training_options_refused_in_one_line(bad: list[str], parquet_dir: Path, tmp_path: Path, capsys) -> None:
    rc = main(["train", "--data", str(parquet_dir), "--out", str(tmp_path / "m"), *bad, *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and bad[0] in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_grown_model_starts_as_the_old_one() -> None:
    """--init into a network with a new part (the DCT branch): weights that fit are taken,
    the head grows with zero weights for its new inputs, so the outputs are unchanged."""
    from aidetect.model import create_model
    from aidetect.trainer.loop import grow_state_dict

    torch.manual_seed(0)
    old = create_model("npr_resnet_tiny").eval()
    new = create_model("npr_resnet_tiny", dct_stats=8).eval()
    kept, grown, added = grow_state_dict(new, old.state_dict())
    assert grown == ["head.weight"] and all(k.startswith("dct_stats.") for k in added)
    assert len(kept) == len(old.state_dict()) - 1
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x))


def test_freeze_init_trains_only_the_new_part(trained: Path, parquet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "grown"
    rc = main(["train", "--data", str(parquet_dir), "--out", str(out), "--epochs", "1", "--init", str(trained),
               "--freeze-init", "--arch-kw", "dct_stats=8", "--crop-grid", "8", *TINY])
    assert rc == 0
    before, after = load_file(str(trained / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for k, v in before.items():
        if k != "head.weight":
            torch.testing.assert_close(after[k], v, rtol=0, atol=0)  # weights and BatchNorm statistics
    assert not torch.equal(after["head.weight"][:, : before["head.weight"].shape[1]], before["head.weight"])
    assert any(k.startswith("dct_stats.") for k in after)
    card = ModelCard.load(out)
    assert card.arch_kwargs == {"dct_stats": 8} and card.training["init_from"]["version"] == ModelCard.load(trained).version


def test_freeze_init_needs_init(parquet_dir: Path, tmp_path: Path, capsys) -> None:
    rc = main(["train", "--data", str(parquet_dir), "--out", str(tmp_path / "m"), "--epochs", "1", "--freeze-init",
               *TINY])
    assert rc == 2 and "--freeze-init needs --init" in capsys.readouterr().err


@pytest.mark.parametrize(("bad", "says"), [
    (["--arch-kw", "bogus=1"], "unexpected keyword argument 'bogus'"),
    (["--arch-kw", "widths=5"], "architecture 'npr_resnet' with arguments {'widths': 5}"),
    (["--init", "{tmp}/no-such-model"], "model directory not found"),
    (["--init", "{shipped}", "--arch", "seed"], "its architecture efficientnet_lite differs from --arch seed"),
])
def test_bad_network_options_fail_before_the_data_is_read(bad: list[str], says: str, tmp_path: Path, capsys) -> None:
    """--arch-kw and --init are checked before any data is loaded or decoded (here the data
    source does not even exist): one line, exit 2, nothing written."""
    from aidetect.config import FAST_MODEL_DIR

    bad = [b.format(tmp=tmp_path, shipped=FAST_MODEL_DIR) for b in bad]
    rc = main(["train", "--data", str(tmp_path / "no-such-data"), "--out", str(tmp_path / "m"), *bad])
    err = capsys.readouterr().err
    assert rc == 2 and says in err and "no-such-data" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
