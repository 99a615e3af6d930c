"""The training loop: seeded, resumable, early stopping, best checkpoint, CUDA + AMP when
available, calibration on the validation split, output a model directory.

Resume state lives in ``OUT/.train_state/`` as safetensors (model, optimiser moments, RNG)
plus JSON (epoch, history, schedule): nothing is ever unpickled. The options are
:class:`aidetect.trainer.config.TrainConfig`.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel

from aidetect.errors import AidetectError
from aidetect.model import ModelCard, create_model, save_model_dir
from aidetect.model.precision import pick_precision
from aidetect.model.preprocess import Normalisation
from aidetect.runtime import tune_malloc
from aidetect.trainer import calibration
from aidetect.trainer.config import TrainConfig
from aidetect.trainer.memory import BatchAugment, MemoryImages, decode_selection
from aidetect.trainer.metrics import classification_metrics, short
from aidetect.trainer.sources import eval_selection, load_sources, parse_label_map, train_val_split

STATE_DIR = ".train_state"


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def warmed_up_decay(decay: float, num_averaged: int) -> float:
    """EMA decay ramped up as (1 + n) / (10 + n) towards ``decay``: a plain 0.999 average
    would still hold half of the random initialisation after 700 steps."""
    return min(decay, (1.0 + num_averaged) / (10.0 + num_averaged))


def ema_multi_avg_fn(decay: float):  # noqa: ANN201 (an AveragedModel multi_avg_fn)
    """Exponential moving average with a warmed-up decay, one fused update per device and
    dtype group (AveragedModel groups them): the decay is read once per step, not per tensor."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        d = warmed_up_decay(decay, int(num_averaged))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (BatchNorm's num_batches_tracked)
            for a, c in zip(averaged, current, strict=True):
                a.copy_(a * d + c * (1.0 - d))

    return update


def grow_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """Load ``state`` into ``model`` where it fits: tensors of the same shape as they are;
    tensors that grew (every dimension at least as large, e.g. a head reading more features)
    get the old values in their leading slice and zeros elsewhere, so the network starts out
    computing what the old one did; the rest keep their fresh initialisation. Returns the
    names taken as they are, grown, and new."""
    own = model.state_dict()
    kept, grown, new = [], [], []
    with torch.no_grad():
        for name, t in own.items():
            old = state.get(name)
            if old is None or old.ndim != t.ndim:
                new.append(name)
            elif old.shape == t.shape:
                t.copy_(old)
                kept.append(name)
            elif all(o <= n for o, n in zip(old.shape, t.shape, strict=True)):
                t.zero_()
                t[tuple(slice(0, o) for o in old.shape)] = old
                grown.append(name)
            else:
                new.append(name)
    return kept, grown, new


def freeze_batchnorm_of_frozen(model: nn.Module) -> None:
    """Put BatchNorm layers whose parameters are all frozen in eval mode (their running
    statistics stay those of the weights they came with)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()


def make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), or SGD with Nesterov momentum 0.9 and weight decay on
    the weights of convolutions and linear layers only (not on BatchNorm or biases). Frozen
    parameters are left out."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        decay = [p for p in params if p.ndim > 1]
        rest = [p for p in params if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    raise AidetectError(f"--optimizer {name}: choose adamw or sgd")


def predict_logits(
    model: nn.Module, mem: MemoryImages, aug: BatchAugment, device: torch.device, batch: int = 512
) -> torch.Tensor:
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(mem), batch):
            idx = torch.arange(start, min(start + batch, len(mem)))
            x = aug.normalise(mem.eval_batch(idx)).to(device, memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 2)


def _flat_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflat_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


@dataclass
class CalibrationFit:
    """The kept weights' calibration on the validation images."""

    logits: torch.Tensor  # the network's validation logits, before the temperature
    temperature: float
    threshold: float
    band: list[float]
    band_stats: dict[str, float]
    p: np.ndarray  # calibrated P(ai) of each validation image
    y: np.ndarray  # its label


class Trainer:
    """One training run, in phases: :meth:`setup` (from the constructor) builds everything the
    epochs need, :meth:`run` alternates :meth:`train_epoch` and :meth:`validate` and ends with
    :meth:`export`, which writes the model directory."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.log = print if cfg.progress else (lambda *a, **k: None)
        self.setup()

    # -- setup --------------------------------------------------------------------------
    def setup(self) -> None:
        """Seeds; network (a bad --arch-kw or --init fails here, before the data is decoded);
        data; optimiser, schedule and weight average; the state of an interrupted run with
        ``resume``."""
        cfg = self.cfg
        tune_malloc()  # training steps reuse activation memory instead of re-mapping it (aidetect.runtime)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        init_state = self.load_init()
        self.aug = build_augment(cfg, self.norm)
        self.build_model(init_state)
        self.load_data()
        self.build_optimisation()
        self.elapsed = 0.0
        self.start_epoch, self.history, self.stopped_early = 0, [], False
        self.best: dict[str, Any] = {"epoch": -1, "val_accuracy": -1.0, "val_loss": float("inf"), "state": None}
        if cfg.resume:
            self.start_epoch, self.history, self.best = self._load_state()
            self.log(f"resuming at epoch {self.start_epoch + 1} (best so far: epoch {self.best['epoch'] + 1})")
        self.log(
            f"training {cfg.arch} ({self.n_params:,} parameters) on {self.device} with "
            f"{torch.get_num_threads()} threads, {cfg.epochs} epochs max, batch {cfg.batch_size}"
        )
        # static shapes: with progressive resizing, one graph per crop size rather than a switch
        # to a dynamic-shape graph when the size changes
        self.train_forward = torch.compile(self.model, dynamic=False) if cfg.compile else self.model

    def load_init(self) -> dict[str, torch.Tensor] | None:
        """With ``init``: its card (``init_card``) and weights. Sets the input normalisation
        (``norm``): the one the starting weights were trained with (pretrained backbones)."""
        cfg = self.cfg
        self.init_card: ModelCard | None = None
        self.norm = Normalisation()
        if cfg.init is None:
            return None
        from aidetect.model import load_model_dir

        init_model, self.init_card = load_model_dir(cfg.init)
        if self.init_card.architecture != cfg.arch:
            raise AidetectError(
                f"--init {cfg.init}: its architecture {self.init_card.architecture} differs from --arch {cfg.arch}"
            )
        self.norm = Normalisation(tuple(self.init_card.mean), tuple(self.init_card.std))  # type: ignore[arg-type]
        return init_model.state_dict()

    def build_model(self, init_state: dict[str, torch.Tensor] | None) -> None:
        """The network, started from ``init_state`` where its weights fit (frozen with ``freeze_init``)."""
        cfg = self.cfg
        self.model = create_model(cfg.arch, **cfg.arch_kwargs).to(self.device, memory_format=torch.channels_last)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        if init_state is None:
            return
        kept, grown, new = grow_state_dict(self.model, init_state)
        if not kept:
            raise AidetectError(f"--init {cfg.init}: none of its weights fit --arch {cfg.arch} {cfg.arch_kwargs}")
        if grown or new:
            self.log(f"--init: {len(kept)} tensors taken as they are, {len(grown)} grown ({', '.join(grown)}), "
                     f"{len(new)} new")
        if cfg.freeze_init:
            for name, p in self.model.named_parameters():
                p.requires_grad_(name not in kept)
        self.log(f"starting from the weights of {cfg.init} ({self.init_card.version})")  # type: ignore[union-attr]

    def load_data(self) -> None:
        """Load the sources, split them, decode the training and validation images; the
        sampling weights of ``balance``."""
        cfg = self.cfg
        lm = parse_label_map(cfg.label_map)
        self.sources = load_sources(cfg.data, lm, cfg.group_split)
        train, val, self.data_record = train_val_split(self.sources, cfg.val_fraction, cfg.seed, cfg.max_train)
        if len(train) < 2 or len(val) < 2:
            raise AidetectError(f"not enough data: {len(train)} training and {len(val)} validation images")
        t0 = time.perf_counter()
        self.train_mem = decode_selection(train, cfg.input_size, cfg.progress, "decode train")
        self.val_mem = decode_selection(val, cfg.input_size, cfg.progress, "decode validation")
        self.data_record["decode_s"] = round(time.perf_counter() - t0, 1)
        skipped = self.train_mem.failed + self.val_mem.failed
        self.data_record["undecodable"] = len(skipped)
        if skipped:
            self.log(f"skipped {len(skipped)} undecodable images, e.g. {skipped[0]}")
        self.log(
            f"data: {len(self.train_mem)} train / {len(self.val_mem)} validation images "
            f"(split hash {self.data_record['split_hash']}), decoded in {self.data_record['decode_s']} s"
        )
        self.sample_weights = balanced_weights(self.train_mem.labels, self.train_mem.groups)
        if cfg.balance:
            self.data_record["sampling"] = "balanced: each class half of every epoch, each source an equal share of its class"

    def build_optimisation(self) -> None:
        """Optimiser, one-cycle schedule, autocast dtype with its gradient scaler, weight average."""
        cfg = self.cfg
        self.opt = make_optimizer(cfg.optimizer, self.model, cfg.lr, cfg.weight_decay)
        self.steps = max(1, len(self.train_mem) // cfg.batch_size)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=cfg.lr, total_steps=self.steps * cfg.epochs, pct_start=0.15
        )
        self.amp_dtype = pick_precision(cfg.precision, self.device)
        fp16_cuda = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16_cuda)
        self.ema_model: AveragedModel | None = None
        if cfg.ema > 0:
            self.ema_model = AveragedModel(self.model, multi_avg_fn=ema_multi_avg_fn(cfg.ema), use_buffers=True)

    @property
    def evaluated(self) -> nn.Module:
        """The network validated, kept and shipped: the weight average when ``ema`` is on."""
        return self.ema_model.module if self.ema_model is not None else self.model

    # -- epochs -------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until ``epochs`` or early stopping, then :meth:`export` the best weights."""
        cfg = self.cfg
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            rec = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            val_loss, val_acc = self.validate()
            dt = time.perf_counter() - t0
            self.elapsed += dt
            rec.update(val_loss=val_loss, val_accuracy=val_acc, lr=self.opt.param_groups[0]["lr"],
                       crop=self.crop_size(epoch) or cfg.input_size, seconds=round(dt, 1))
            self.end_epoch(epoch, rec, dt)
            if epoch - self.best["epoch"] >= cfg.patience:
                self.log(f"early stop: no validation improvement for {cfg.patience} epochs")
                self.stopped_early = True
                break
        return self.export()

    def crop_size(self, epoch: int) -> int | None:
        """The crop size of progressive resizing in this epoch, or None for the input size."""
        return self.cfg.small_crop if epoch < self.cfg.small_crop_epochs and self.cfg.small_crop else None

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training images in an order drawn from the seed and the epoch;
        returns its mean loss and accuracy."""
        from tqdm import tqdm

        cfg = self.cfg
        self.model.train()
        if cfg.freeze_init:
            freeze_batchnorm_of_frozen(self.model)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        if cfg.balance:
            perm = torch.multinomial(self.sample_weights, len(self.train_mem), replacement=True, generator=gen)
        else:
            perm = torch.randperm(len(self.train_mem), generator=gen)
        self.aug.rng.seed(cfg.seed * 1000 + epoch)
        tot_loss, tot_ok, seen = 0.0, 0, 0
        bar = tqdm(range(self.steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not cfg.progress)
        crop = self.crop_size(epoch)
        for b in bar:
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            loss, ok = self.train_step(idx, crop)
            tot_loss += loss * len(idx)
            tot_ok += ok
            seen += len(idx)
            if b % 10 == 0 or b == self.steps - 1:
                bar.set_postfix(loss=f"{tot_loss / seen:.4f}", acc=f"{tot_ok / seen:.4f}")
        bar.close()
        return {"train_loss": tot_loss / seen, "train_accuracy": tot_ok / seen}

    def train_step(self, idx: torch.Tensor, crop: int | None) -> tuple[float, int]:
        """One optimiser step on the training images ``idx``; returns the batch's loss and how
        many it got right."""
        x = self.aug(self.train_mem, idx, crop).to(self.device, memory_format=torch.channels_last)
        y = self.train_mem.labels[idx].to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            logits = self.train_forward(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        if self.ema_model is not None:
            self.ema_model.update_parameters(self.model)
        return float(loss.detach()), int((logits.argmax(1) == y).sum())

    def validate(self, model: nn.Module | None = None) -> tuple[float, float]:
        """Validation loss and accuracy of ``model`` (default: :attr:`evaluated`)."""
        logits = predict_logits(model if model is not None else self.evaluated, self.val_mem, self.aug, self.device)
        labels = self.val_mem.labels
        return float(F.cross_entropy(logits, labels)), float((logits.argmax(1) == labels).float().mean())

    def end_epoch(self, epoch: int, rec: dict[str, Any], dt: float) -> None:
        """Add the epoch to the history, keep the weights if they are the best so far, log it
        and save the state a resumed run starts from."""
        val_acc, val_loss = rec["val_accuracy"], rec["val_loss"]
        self.history.append(rec)
        best = self.best
        improved = val_acc > best["val_accuracy"] or (val_acc == best["val_accuracy"] and val_loss < best["val_loss"])
        if improved:
            self.best = {
                "epoch": epoch,
                "val_accuracy": val_acc,
                "val_loss": val_loss,
                "state": {k: v.detach().cpu().clone() for k, v in self.evaluated.state_dict().items()},
            }
        self.log(
            f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.4f} | "
            f"val loss {val_loss:.4f} acc {val_acc:.4f}{' *best*' if improved else ''} | {dt:.1f} s"
        )
        self._save_state(epoch)

    # -- resume state -------------------------------------------------------------------
    def _save_state(self, epoch: int) -> None:
        d = self.cfg.out / STATE_DIR
        d.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        if self.ema_model is not None:
            tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in self.ema_model.state_dict().items()})
        opt_t, opt_meta = _flat_optimizer(self.opt)
        tensors.update(opt_t)
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, str(d / "state.tmp"))
        os.replace(d / "state.tmp", d / "state.safetensors")
        best = self.best
        if best.get("state") is not None and best.get("saved_epoch") != best["epoch"]:
            save_file({k: v.contiguous() for k, v in best["state"].items()}, str(d / "best.tmp"))
            os.replace(d / "best.tmp", d / "best.safetensors")
            best["saved_epoch"] = best["epoch"]
        meta = {
            "epoch": epoch,
            "history": self.history,
            "best": {k: v for k, v in best.items() if k != "state"},
            "optimizer": opt_meta,
            "scheduler": self.sched.state_dict(),
            "config": self.cfg.fingerprint(),
            "elapsed_s": self.elapsed,
        }
        (d / "state.json").write_text(json.dumps(meta, default=str), encoding="utf-8")

    def _load_state(self) -> tuple[int, list[dict], dict]:
        d = self.cfg.out / STATE_DIR
        if not (d / "state.json").is_file():
            raise AidetectError(f"--resume: no training state in {d}")
        meta = json.loads((d / "state.json").read_text(encoding="utf-8"))
        if meta["config"] != self.cfg.fingerprint():
            diff = sorted(k for k in meta["config"] if meta["config"][k] != self.cfg.fingerprint().get(k))
            raise AidetectError(f"--resume: the options differ from the interrupted run ({', '.join(diff)})")
        tensors = load_file(str(d / "state.safetensors"))
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if self.ema_model is not None:
            self.ema_model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        self.opt.load_state_dict(_unflat_optimizer(tensors, meta["optimizer"]))
        self.sched.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        best = meta["best"]
        if (d / "best.safetensors").is_file():
            best["state"] = load_file(str(d / "best.safetensors"))
        self.elapsed = float(meta.get("elapsed_s", 0.0))
        return int(meta["epoch"]) + 1, meta["history"], best

    # -- export -------------------------------------------------------------------------
    def export(self) -> Path:
        """Calibrate the best weights on validation, measure them, fit the out-of-distribution
        score and write the model directory (weights + card)."""
        cfg = self.cfg
        if self.best.get("state") is None:
            raise AidetectError("training produced no checkpoint (0 epochs?)")
        # what the weight average added over the last weights
        last_weights_accuracy = self.validate(self.model)[1] if self.ema_model is not None else None
        self.model.load_state_dict(self.best["state"])
        model = copy.deepcopy(self.model).to("cpu").eval()
        model = model.to(memory_format=torch.contiguous_format)
        cal = self.calibrate()
        ood_record: dict[str, Any] | None = None
        if cfg.ood and hasattr(model, "ood_layers"):
            from aidetect.trainer.ood import fit_ood

            self.log("fitting the out-of-distribution score on training features")
            ood_stats, ood_record = fit_ood(model, self.train_mem, self.val_mem, self.aug, cfg.seed)
        card = self.model_card(cal, self.measure(cal), last_weights_accuracy)
        if ood_record is not None:
            card.ood = ood_record
        out = save_model_dir(model, card, cfg.out)
        if ood_record is not None:
            from aidetect.model.ood import save_ood

            save_ood(ood_stats, out)
        self.log(
            f"saved {out} (version {card.version}): temperature {cal.temperature:.3f}, threshold {cal.threshold}, "
            f"uncertain band {cal.band}, best epoch {self.best['epoch'] + 1}, {self.elapsed:.0f} s training"
        )
        return out

    def calibrate(self) -> CalibrationFit:
        """Temperature, threshold and uncertain band of the network (the best weights by now)
        fitted on the validation images."""
        logits = predict_logits(self.model, self.val_mem, self.aug, self.device)
        y = self.val_mem.labels.numpy()
        temp = calibration.fit_temperature(logits, self.val_mem.labels)
        p = calibration.prob_ai(logits, temp)
        threshold = calibration.fit_threshold(p, y)
        band, band_stats = calibration.fit_band(p, y, threshold, self.cfg.band_target_accuracy)
        return CalibrationFit(logits, temp, threshold, band, band_stats, p, y)

    def measure(self, cal: CalibrationFit) -> dict[str, Any]:
        """The card's metrics: validation (calibrated and not), the band, the sources' test
        splits (with ``evaluate_test``) and validation per source."""
        metrics: dict[str, Any] = {
            "validation": short(classification_metrics(cal.p, cal.y, cal.threshold)),
            "validation_uncalibrated": short(classification_metrics(calibration.prob_ai(cal.logits), cal.y)),
            "uncertain_band": cal.band_stats,
        }
        test_parts = [s for s in self.sources if "test" in s.splits]
        if self.cfg.evaluate_test and test_parts:
            sel, rec = eval_selection(test_parts, "test")
            mem = decode_selection(sel, self.cfg.input_size, self.cfg.progress, "decode test")
            p = calibration.prob_ai(predict_logits(self.model, mem, self.aug, self.device), cal.temperature)
            m = classification_metrics(p, mem.labels.numpy(), cal.threshold)
            metrics["test"] = {**short(m), "hash": rec["hash"], "sources": [s["name"] for s in rec["sources"]],
                               "views": "one centre crop per image (aidetect evaluate scores as the product does)"}
            metrics["test_per_source"] = per_source_metrics(p, mem.labels.numpy(), mem.groups, cal.threshold)
            self.log("test: accuracy {accuracy:.4f}  AUC {roc_auc:.4f}  ECE {ece:.4f}  (n={n})".format(**m))
        metrics["validation_per_source"] = per_source_metrics(cal.p, cal.y, self.val_mem.groups, cal.threshold)
        return metrics

    def model_card(self, cal: CalibrationFit, metrics: dict[str, Any], last_weights_accuracy: float | None) -> ModelCard:
        """The card of the trained model: architecture, calibration, data, metrics, training record."""
        cfg = self.cfg
        classes: dict[str, str] = {}
        for s in self.sources:
            classes.update({str(s.value_names[v]): c for v, c in s.value_to_class.items()})
        history, offset, init_record = self.history_with_init()
        return ModelCard(
            architecture=cfg.arch,
            arch_kwargs=dict(cfg.arch_kwargs),
            input_size=cfg.input_size,
            source_classes=classes,
            mean=list(self.norm.mean),
            std=list(self.norm.std),
            temperature=round(cal.temperature, 6),
            threshold=cal.threshold,
            uncertain_band=cal.band,
            data=self.data_record,
            metrics=metrics,
            training={
                "epochs_run": len(history),
                "epochs_max": cfg.epochs,
                "best_epoch": self.best["epoch"] + 1 + offset,
                "stopped_early": self.stopped_early,
                "seconds": round(self.elapsed, 1),
                "parameters": self.n_params,
                "device": str(self.device),
                "threads": torch.get_num_threads(),
                "amp": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype is not None else None,
                "ema": cfg.ema or None,
                "val_accuracy_last_weights": last_weights_accuracy,
                "compiled": cfg.compile,
                "config": cfg.fingerprint(),
                "command": " ".join(["aidetect", *sys.argv[1:]]) if sys.argv and "aidetect" in sys.argv[0] else None,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "history": history,
                **init_record,
            },
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def history_with_init(self) -> tuple[list[dict], int, dict[str, Any]]:
        """The epochs' history, after the ``init`` model's own (as stage 1) when there is one;
        how many epochs came before; and the card record of where training started from."""
        if self.init_card is None:
            return self.history, 0, {}
        prev = self.init_card.training
        prev_hist = [{**h, "stage": 1} for h in prev.get("history", [])]
        history = prev_hist + [{**h, "epoch": h["epoch"] + len(prev_hist), "stage": 2} for h in self.history]
        init_record = {
            "init_from": {"dir": str(self.cfg.init), "version": self.init_card.version,
                          "seconds": prev.get("seconds"), "epochs_run": prev.get("epochs_run"),
                          "config": prev.get("config")},
            "seconds_total": round(float(prev.get("seconds") or 0) + self.elapsed, 1),
        }
        return history, len(prev_hist), init_record


def build_augment(cfg: TrainConfig, norm: Normalisation) -> BatchAugment:
    """The training augmentation a config asks for (also what ``scripts/refit_ood.py`` rebuilds
    from a card's ``training.config``)."""
    return BatchAugment(
        cfg.input_size, norm, cfg.blur_p, cfg.jpeg_p, tuple(cfg.jpeg_quality), cfg.grayscale_p, cfg.seed,  # type: ignore[arg-type]
        cfg.crop_grid, cfg.grid_pad, cfg.downscale_p, cfg.downscale_min, cfg.jpeg_chroma, cfg.webp_p, cfg.noise_p,
    )


def balanced_weights(labels: torch.Tensor, groups: list[str]) -> torch.Tensor:
    """Sampling weight of every training image: each class half of the draws, each source
    (the part of its group before ``/``) an equal share of its class."""
    src = [g.split("/", 1)[0] for g in groups]
    cells: dict[tuple[int, str], int] = {}
    for lab, s in zip(labels.tolist(), src, strict=True):
        cells[(lab, s)] = cells.get((lab, s), 0) + 1
    per_class = {c: sum(1 for (lab, _) in cells if lab == c) for c in (0, 1)}
    w = [1.0 / (2 * per_class[lab] * cells[(lab, s)]) for lab, s in zip(labels.tolist(), src, strict=True)]
    return torch.tensor(w, dtype=torch.double)


def per_source_metrics(p: np.ndarray, y: np.ndarray, groups: list[str], threshold: float) -> dict[str, Any]:
    """Short metrics per source (AUC where the source has both classes; recall per class)."""
    src = np.array([g.split("/", 1)[0] for g in groups])
    out: dict[str, Any] = {}
    for name in sorted(set(src.tolist())):
        m = src == name
        full = classification_metrics(p[m], y[m], threshold)
        out[name] = {**short(full), "recall_real": full["per_class"]["real"]["recall"],
                     "recall_ai": full["per_class"]["ai"]["recall"]}
    return out


def train(cfg: TrainConfig) -> Path:
    """Train a model directory as ``cfg`` says; returns its path."""
    return Trainer(cfg).run()
