"""Which reduced-precision dtype to run a network in on a device (training and inference)."""

from __future__ import annotations

import torch

from aidetect.errors import AidetectError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. ``auto``: fp16 on CUDA; bf16 on a CPU whose oneDNN
    supports it (AVX512-BF16/AMX: 1.8x the fp32 training step and 1.9x the 512 px forward of
    the default here, docs/detector.md), else fp32 (a CPU without it only emulates bf16)."""
    key = (name or "auto").strip().lower()
    if key == "fp32":
        return None
    if key == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    if key in ("bf16", "fp16"):
        return torch.bfloat16 if key == "bf16" else torch.float16
    raise AidetectError(f"precision {name!r}: choose {', '.join(PRECISIONS)}")


def precision_name(dtype: torch.dtype | None) -> str:
    """'fp32', 'bf16' or 'fp16' for what :func:`pick_precision` returned."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
