"""The training loop: seeded, resumable, early stopping, best checkpoint, CUDA + AMP when
available, calibration on the validation split, output a model directory.

Resume state lives in ``OUT/.train_state/`` as safetensors (model, optimiser moments, RNG)
plus JSON (epoch, history, schedule): nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
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
from aidetect.model.preprocess import Normalisation
from aidetect.runtime import tune_malloc
from aidetect.trainer import calibration
from aidetect.trainer.memory import BatchAugment, MemoryImages, decode_selection
from aidetect.trainer.metrics import classification_metrics, short
from aidetect.trainer.sources import eval_selection, load_sources, parse_label_map, train_val_split

STATE_DIR = ".train_state"


@dataclass
class TrainConfig:
    data: list[str]
    out: Path
    arch: str = "npr_resnet"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    label_map: list[str] = field(default_factory=list)
    input_size: int = 32
    epochs: int = 12
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    patience: int = 4
    seed: int = 0
    val_fraction: float = 0.1
    max_train: int | None = None
    resume: bool = False
    device: str | None = None
    threads: int | None = None
    blur_p: float = 0.1
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (60, 95)
    grayscale_p: float = 0.05
    band_target_accuracy: float = 0.99
    progress: bool = True
    evaluate_test: bool = True
    init: Path | None = None  # start from this model directory's weights (fine-tuning)
    freeze_init: bool = False  # keep the weights taken from --init fixed; train only what is new
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: autocast dtype of the training forward
    ema: float = 0.0  # decay of an exponential moving average of the weights (0 = off)
    compile: bool = False  # torch.compile the training forward/backward (1.1x on CPU after ~10-30 s)
    optimizer: str = "adamw"  # adamw | sgd (Nesterov momentum 0.9, coupled weight decay)
    small_crop: int = 0  # progressive resizing: train on crops of this size first (0 = off) ...
    small_crop_epochs: int = 0  # ... for this many epochs, then at the input size
    crop_grid: int = 0  # 0: crops move freely over reflect padding; g: crops start at multiples of g
    grid_pad: int = 0  # with crop_grid: mirror model-size images by this many pixels so full-size crops move on the grid
    group_split: tuple[float, float, float] | None = None  # one-split sources: train/val/test shares by source image
    balance: bool = False  # draw each epoch so that every class, and every source within a class, weighs the same
    downscale_p: float = 0.0  # share of crops taken as if the image were downscaled first ...
    downscale_min: float = 0.25  # ... by a random factor from this to 1
    jpeg_chroma: bool = False  # JPEG re-encoding with Pillow at a random chroma subsampling (4:4:4/4:2:2/4:2:0)
    webp_p: float = 0.0  # share of crops re-encoded as WebP
    noise_p: float = 0.0  # share of crops with Gaussian noise
    ood: bool = True  # fit the out-of-distribution score on the network's features (models with embed())

    def fingerprint(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("out", "resume", "progress", "threads", "device", "patience", "evaluate_test", "precision",
                  "compile"):
            d.pop(k)
        return json.loads(json.dumps(d, default=str))


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training, or None for fp32. ``auto``: fp16 on CUDA; bf16 on a
    CPU whose oneDNN supports it (AVX512-BF16/AMX: 1.8x the fp32 step here), else fp32.
    Validation, calibration and inference always run in fp32."""
    if name == "fp32":
        return None
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    if name in ("bf16", "fp16"):
        return torch.bfloat16 if name == "bf16" else torch.float16
    raise AidetectError(f"--precision {name}: choose auto, fp32, bf16 or fp16")


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


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.log = print if cfg.progress else (lambda *a, **k: None)

    # -- data ---------------------------------------------------------------------------
    def prepare(self) -> None:
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

    # -- state --------------------------------------------------------------------------
    def _save_state(self, epoch: int, history: list[dict], best: dict) -> None:
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
        if best.get("state") is not None and best.get("saved_epoch") != best["epoch"]:
            save_file({k: v.contiguous() for k, v in best["state"].items()}, str(d / "best.tmp"))
            os.replace(d / "best.tmp", d / "best.safetensors")
            best["saved_epoch"] = best["epoch"]
        meta = {
            "epoch": epoch,
            "history": history,
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

    @property
    def evaluated(self) -> nn.Module:
        """The network validated, kept and shipped: the weight average when ``ema`` is on."""
        return self.ema_model.module if self.ema_model is not None else self.model

    # -- loop ---------------------------------------------------------------------------
    def run(self) -> Path:
        from tqdm import tqdm

        cfg = self.cfg
        tune_malloc()  # training steps reuse activation memory instead of re-mapping it (aidetect.runtime)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.small_crop and not (8 <= cfg.small_crop < cfg.input_size and cfg.small_crop % 2 == 0):
            raise AidetectError(
                f"--small-crop {cfg.small_crop}: must be an even size from 8 to below --input-size {cfg.input_size}"
            )
        if cfg.freeze_init and cfg.init is None:
            raise AidetectError("--freeze-init needs --init")
        # a bad --arch-kw or --init fails here, before the data is decoded
        self.init_card: ModelCard | None = None
        if cfg.init is not None:
            from aidetect.model import load_model_dir

            init_model, self.init_card = load_model_dir(cfg.init)
            if self.init_card.architecture != cfg.arch:
                raise AidetectError(
                    f"--init {cfg.init}: its architecture {self.init_card.architecture} differs from --arch {cfg.arch}"
                )
        # the input normalisation the starting weights were trained with (pretrained backbones)
        norm = Normalisation(tuple(self.init_card.mean), tuple(self.init_card.std)) if self.init_card else Normalisation()  # type: ignore[arg-type]
        self.norm = norm
        if cfg.grid_pad and (not cfg.crop_grid or cfg.grid_pad % cfg.crop_grid):
            raise AidetectError(
                f"--grid-pad {cfg.grid_pad}: needs --crop-grid and must be a multiple of it (--crop-grid {cfg.crop_grid})"
            )
        if not 0.0 < cfg.downscale_min <= 1.0:
            raise AidetectError(f"--downscale-min {cfg.downscale_min}: must be in (0, 1]")
        aug = build_augment(cfg, norm)
        self.model = create_model(cfg.arch, **cfg.arch_kwargs).to(self.device, memory_format=torch.channels_last)
        n_params = sum(p.numel() for p in self.model.parameters())
        if cfg.init is not None:
            kept, grown, new = grow_state_dict(self.model, init_model.state_dict())
            if not kept:
                raise AidetectError(f"--init {cfg.init}: none of its weights fit --arch {cfg.arch} {cfg.arch_kwargs}")
            if grown or new:
                self.log(f"--init: {len(kept)} tensors taken as they are, {len(grown)} grown ({', '.join(grown)}), "
                         f"{len(new)} new")
            if cfg.freeze_init:
                for name, p in self.model.named_parameters():
                    p.requires_grad_(name not in kept)
            self.log(f"starting from the weights of {cfg.init} ({self.init_card.version})")
        self.prepare()
        self.sample_weights = balanced_weights(self.train_mem.labels, self.train_mem.groups)
        if cfg.balance:
            self.data_record["sampling"] = "balanced: each class half of every epoch, each source an equal share of its class"
        self.opt = make_optimizer(cfg.optimizer, self.model, cfg.lr, cfg.weight_decay)
        steps = max(1, len(self.train_mem) // cfg.batch_size)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=cfg.lr, total_steps=steps * cfg.epochs, pct_start=0.15
        )
        self.amp_dtype = pick_precision(cfg.precision, self.device)
        use_amp = self.amp_dtype is not None
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16 and self.device.type == "cuda")
        self.ema_model: AveragedModel | None = None
        if cfg.ema > 0:
            self.ema_model = AveragedModel(self.model, multi_avg_fn=ema_multi_avg_fn(cfg.ema), use_buffers=True)
        self.elapsed = 0.0
        start_epoch, history, best = 0, [], {"epoch": -1, "val_accuracy": -1.0, "val_loss": float("inf"), "state": None}
        if cfg.resume:
            start_epoch, history, best = self._load_state()
            self.log(f"resuming at epoch {start_epoch + 1} (best so far: epoch {best['epoch'] + 1})")
        self.log(
            f"training {cfg.arch} ({n_params:,} parameters) on {self.device} with "
            f"{torch.get_num_threads()} threads, {cfg.epochs} epochs max, batch {cfg.batch_size}"
        )
        # static shapes: with progressive resizing, one graph per crop size rather than a switch
        # to a dynamic-shape graph when the size changes
        train_forward = torch.compile(self.model, dynamic=False) if cfg.compile else self.model
        stopped_early = False
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            self.model.train()
            if cfg.freeze_init:
                freeze_batchnorm_of_frozen(self.model)
            gen = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            if cfg.balance:
                perm = torch.multinomial(self.sample_weights, len(self.train_mem), replacement=True, generator=gen)
            else:
                perm = torch.randperm(len(self.train_mem), generator=gen)
            aug.rng.seed(cfg.seed * 1000 + epoch)
            tot_loss, tot_ok, seen = 0.0, 0, 0
            bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not cfg.progress)
            crop = cfg.small_crop if epoch < cfg.small_crop_epochs and cfg.small_crop else None
            for b in bar:
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x = aug(self.train_mem, idx, crop).to(self.device, memory_format=torch.channels_last)
                y = self.train_mem.labels[idx].to(self.device)
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=use_amp):
                    logits = train_forward(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                self.opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(self.opt)
                scaler.update()
                self.sched.step()
                if self.ema_model is not None:
                    self.ema_model.update_parameters(self.model)
                tot_loss += float(loss.detach()) * len(idx)
                tot_ok += int((logits.argmax(1) == y).sum())
                seen += len(idx)
                if b % 10 == 0 or b == steps - 1:
                    bar.set_postfix(loss=f"{tot_loss / seen:.4f}", acc=f"{tot_ok / seen:.4f}")
            bar.close()
            val_logits = predict_logits(self.evaluated, self.val_mem, aug, self.device)
            val_loss = float(F.cross_entropy(val_logits, self.val_mem.labels))
            val_acc = float((val_logits.argmax(1) == self.val_mem.labels).float().mean())
            dt = time.perf_counter() - t0
            self.elapsed += dt
            rec = {
                "epoch": epoch + 1,
                "train_loss": tot_loss / seen,
                "train_accuracy": tot_ok / seen,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": self.opt.param_groups[0]["lr"],
                "crop": crop or cfg.input_size,
                "seconds": round(dt, 1),
            }
            history.append(rec)
            improved = val_acc > best["val_accuracy"] or (val_acc == best["val_accuracy"] and val_loss < best["val_loss"])
            if improved:
                best = {
                    "epoch": epoch,
                    "val_accuracy": val_acc,
                    "val_loss": val_loss,
                    "state": {k: v.detach().cpu().clone() for k, v in self.evaluated.state_dict().items()},
                }
            self.log(
                f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.4f} | "
                f"val loss {val_loss:.4f} acc {val_acc:.4f}{' *best*' if improved else ''} | {dt:.1f} s"
            )
            self._save_state(epoch, history, best)
            if epoch - best["epoch"] >= cfg.patience:
                self.log(f"early stop: no validation improvement for {cfg.patience} epochs")
                stopped_early = True
                break
        return self.finish(history, best, n_params, stopped_early, aug)

    def finish(self, history: list[dict], best: dict, n_params: int, stopped_early: bool, aug: BatchAugment) -> Path:
        cfg = self.cfg
        if best.get("state") is None:
            raise AidetectError("training produced no checkpoint (0 epochs?)")
        last_weights_accuracy = None
        if self.ema_model is not None:  # what the weight average added over the last weights
            raw = predict_logits(self.model, self.val_mem, aug, self.device)
            last_weights_accuracy = float((raw.argmax(1) == self.val_mem.labels).float().mean())
        self.model.load_state_dict(best["state"])
        model = copy.deepcopy(self.model).to("cpu").eval()
        model = model.to(memory_format=torch.contiguous_format)
        val_logits = predict_logits(self.model, self.val_mem, aug, self.device)
        y = self.val_mem.labels.numpy()
        temp = calibration.fit_temperature(val_logits, self.val_mem.labels)
        p = calibration.prob_ai(val_logits, temp)
        threshold = calibration.fit_threshold(p, y)
        band, band_stats = calibration.fit_band(p, y, threshold, cfg.band_target_accuracy)
        ood_record: dict[str, Any] | None = None
        if cfg.ood and hasattr(model, "ood_layers"):
            from aidetect.trainer.ood import fit_ood

            self.log("fitting the out-of-distribution score on training features")
            ood_stats, ood_record = fit_ood(model, self.train_mem, self.val_mem, aug, cfg.seed)
        metrics: dict[str, Any] = {
            "validation": short(classification_metrics(p, y, threshold)),
            "validation_uncalibrated": short(classification_metrics(calibration.prob_ai(val_logits), y)),
            "uncertain_band": band_stats,
        }
        if cfg.evaluate_test:
            test_parts = [s for s in self.sources if "test" in s.splits]
            if test_parts:
                sel, rec = eval_selection(test_parts, "test")
                mem = decode_selection(sel, cfg.input_size, cfg.progress, "decode test")
                tl = predict_logits(self.model, mem, aug, self.device)
                m = classification_metrics(calibration.prob_ai(tl, temp), mem.labels.numpy(), threshold)
                metrics["test"] = {**short(m), "hash": rec["hash"], "sources": [s["name"] for s in rec["sources"]],
                                   "views": "one centre crop per image (aidetect evaluate scores as the product does)"}
                metrics["test_per_source"] = per_source_metrics(calibration.prob_ai(tl, temp), mem.labels.numpy(),
                                                                mem.groups, threshold)
                self.log(
                    "test: accuracy {accuracy:.4f}  AUC {roc_auc:.4f}  ECE {ece:.4f}  (n={n})".format(**m)
                )
        training_extra: dict[str, Any] = {}
        offset = 0
        if self.init_card is not None:
            prev = self.init_card.training
            prev_hist = [{**h, "stage": 1} for h in prev.get("history", [])]
            offset = len(prev_hist)
            history = prev_hist + [{**h, "epoch": h["epoch"] + len(prev_hist), "stage": 2} for h in history]
            training_extra = {
                "init_from": {"dir": str(self.cfg.init), "version": self.init_card.version,
                              "seconds": prev.get("seconds"), "epochs_run": prev.get("epochs_run"),
                              "config": prev.get("config")},
                "seconds_total": round(float(prev.get("seconds") or 0) + self.elapsed, 1),
            }
        classes: dict[str, str] = {}
        for s in self.sources:
            classes.update({str(s.value_names[v]): c for v, c in s.value_to_class.items()})
        card = ModelCard(
            architecture=cfg.arch,
            arch_kwargs=dict(cfg.arch_kwargs),
            input_size=cfg.input_size,
            source_classes=classes,
            mean=list(self.norm.mean),
            std=list(self.norm.std),
            temperature=round(temp, 6),
            threshold=threshold,
            uncertain_band=band,
            data=self.data_record,
            metrics=metrics,
            training={
                "epochs_run": len(history),
                "epochs_max": cfg.epochs,
                "best_epoch": best["epoch"] + 1 + offset,
                "stopped_early": stopped_early,
                "seconds": round(self.elapsed, 1),
                "parameters": n_params,
                "device": str(self.device),
                "threads": torch.get_num_threads(),
                "amp": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype is not None else None,
                "ema": cfg.ema or None,
                "val_accuracy_last_weights": last_weights_accuracy,
                "compiled": cfg.compile,
                "config": self.cfg.fingerprint(),
                "command": " ".join(["aidetect", *sys.argv[1:]]) if sys.argv and "aidetect" in sys.argv[0] else None,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "history": history,
                **training_extra,
            },
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        metrics["validation_per_source"] = per_source_metrics(p, y, self.val_mem.groups, threshold)
        if ood_record is not None:
            card.ood = ood_record
        out = save_model_dir(model, card, cfg.out)
        if ood_record is not None:
            from aidetect.model.ood import save_ood

            save_ood(ood_stats, out)
        self.log(
            f"saved {out} (version {card.version}): temperature {temp:.3f}, threshold {threshold}, "
            f"uncertain band {band}, best epoch {best['epoch'] + 1}, {self.elapsed:.0f} s training"
        )
        return out


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
    return Trainer(cfg).run()
