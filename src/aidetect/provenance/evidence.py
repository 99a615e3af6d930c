"""What the provenance reader hands back: evidence items (one claim or one problem each) and
the :class:`Provenance` of one file (its items, what each stage cost, what was not read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["c2pa", "xmp", "exif", "png-text", "watermark"]
Says = Literal["ai", "real", "none"]
KINDS: tuple[str, ...] = ("c2pa", "xmp", "exif", "png-text", "watermark")
SAYS: tuple[str, ...] = ("ai", "real", "none")


@dataclass(frozen=True)
class Evidence:
    """One thing the file says about where it came from.

    ``says``: ``"ai"`` for a claim of AI generation, ``"real"`` only for a trusted C2PA
    capture manifest, ``"none"`` for anything else (camera EXIF, an untrusted capture
    claim, metadata that was damaged or over a cap). ``detail`` is one line in plain words.
    """

    kind: Kind
    says: Says
    generator: str | None
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown evidence kind {self.kind!r}")
        if self.says not in SAYS:
            raise ValueError(f"unknown evidence claim {self.says!r}")
        if "\n" in self.detail or "\r" in self.detail:
            raise ValueError("evidence detail must be one line")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "says": self.says, "generator": self.generator, "detail": self.detail}


def note(kind: Kind, detail: str) -> Evidence:
    """Evidence that says nothing: metadata that is there but damaged, refused or inconclusive."""
    return Evidence(kind, "none", None, one_line(detail))


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line (control characters and runs of white space as one space),
    cut to ``limit`` characters with an ellipsis."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if limit is not None and len(flat) > limit:
        flat = flat[: max(0, limit - 1)].rstrip() + "…"
    return flat


@dataclass(frozen=True)
class Provenance:
    """The provenance of one file: ``evidence`` in reading order (C2PA, XMP, EXIF, PNG text,
    watermark), ``timings`` in milliseconds per stage (and ``total``), ``notes`` on what was
    not read or checked and why, ``format`` as detected from the bytes (None: unknown)."""

    evidence: tuple[Evidence, ...]
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    format: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "evidence": [e.to_json() for e in self.evidence],
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": list(self.notes),
        }
