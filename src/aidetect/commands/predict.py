"""``aidetect predict IMAGE...``: score files directly (no database, no workers).

A table (rich) or ``--json`` (one result object per image, :mod:`aidetect.result`; the
heatmap files with ``--heatmap DIR``). A bad
file gets its own error row; the others are still scored; the exit code is 1 if any
failed. A missing or broken model, a bad setting, a device this machine lacks or a heatmap
folder that cannot be written is a one-line error with exit code 2, before anything is scored.

Nothing here imports torch before the arguments are parsed: ``--help`` and usage errors
are instant.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from aidetect.config import CAM_METHODS
from aidetect.errors import EXIT_SOME_FAILED, ConfigError

# torch's device types (``torch.device`` accepts these, optionally with ":N"); whether this
# machine has one is checked when the model loads (aidetect.inference.detector.select_device).
_DEVICE = re.compile(
    r"(cpu|cuda|mps|xpu|hip|hpu|ipu|mtia|maia|xla|lazy|vulkan|meta|mkldnn|opengl|opencl|ideep|ve|fpga|privateuseone)"
    r"(:\d+)?",
    re.IGNORECASE,
)


def _fmt_prob(p: float | None) -> str:
    return "" if p is None else f"{p:.3f}"


def _check_device(value: str | None) -> str | None:
    """``--device`` as torch spells it; one line (before torch is imported) for a name that
    is no torch device at all."""
    if value is None or not value.strip():
        return None
    if not _DEVICE.fullmatch(value.strip()):
        raise ConfigError(f"--device {value!r}: not a torch device; use cpu, cuda, cuda:N or mps")
    return value.strip().lower()


@click.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per image.")
@click.option(
    "--heatmap",
    "heatmap_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write Grad-CAM heatmaps (raw CAM + overlay PNG) into this folder.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory (default: AIDETECT_MODEL or the shipped model).",
)
@click.option(
    "--cam-method",
    type=click.Choice(CAM_METHODS, case_sensitive=False),
    default=None,
    help="Grad-CAM variant (default: AIDETECT_CAM_METHOD or gradcam).",
)
@click.option("--explain-other", is_flag=True, help="Explain the class that was NOT predicted.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=None, help="Images per pass.")
@click.option("--device", default=None,
              help="torch device: cpu, cuda, cuda:N, mps (default: cuda if available, else cpu).")
def predict(
    images: tuple[Path, ...],
    as_json: bool,
    heatmap_dir: Path | None,
    model_dir: Path | None,
    cam_method: str | None,
    explain_other: bool,
    batch_size: int | None,
    device: str | None,
) -> None:
    """Score IMAGE files: label, calibrated probability of AI, uncertain band."""
    from aidetect.config import ensure_writable_dir, get_settings

    get_settings()  # a bad setting is one line now, not after loading torch
    device = _check_device(device)
    if heatmap_dir is not None:  # checked before anything is scored
        ensure_writable_dir(heatmap_dir, "--heatmap")

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from aidetect.inference import Detector
    from aidetect.wording import branch_summary, word

    detector = Detector(model_dir=model_dir, device=device, cam_method=cam_method)
    size = batch_size or detector.settings.batch_size
    target = "other" if explain_other else "predicted"
    explain = heatmap_dir is not None
    paths = [str(p) for p in images]
    verdicts = []
    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=len(paths) <= size) as progress:
        task = progress.add_task("scoring", total=len(paths))
        for i in range(0, len(paths), size):
            chunk = paths[i : i + size]
            verdicts.extend(detector.classify(chunk, explain=explain, target=target, heatmap_dir=heatmap_dir))
            progress.advance(task, len(chunk))

    if as_json:
        click.echo(json.dumps([v.as_result() for v in verdicts], indent=2))
    else:
        table = Table(title=f"aidetect predict (model {detector.version})")
        table.add_column("path", overflow="fold")
        table.add_column("verdict")
        table.add_column("prob_ai", justify="right")
        table.add_column("uncertain")
        partly = any(v.seen is not None and v.seen < 0.995 for v in verdicts)
        if partly:  # a large photo seen through windows: how much of it the verdict rests on
            table.add_column("seen", justify="right")
        fused = any(v.branches for v in verdicts)
        if fused:  # a two-branch model: each branch's share of the decision
            table.add_column("branches")
        if heatmap_dir is not None:
            table.add_column("overlay", overflow="fold")
        table.add_column("error", overflow="fold")
        for v in verdicts:
            said = word(v.label, v.prob_ai, v.uncertain, v.uncertain_reason, v.decided_by)
            verdict = f"{said.headline} · {said.detail}" if said else "-"
            unc = "" if v.uncertain is None else (v.uncertain_reason or "yes") if v.uncertain else "no"
            row = [v.source, verdict, _fmt_prob(v.prob_ai), unc]
            if partly:
                row.append("" if v.seen is None else f"{v.seen * 100:.0f} %")
            if fused:
                row.append(branch_summary(v.branches))
            if heatmap_dir is not None:
                row.append(Path(v.overlay_path).name if v.overlay_path else "")
            row.append(v.error or "")
            table.add_row(*row)
        console = Console()
        if not console.is_terminal:
            console = Console(width=240)  # pipes and logs: do not fold paths
        console.print(table)
    failed = sum(1 for v in verdicts if v.error)
    if failed:
        click.echo(f"aidetect: {failed} of {len(verdicts)} image(s) failed", err=True)
        sys.stdout.flush()
        raise click.exceptions.Exit(EXIT_SOME_FAILED)
