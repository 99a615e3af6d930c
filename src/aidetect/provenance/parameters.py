"""Recognise the generation settings that AI front-ends write into image metadata (prompt,
sampler, steps, seed, model), wherever they put them: Automatic1111-style ``parameters``
text, ComfyUI ``prompt``/``workflow`` graphs, InvokeAI and NovelAI JSON. Each recogniser
takes the text and returns a short phrase for the evidence line, or None when the text is
not in that tool's format (a keyword alone proves nothing)."""

from __future__ import annotations

import json
import re
from typing import Any

from aidetect.provenance.evidence import one_line

_A1111_STEPS = re.compile(r"(?:^|[\n,]\s*)Steps:\s*\d+")
_A1111_OTHER = re.compile(r"\b(?:Sampler|Seed|CFG scale):\s*\S")
_A1111_MODEL = re.compile(r"\bModel:\s*([^,\n]+)")
_DREAM = re.compile(r"(?:^|\s)-[sS]\s*\d+")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _model(name: object) -> str:
    return f", model {one_line(str(name), 60)}" if isinstance(name, str | int | float) and str(name).strip() else ""


def a1111(text: str) -> str | None:
    """``prompt\\nNegative prompt: ...\\nSteps: 20, Sampler: Euler a, Seed: 1, Model: x``."""
    if not (_A1111_STEPS.search(text) and _A1111_OTHER.search(text)):
        return None
    m = _A1111_MODEL.search(text)
    return "Automatic1111-style generation settings" + (_model(m.group(1).strip()) if m else "")


def comfy_prompt(text: str) -> str | None:
    """ComfyUI's API graph: ``{"3": {"class_type": "KSampler", "inputs": {...}}, ...}``."""
    graph = _json(text)
    if not isinstance(graph, dict) or not graph:
        return None
    nodes = [n for n in graph.values() if isinstance(n, dict) and isinstance(n.get("class_type"), str)]
    if not nodes:
        return None
    ckpt = next((n["inputs"].get("ckpt_name") for n in nodes
                 if isinstance(n.get("inputs"), dict) and n["inputs"].get("ckpt_name")), None)
    return f"ComfyUI node graph ({len(nodes)} nodes{_model(ckpt) if ckpt else ''})"


def comfy_workflow(text: str) -> str | None:
    """ComfyUI's editor workflow: ``{"nodes": [{"type": "KSampler", ...}], "links": [...]}``."""
    flow = _json(text)
    if not isinstance(flow, dict) or not isinstance(flow.get("nodes"), list):
        return None
    nodes = [n for n in flow["nodes"] if isinstance(n, dict) and "type" in n]
    return f"ComfyUI workflow ({len(nodes)} nodes)" if nodes else None


def invokeai(text: str) -> str | None:
    """InvokeAI 3+ ``invokeai_metadata``/``invokeai_graph`` and 2.x ``sd-metadata`` JSON."""
    meta = _json(text)
    if not isinstance(meta, dict) or not meta:
        return None
    model = meta.get("model")
    if isinstance(model, dict):
        model = model.get("model_name") or model.get("name")
    model = model or meta.get("model_weights")
    return "InvokeAI generation settings" + (_model(model) if model else "")


def dream(text: str) -> str | None:
    """The ``Dream`` chunk of early InvokeAI (lstein's dream.py): ``"prompt" -s 50 -S 42 ...``."""
    return "InvokeAI (dream) command line" if _DREAM.search(text) else None


def novelai_comment(text: str) -> str | None:
    """NovelAI's ``Comment``: JSON with the prompt, steps, sampler, seed, scale."""
    meta = _json(text)
    if not isinstance(meta, dict):
        return None
    keys = {"steps", "sampler", "seed"}
    if not keys <= meta.keys():
        return None
    return f"generation settings (sampler {one_line(str(meta['sampler']), 40)}, {one_line(str(meta['steps']), 10)} steps)"


def settings_json(text: str) -> str | None:
    """A JSON ``parameters`` object with steps and seed (Fooocus and other front-ends)."""
    meta = _json(text)
    if not isinstance(meta, dict):
        return None
    keys = {str(k).lower() for k in meta}
    if not {"steps", "seed"} <= keys:
        return None
    version = next((v for k, v in meta.items() if str(k).lower() == "version"), None)
    return "generation settings as JSON" + (f" (version {one_line(str(version), 40)})" if version else "")
