"""Would int8 matmuls make the CLIP branch fast enough, and at what cost to its verdict?

The shipped encoder's weights are int8 already (per output channel, zero point 0), so an int8
matmul uses them exactly; what int8 adds is the rounding of each linear layer's *input*. This
prints, in one run on this machine:

  (1) speed: CLIP's linear shapes (qkv, proj, fc1, fc2) at --images pictures x 197 tokens, 2
      threads: the product's bf16 / fp32 oneDNN linear (``mkldnn._linear_pointwise``), oneDNN's
      prepacked u8 x s8 linear with bf16 output (``onednn.qlinear_pointwise``, what an int8 CLIP
      would call), ``torch._int_mm``; and what the eager per-token quantisation of an input costs
      (a scale per row, then the rounding), which such a path would add per layer. Whether the
      oneDNN op takes one activation scale per row (per-token) is tried and its answer printed.
  (2) agreement: on --n real pictures per shared source (forrealscan, coco_sd, camera; CLIP's
      224 px centre view), the encoder's embedding and the default's CLIP probe logit under each
      activation scheme against the fp32 encoder: bf16 (the product's default, fused), int8 with a
      scale per token (symmetric, or asymmetric uint8), one uint8 scale per picture
      (onnxruntime's dynamic quantisation, the encoder's ``act_quant``), and one static scale per
      layer calibrated on a third of the pictures (what lets oneDNN fuse bias and activation).
      The probe logit is what the fusion head weighs; compare its changes with bf16's.

    python benchmarks/bench_clip_int8.py [--images 21] [--n 32] [--skip-agreement]

Results and what was concluded: docs/detector-v3.md, "Inference cost".
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AIDETECT_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO / "src"))

from aidetect.config import SHIPPED_MODEL_DIR  # noqa: E402
from aidetect.model.checkpoint import load_model_dir  # noqa: E402
from aidetect.model.clip import (  # noqa: E402
    INPUT_SIZE,
    PATCH,
    WIDTH,
    clip_resize_crop,
    fake_quant_uint8,
    load_clip_encoder,
    quantised_modules,
)
from aidetect.model.decode import load_image  # noqa: E402

TOKENS = (INPUT_SIZE // PATCH) ** 2 + 1  # 197: the patches and the class token
SHAPES = {"qkv": (WIDTH, 3 * WIDTH), "proj": (WIDTH, WIDTH), "fc1": (WIDTH, 4 * WIDTH), "fc2": (4 * WIDTH, WIDTH)}


def median_ms(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000


def per_token_quantise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 rows with one symmetric scale each: what an eager per-token int8 path must run."""
    scale = x.abs().amax(-1, keepdim=True).float().clamp_min(1e-8) / 127
    return (x / scale).round_().to(torch.int8), scale


def layer_times(m: int, k: int, n: int, bf16_ok: bool) -> dict[str, float]:
    """Median ms of one (m, k) x (k, n) linear layer each way (random data: the speed only)."""
    x, w, b = torch.randn(m, k), torch.randn(n, k) * 0.02, torch.zeros(n)
    xb, wb, bb = x.bfloat16(), w.bfloat16(), b.bfloat16()
    wq = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    packed = torch.ops.onednn.qlinear_prepack(wq, [m, k])
    w_scale, w_zp = torch.full((n,), 0.01), torch.zeros(n, dtype=torch.int64)
    xu = torch.randint(0, 256, (m, k), dtype=torch.uint8)
    xi, wt = torch.randint(-127, 128, (m, k), dtype=torch.int8), wq.t().contiguous()
    out_dtype = torch.bfloat16 if bf16_ok else torch.float32
    xin, out, row_scale = x.to(out_dtype), torch.randn(m, n).to(out_dtype), torch.rand(m, 1)
    nan = float("nan")
    return {
        "bf16": median_ms(lambda: torch.ops.mkldnn._linear_pointwise(xb, wb, bb, "none", [], "")) if bf16_ok else nan,
        "fp32": median_ms(lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")),
        "int8": median_ms(lambda: torch.ops.onednn.qlinear_pointwise.default(
            xu, 0.05, 128, packed, w_scale, w_zp, b, 1.0, 0, out_dtype, "none", [], "")),
        "int_mm": median_ms(lambda: torch._int_mm(xi, wt)),
        "quantise": median_ms(lambda: per_token_quantise(xin)),
        "rescale": median_ms(lambda: torch.addcmul(b.to(out_dtype), out, row_scale.to(out_dtype))),
    }


def per_row_scales_taken() -> str:
    """Whether oneDNN's int8 linear takes one activation scale per row (per-token)."""
    wq = torch.randint(-127, 128, (32, 64), dtype=torch.int8)
    packed = torch.ops.onednn.qlinear_prepack(wq, [8, 64])
    xu = torch.randint(0, 256, (8, 64), dtype=torch.uint8)
    try:
        torch.ops.onednn.qlinear_pointwise.tensor(xu, torch.rand(8), torch.zeros(8, dtype=torch.int32), packed,
                                                  torch.full((32,), 0.01), torch.zeros(32, dtype=torch.int64), None,
                                                  1.0, 0, torch.float32, "none", [], "")
    except RuntimeError as exc:
        return f"refused ({str(exc).splitlines()[0]})"
    return "taken"


def speed(images: int) -> None:
    m = images * TOKENS
    bf16_ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    base = "bf16" if bf16_ok else "fp32"
    print(f"\n## (1) linear layers of CLIP ViT-B/16 at {images} pictures ({m} tokens), {torch.get_num_threads()} "
          f"threads, median ms; ratios against {base}")
    print(f"{'layer':>5} | {'bf16':>6} | {'fp32':>6} | {'int8 onednn':>11} | {'_int_mm':>7} | {'quantise in':>11} "
          f"| {'rescale out':>11} | int8 / {base} | (int8 + quantise + rescale) / {base}")
    total = dict.fromkeys(("base", "int8", "extra"), 0.0)
    for name, (k, n) in SHAPES.items():
        t = layer_times(m, k, n, bf16_ok)
        total["base"] += t[base]
        total["int8"] += t["int8"]
        total["extra"] += t["quantise"] + t["rescale"]
        eager = t["int8"] + t["quantise"] + t["rescale"]
        print(f"{name:>5} | {t['bf16']:6.1f} | {t['fp32']:6.1f} | {t['int8']:11.1f} | {t['int_mm']:7.1f} "
              f"| {t['quantise']:11.1f} | {t['rescale']:11.1f} | {t['int8'] / t[base]:11.2f} | {eager / t[base]:.2f}")
    eager = total["int8"] + total["extra"]
    print(f"a block's four linears: {base} {total['base']:.1f} ms, int8 {total['int8']:.1f} ms "
          f"({total['int8'] / total['base']:.2f}); with the eager per-token quantisation of their inputs and "
          f"rescaling of their outputs {eager:.1f} ms ({eager / total['base']:.2f})")
    print(f"oneDNN's int8 linear, one activation scale per row (per-token): {per_row_scales_taken()}")


def fake_quant_per_token(x: torch.Tensor, asymmetric: bool) -> torch.Tensor:
    """``x`` rounded as an int8 path with a scale per token (row) would round it: asymmetric is
    onnxruntime's uint8 scheme (:func:`~aidetect.model.clip.fake_quant_uint8`) per row instead of
    per picture; symmetric is :func:`per_token_quantise`."""
    if asymmetric:
        return fake_quant_uint8(x.reshape(-1, x.shape[-1])).reshape(x.shape)
    q, scale = per_token_quantise(x)
    return (q * scale).to(x.dtype)


def shared_views(n: int) -> tuple[torch.Tensor, list[str]]:
    views, sources = [], []
    for source in ("forrealscan", "coco_sd", "camera"):
        files = sorted(p for p in (SHARED / source).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        random.Random(0).shuffle(files)
        for f in files[:n]:
            views.append(clip_resize_crop(load_image(f)).reshape(3, INPUT_SIZE, INPUT_SIZE))
            sources.append(source)
    return torch.stack(views), sources


def agreement(n: int) -> None:
    if not SHARED.is_dir():
        print(f"\n(2) skipped: {SHARED} is not here (the shared data; AIDETECT_SHARED_DATA)")
        return
    head, _card = load_model_dir(SHIPPED_MODEL_DIR)
    x, _ = shared_views(n)
    calibration, test = x[0::3], torch.cat([x[1::3], x[2::3]])
    encoder = load_clip_encoder().eval()
    layers = quantised_modules(encoder.vit)

    def embed(views: torch.Tensor, hook: Callable[..., tuple[torch.Tensor, ...]] | None = None,
              bf16: bool = False) -> torch.Tensor:
        handles = [m.register_forward_pre_hook(hook) for m in layers] if hook else []
        try:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return torch.cat([encoder(views[i:i + 32]) for i in range(0, len(views), 32)]).float()
        finally:
            for h in handles:
                h.remove()

    print(f"\n## (2) agreement with the fp32 encoder: {len(test)} shared pictures (forrealscan, coco_sd, camera; "
          f"{len(calibration)} others calibrate the static scales)")
    print(f"{'activations':>40} | cosine min / mean | probe logit |d| max / mean | sign flips")
    reference = embed(test)
    ref_logit = head.clip_logit(reference)
    print(f"(the probe logit over these pictures: std {ref_logit.std():.2f}, mean |logit| {ref_logit.abs().mean():.2f})")

    def row(name: str, e: torch.Tensor) -> None:
        cos = torch.nn.functional.cosine_similarity(e, reference)
        d = (head.clip_logit(e) - ref_logit).abs()
        flips = int(((head.clip_logit(e) > 0) != (ref_logit > 0)).sum())
        print(f"{name:>40} | {cos.min():.4f} / {cos.mean():.4f}   | {d.max():.3f} / {d.mean():.3f}"
              f"               | {flips}")

    ranges: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(layers)

    def calibrate(i: int) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            lo, hi = args[0].min().clamp(max=0), args[0].max().clamp(min=0)
            old = ranges[i]
            ranges[i] = (lo, hi) if old is None else (torch.minimum(old[0], lo), torch.maximum(old[1], hi))
        return hook

    def static(i: int) -> Callable[..., tuple[torch.Tensor, ...]]:
        def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            lo, hi = ranges[i]  # type: ignore[misc]
            scale = (hi - lo) / 255
            zp = (-lo / scale).round()
            return (((args[0] / scale + zp).round().clamp(0, 255) - zp) * scale, *args[1:])
        return hook

    row("int8, a scale per token, symmetric", embed(test, lambda m, a: (fake_quant_per_token(a[0], False), *a[1:])))
    row("uint8, a scale per token, asymmetric", embed(test, lambda m, a: (fake_quant_per_token(a[0], True), *a[1:])))
    encoder.set_act_quant(True)
    row("uint8, a scale per picture (onnxruntime)", embed(test))
    encoder.set_act_quant(False)
    handles = [m.register_forward_pre_hook(calibrate(i)) for i, m in enumerate(layers)]
    embed(calibration)
    for h in handles:
        h.remove()
    handles = [m.register_forward_pre_hook(static(i)) for i, m in enumerate(layers)]
    row("uint8, one static scale per layer", embed(test))
    for h in handles:
        h.remove()
    encoder.fuse_for_inference()
    row("bf16, fused (the product's default)", embed(test, bf16=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=21, help="pictures per batch through CLIP (21 of 32 in bench_inference)")
    ap.add_argument("--n", type=int, default=32, help="pictures per shared source for the agreement table")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-agreement", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"bf16 in oneDNN: {bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}")
    speed(args.images)
    if not args.skip_agreement:
        agreement(args.n)


if __name__ == "__main__":
    main()
