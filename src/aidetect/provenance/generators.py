"""The one list of AI image generators whose names appear in metadata (EXIF Software, XMP
CreatorTool, PNG text, C2PA claim generators and software agents), and how a name is
matched: case-insensitive patterns, most specific first, so "Stable Diffusion web UI"
is Automatic1111 and not Stable Diffusion."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Generator:
    name: str  # the name evidence reports
    patterns: tuple[str, ...]  # regular expressions, matched case-insensitively anywhere


GENERATORS: tuple[Generator, ...] = (
    Generator("Adobe Firefly", (r"adobe[\s_-]*firefly", r"\bfirefly\b")),
    Generator("ChatGPT (OpenAI)", (r"\bchat\s*gpt\b", r"\bgpt-?4o\b", r"\bgpt-image")),
    Generator("DALL·E (OpenAI)", (r"\bdall[\s·\-_.]?e\b",)),
    Generator("Midjourney", (r"\bmid\s*journey\b",)),
    Generator("ComfyUI", (r"\bcomfy\s*ui\b",)),
    Generator("Automatic1111", (r"automatic\s*1111", r"\ba1111\b", r"stable[\s_-]*diffusion[\s_-]*web\s*ui")),
    Generator("InvokeAI", (r"\binvoke[\s_-]*ai\b",)),
    Generator("Fooocus", (r"\bfooocus\b",)),
    Generator("NovelAI", (r"\bnovel\s*ai\b",)),
    Generator("Stable Diffusion XL", (r"\bsdxl\b", r"stable[\s_-]*diffusion[\s_-]*xl\b")),
    Generator("Stable Diffusion", (r"stable[\s_-]*diffusion", r"\bstability[\s_.-]*ai\b")),
    Generator("Imagen (Google)", (r"\bimagen\s*\d*\b",)),
    Generator("Gemini (Google)", (r"\bgemini\b",)),
    Generator("Ideogram", (r"\bideogram\b",)),
    Generator("Leonardo.Ai", (r"\bleonardo(\.ai|\s+ai)?\b",)),
    Generator("Flux (Black Forest Labs)", (r"\bflux(\.1)?\b", r"black\s*forest\s*labs")),
    Generator("OpenAI", (r"\bopen\s*ai\b",)),
)

_COMPILED = tuple((g.name, re.compile("|".join(f"(?:{p})" for p in g.patterns), re.IGNORECASE)) for g in GENERATORS)


def match_generator(text: str | None) -> str | None:
    """The name of the first generator in :data:`GENERATORS` that ``text`` names, or None."""
    if not text:
        return None
    sample = text[:4096]
    for name, pattern in _COMPILED:
        if pattern.search(sample):
            return name
    return None
