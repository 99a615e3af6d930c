"""Training-step throughput of a network (default: the shipped default architecture) on 32 px
inputs, images/s for one AdamW step (forward, loss, backward, update), under each setting
the trainer can run with:

  precision   fp32 | bf16 (CPU autocast; needs AVX512-BF16/AMX in oneDNN)
  compile     eager | torch.compile
  OpenMP      PASSIVE (what `aidetect train` sets by default) | ACTIVE (spinning threads)

OMP_WAIT_POLICY is read when torch starts, so every setting runs in its own subprocess.
Ratios are against fp32 / eager / PASSIVE. One 40k-image CIFAKE epoch takes 40,000 / rate
seconds of steps, plus ~2 s of validation and <1 s of augmentation.

    python benchmarks/bench_train.py                       # default arch, 2 threads, batch 128
    python benchmarks/bench_train.py --arch seed --steps 20

Prints the load average before and after: on a shared machine the figures are not idle ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def measure(arch: str, kw: dict, precision: str, compile_: bool, threads: int, batch: int, steps: int) -> float:
    """Run inside the subprocess: images/s of the training step."""
    import torch
    import torch.nn.functional as F

    from aidetect.model import create_model

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = create_model(arch, **kw).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compile_ else model
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=None, help="registered architecture (default: the shipped model's)")
    ap.add_argument("--arch-kw", default=None, help="JSON (default: the shipped model's arguments for its arch, else {})")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    from aidetect.config import SHIPPED_MODEL_DIR
    from aidetect.model import ModelCard

    shipped = ModelCard.load(SHIPPED_MODEL_DIR)
    args.arch = args.arch or shipped.architecture
    kw = json.loads(args.arch_kw) if args.arch_kw else (shipped.arch_kwargs if args.arch == shipped.architecture else {})
    if args.child:
        precision, comp = args.child.split(",")
        print(measure(args.arch, kw, precision, comp == "compile", args.threads, args.batch, args.steps))
        return

    import torch

    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"{args.arch} {kw}, batch {args.batch}, {args.threads} threads, {args.steps} steps; "
          f"CPU bf16 support: {bf16}; load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    for omp in ("PASSIVE", "ACTIVE"):
        for precision in ("fp32", "bf16") if bf16 else ("fp32",):
            for comp in ("eager", "compile"):
                env = {**os.environ, "OMP_WAIT_POLICY": omp, "TORCHINDUCTOR_CACHE_DIR": str(REPO / "build" / "inductor")}
                cmd = [sys.executable, __file__, "--arch", args.arch, "--arch-kw", json.dumps(kw),
                       "--threads", str(args.threads), "--batch", str(args.batch), "--steps", str(args.steps),
                       "--child", f"{precision},{comp}"]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{omp} {precision} {comp}: failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                rows.append((omp, precision, comp, float(out.stdout.strip().splitlines()[-1])))
    base = next((r[3] for r in rows if r[:3] == ("PASSIVE", "fp32", "eager")), None)
    print(f"{'OpenMP':8} {'precision':9} {'mode':8} {'img/s':>8} {'ratio':>6} {'s/40k epoch':>12}")
    for omp, precision, comp, rate in rows:
        ratio = f"{rate / base:.2f}" if base else "-"
        print(f"{omp:8} {precision:9} {comp:8} {rate:8.0f} {ratio:>6} {40000 / rate:12.1f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
