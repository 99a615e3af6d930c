"""PNG text chunks (tEXt, zTXt, iTXt) that AI front-ends write: Automatic1111 and its forks
(``parameters``), ComfyUI (``prompt``, ``workflow``), InvokeAI (``invokeai_metadata``,
``invokeai_graph``, ``sd-metadata``, ``Dream``), NovelAI (``Software`` = "NovelAI",
``Comment`` JSON), Midjourney (``Description`` with its "Job ID"), and any ``Software`` or
``Source`` naming a known generator. A chunk under a known keyword but not in its tool's
format is a note (says nothing); unknown keywords are ignored."""

from __future__ import annotations

import re
from collections.abc import Callable

from aidetect.provenance import parameters
from aidetect.provenance.containers import TextChunk
from aidetect.provenance.evidence import Evidence, note, one_line
from aidetect.provenance.generators import match_generator
from aidetect.provenance.limits import MAX_QUOTE_CHARS

_MIDJOURNEY_JOB = re.compile(r"\bJob ID:\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)

# keyword (lower case) -> (recogniser, the generator it means)
_FORMATS: dict[str, tuple[Callable[[str], str | None], str]] = {
    "prompt": (parameters.comfy_prompt, "ComfyUI"),
    "workflow": (parameters.comfy_workflow, "ComfyUI"),
    "invokeai_metadata": (parameters.invokeai, "InvokeAI"),
    "invokeai_graph": (parameters.invokeai, "InvokeAI"),
    "sd-metadata": (parameters.invokeai, "InvokeAI"),
    "dream": (parameters.dream, "InvokeAI"),
}


def _parameters(text: str) -> tuple[str, str | None] | None:
    """``parameters``: A1111 text (Automatic1111 and the forks that copy its format), or JSON
    settings (Fooocus and others; the generator when the JSON names one we know)."""
    found = parameters.a1111(text)
    if found:
        return found, "Automatic1111"
    found = parameters.settings_json(text)
    if found:
        return found, match_generator(text)
    return None


def read_text_chunks(chunks: list[TextChunk]) -> list[Evidence]:
    by_key: dict[str, TextChunk] = {}
    for c in chunks:
        by_key.setdefault(c.keyword.lower(), c)
    out: list[Evidence] = []
    software = by_key.get("software")
    software_generator = match_generator(software.text) if software else None
    for key, chunk in by_key.items():
        where = f"PNG text {chunk.keyword!r}"
        if key == "parameters":
            hit = _parameters(chunk.text)
            if hit:
                out.append(Evidence("png-text", "ai", hit[1], f"{where}: {hit[0]}"))
            else:
                out.append(note("png-text", f"{where} is not in any generator's format"))
        elif key in _FORMATS:
            recognise, generator = _FORMATS[key]
            found = recognise(chunk.text)
            if found:
                out.append(Evidence("png-text", "ai", generator, f"{where}: {found}"))
            else:
                out.append(note("png-text", f"{where} is not in {generator}'s format"))
        elif key in ("software", "source"):
            named = match_generator(chunk.text)
            if named:
                said = one_line(chunk.text, MAX_QUOTE_CHARS)
                out.append(Evidence("png-text", "ai", named, f"{where} names an AI generator: {said}"))
        elif key == "comment":
            found = parameters.novelai_comment(chunk.text)
            if found:  # NovelAI's format; the generator is what its Software chunk names
                out.append(Evidence("png-text", "ai", software_generator, f"{where}: {found}"))
        elif key == "description" and _MIDJOURNEY_JOB.search(chunk.text):
            out.append(Evidence("png-text", "ai", "Midjourney", f"{where} carries a Midjourney Job ID"))
    return out
