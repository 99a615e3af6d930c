"""The training options, written once: each :class:`TrainConfig` field that carries a
:class:`Cli` in its metadata is also an ``aidetect train`` option (``aidetect.commands.train``
builds the click options from these fields). Torch-free, so ``aidetect train --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from aidetect.errors import AidetectError, DataSourceError

CLI = "cli"  # the metadata key of a field's Cli

DATA_HELP = (
    "Data source, repeatable: a Hugging Face hub id (default "
    "Hemg/AI-Generated-vs-Real-Images-Datasets), a .parquet file or folder of parquet files "
    "(hub layout), an image folder with one sub-folder per class, or a save_to_disk folder. "
    "NAME=SPEC names it (its group in reports)."
)
LABEL_MAP_HELP = "Map a class name of the data to real or ai, e.g. --label-map Photos=real (repeatable)."
GROUP_SPLIT_HELP = (
    "TRAIN,VAL,TEST shares (e.g. 70,15,15) for sources that come as one split: divided by a hash of each "
    "image's source picture (an image folder's MANIFEST.csv source_path, or its camera model), the same in "
    "train and evaluate."
)


@dataclass(frozen=True)
class Cli:
    """How a config field appears on the command line. The option is ``--field-name`` unless
    ``flag`` says otherwise; a bool field is a flag; the type comes from the field's annotation
    unless ``type`` (a click type) is given; a field without a default is a required option.
    ``parse`` turns the command-line value (a tuple for ``multiple``) into the field's value,
    raising ValueError for a usage error; ``show`` writes the field's default as it is typed."""

    help: str | None = None
    flag: str | None = None
    type: Any = None
    metavar: str | None = None
    multiple: bool = False
    parse: Callable[[Any], Any] | None = None
    show: Callable[[Any], str] | None = None


def option(default: Any = MISSING, *, factory: Any = MISSING, **cli: Any) -> Any:
    """A dataclass field that is also a command-line option (``cli``: the :class:`Cli` arguments)."""
    return field(default=default, default_factory=factory, metadata={CLI: Cli(**cli)})


def parse_arch_kwargs(items: tuple[str, ...]) -> dict[str, Any]:
    """``("widths=[16,32,64]", ...)`` -> ``{"widths": [16, 32, 64]}``: each value is JSON."""
    kwargs = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AidetectError(f"--arch-kw {item!r}: the value must be JSON") from exc
    return kwargs


def parse_quality_range(text: str) -> tuple[int, int]:
    """``"30-100"`` -> (30, 100); ``"75"`` -> (75, 75)."""
    lo, sep, hi = text.partition("-")
    try:
        q = (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError:
        raise ValueError(f"{text!r}: expected LO-HI, e.g. 30-100") from None
    if not 1 <= q[0] <= q[1] <= 100:
        raise ValueError(f"{text!r}: qualities from 1 to 100, LO <= HI")
    return q


def format_quality_range(q: tuple[int, int]) -> str:
    """(60, 95) -> ``"60-95"``, as :func:`parse_quality_range` reads it."""
    return f"{q[0]}-{q[1]}"


def parse_group_shares(text: str) -> tuple[float, float, float]:
    """``"70,15,15"`` -> normalised train, validation and test shares (ValueError if malformed)."""
    from aidetect.trainer.sources import parse_group_split

    try:
        return parse_group_split(text)
    except DataSourceError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


# the click types of options checked at parse time
_SHARE = click.FloatRange(0.0, 1.0)
_DECAY = click.FloatRange(0.0, 1.0, max_open=True)
_COUNT = click.IntRange(min=0)


@dataclass(kw_only=True)
class TrainConfig:
    """Everything a training run depends on; the fields with a ``cli`` are ``aidetect train``'s options."""

    data: list[str] = option(help=DATA_HELP, metavar="SOURCE", multiple=True)
    label_map: list[str] = option(factory=list, help=LABEL_MAP_HELP, metavar="NAME=real|ai", multiple=True)
    out: Path = option(help="Model directory to write (model.safetensors + card.json).",
                       type=click.Path(file_okay=False, path_type=Path))
    arch: str = option("npr_resnet", help="Architecture (see aidetect.model.list_models).")
    arch_kwargs: dict[str, Any] = option(
        factory=dict, flag="--arch-kw", metavar="KEY=JSON", multiple=True, parse=parse_arch_kwargs,
        help="Architecture argument, e.g. --arch-kw 'widths=[16,32,64]'.")
    input_size: int = option(32)
    epochs: int = option(12)
    batch_size: int = option(128)
    lr: float = option(3e-3, help="Peak learning rate (one-cycle).")
    weight_decay: float = option(5e-4)
    label_smoothing: float = option(
        0.0, type=_DECAY,
        help="Cross-entropy label smoothing (the temperature fitted afterwards undoes its effect on confidences).")
    patience: int = option(4, help="Early stopping: epochs without improvement.")
    seed: int = option(0)
    val_fraction: float = option(0.1, help="Validation share when a source has no validation split (seeded, stratified).")
    max_train: int | None = option(None, help="Use at most this many training images (stratified).")
    jpeg_p: float = option(0.3, help="Share of training images JPEG-recompressed.")
    blur_p: float = option(0.1, help="Share of training images blurred.")
    grayscale_p: float = option(0.05, help="Share of training images made gray.")
    jpeg_quality: tuple[int, int] = option(
        (60, 95), parse=parse_quality_range, show=format_quality_range,
        help="Quality range LO-HI of the JPEG (and WebP) re-encoding.")
    jpeg_chroma: bool = option(
        False, help="Re-encode JPEGs with Pillow at a random chroma subsampling (4:4:4, 4:2:2, 4:2:0).")
    webp_p: float = option(0.0, type=_SHARE, help="Share of training crops re-encoded as WebP.")
    noise_p: float = option(0.0, type=_SHARE, help="Share of training crops with Gaussian noise (sigma 1-6 levels).")
    downscale_p: float = option(
        0.0, type=_SHARE,
        help="Share of crops of large images taken as if the image were first downscaled by a random factor.")
    downscale_min: float = option(0.25, type=click.FloatRange(0.0, 1.0, min_open=True),
                                  help="Smallest downscale factor (never below the crop size).")
    group_split: tuple[float, float, float] | None = option(
        None, metavar="TRAIN,VAL,TEST", parse=parse_group_shares, help=GROUP_SPLIT_HELP)
    balance: bool = option(
        False, help="Draw each epoch so that each class is half and each source an equal share of its class.")
    device: str | None = option(None, help="cpu, cuda, cuda:1 ... (default: cuda when available).")
    threads: int | None = option(None, help="torch CPU threads (default: torch's choice).")
    precision: str = option(
        "auto", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
        help="Autocast dtype of training steps. auto: fp16 on CUDA, bf16 on CPUs with AVX512-BF16/AMX, else fp32.")
    ema: float = option(
        0.0, type=_DECAY,
        help="Keep an exponential moving average of the weights with this decay (e.g. 0.999); 0 = off.")
    compile: bool = option(
        False, help="torch.compile the training step (about 1.1x faster on CPU after a ~10-30 s warm-up).")
    optimizer: str = option(
        "adamw", type=click.Choice(["adamw", "sgd"]),
        help="adamw, or sgd with Nesterov momentum 0.9 (weight decay on conv/linear weights only).")
    small_crop: int = option(
        0, type=_COUNT,
        help="Progressive resizing: train the first --small-crop-epochs on random crops of this size "
             "(fewer pixels per step, same scale), then at --input-size. 0 = off.")
    small_crop_epochs: int = option(0, type=_COUNT, help="Epochs trained on --small-crop crops.")
    crop_grid: int = option(
        0, type=_COUNT,
        help="0: random crops move freely over reflect-padded images (CIFAR-style translation). "
             "8: crops start at multiples of 8 inside the image, keeping the JPEG block grid in place.")
    grid_pad: int = option(
        0, type=_COUNT,
        help="With --crop-grid: mirror model-size images by this many pixels (a multiple of the grid) so "
             "full-size crops still move, on the grid (mirrored JPEG blocks are JPEG blocks). 0 = off.")
    init: Path | None = option(
        None, type=click.Path(path_type=Path),
        help="Start from this model directory's weights (fine-tune; same --arch; --arch-kw may add parts, "
             "e.g. dct_stats: weights that fit are taken, a grown head starts with zeros for its new inputs).")
    freeze_init: bool = option(
        False,
        help="With --init: keep the weights taken from it fixed (BatchNorm statistics included); train only the new parts.")
    resume: bool = option(False, help="Continue an interrupted run in --out with the same options.")
    # not command-line options
    progress: bool = True  # progress bars and log lines (``aidetect train --quiet`` turns them off)
    band_target_accuracy: float = 0.99  # accuracy outside the uncertain band that calibration aims for
    evaluate_test: bool = True  # measure the kept weights on the sources' test splits
    ood: bool = True  # fit the out-of-distribution score on the network's features (models with embed())

    def __post_init__(self) -> None:
        """Refuse combinations of options that cannot train, before anything is loaded."""
        if self.small_crop and not (8 <= self.small_crop < self.input_size and self.small_crop % 2 == 0):
            raise AidetectError(
                f"--small-crop {self.small_crop}: must be an even size from 8 to below --input-size {self.input_size}"
            )
        if self.freeze_init and self.init is None:
            raise AidetectError("--freeze-init needs --init")
        if self.grid_pad and (not self.crop_grid or self.grid_pad % self.crop_grid):
            raise AidetectError(
                f"--grid-pad {self.grid_pad}: needs --crop-grid and must be a multiple of it (--crop-grid {self.crop_grid})"
            )
        if not 0.0 < self.downscale_min <= 1.0:
            raise AidetectError(f"--downscale-min {self.downscale_min}: must be in (0, 1]")

    def fingerprint(self) -> dict[str, Any]:
        """The options that decide what is trained (the card's ``training.config``; a resumed
        run must match it)."""
        d = asdict(self)
        for k in ("out", "resume", "progress", "threads", "device", "patience", "evaluate_test", "precision",
                  "compile"):
            d.pop(k)
        return json.loads(json.dumps(d, default=str))
