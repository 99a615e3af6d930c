"""Provenance: the evidence a file carries about where it came from (docs/provenance.md).

:func:`read_evidence` reads the file's bytes once, detects the format from them (never
from the name), finds the metadata blocks and hands each to its reader: C2PA manifests
(``c2pa-python``), XMP (IPTC digital source type, creator tool), EXIF (Pillow), PNG text
chunks of AI front-ends, and the Stable Diffusion invisible watermarks
(``invisible-watermark``). :func:`decide` is the one verdict policy on that evidence;
:data:`GENERATORS` is the one list of generator names.

Nothing in a file makes this raise: damaged, oversized or hostile metadata, and any
exception from a library, becomes an evidence item that says ``none`` or a note.

A core package: imports only the base modules and third-party libraries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from aidetect.provenance.c2pa_reader import read_c2pa
from aidetect.provenance.containers import Metadata, find_metadata, size_words
from aidetect.provenance.evidence import Evidence, Kind, Provenance, note, one_line
from aidetect.provenance.exif import read_exif
from aidetect.provenance.formats import sniff
from aidetect.provenance.generators import GENERATORS, Generator, match_generator
from aidetect.provenance.limits import MAX_FILE_BYTES
from aidetect.provenance.policy import decide
from aidetect.provenance.text_chunks import read_text_chunks
from aidetect.provenance.watermark import read_watermark
from aidetect.provenance.xmp import read_xmp

__all__ = [
    "GENERATORS",
    "Evidence",
    "Generator",
    "Provenance",
    "decide",
    "match_generator",
    "read_evidence",
]

Source = str | Path | bytes


def _read(source: Source) -> tuple[bytes | None, list[str]]:
    """The bytes (at most ``MAX_FILE_BYTES``), read once; or None and why not."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return None, [f"file could not be read ({exc.strerror or type(exc).__name__})"]
    notes = []
    if len(data) > MAX_FILE_BYTES:
        data = data[:MAX_FILE_BYTES]
        notes.append(f"file is over the {size_words(MAX_FILE_BYTES)} read cap: only its first "
                     f"{size_words(MAX_FILE_BYTES)} were read")
    return data, notes


def _guarded(kind: Kind, run: Callable[[], list[Evidence]]) -> list[Evidence]:
    """``run()``, with any exception a reader lets through as a note (never a crash)."""
    try:
        return run()
    except Exception as exc:
        return [note(kind, f"{kind} metadata could not be read ({type(exc).__name__}: {one_line(str(exc), 120)})")]


def read_evidence(
    source: Source, *, watermark: bool = True, c2pa_trust_anchors: str | None = None
) -> Provenance:
    """The provenance evidence of ``source`` (a path or the file's bytes).

    ``watermark``: also decode the pixels for the Stable Diffusion invisible watermarks
    (the costly part; see docs/provenance.md for measured costs).
    ``c2pa_trust_anchors``: PEM root certificates a C2PA signer must chain to for its
    manifest to validate as Trusted (the only way a capture manifest says real)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str, t0: float) -> float:
        now = time.perf_counter()
        timings[stage] = (now - t0) * 1000.0
        return now

    data, notes = _read(source)
    t = lap("read", started)
    if data is None:
        timings["total"] = (time.perf_counter() - started) * 1000.0
        return Provenance((), timings, tuple(notes), None)
    if not data:
        notes.append("file is empty")
    fmt = sniff(data)
    if fmt is None and data:
        notes.append("format not recognised from the first bytes: scanned for XMP and C2PA only")
    try:
        meta = find_metadata(data, fmt)
    except Exception as exc:  # the walkers check every length; this is the last guard
        meta = Metadata(problems=[(None, f"metadata could not be located ({type(exc).__name__}: {exc})")])
    problems: dict[str | None, list[Evidence]] = {}
    for kind, detail in meta.problems:
        if kind is None:
            notes.append(detail)
        else:
            problems.setdefault(kind, []).append(note(kind, detail))
    t = lap("container", t)

    evidence: list[Evidence] = []
    mime = fmt.mime if fmt else None
    if meta.c2pa_box:
        evidence += _guarded("c2pa", lambda: read_c2pa(data, mime, c2pa_trust_anchors))
    evidence += problems.get("c2pa", [])
    t = lap("c2pa", t)
    evidence += _guarded("xmp", lambda: read_xmp(meta.xmp)) + problems.get("xmp", [])
    t = lap("xmp", t)
    evidence += _guarded("exif", lambda: read_exif(meta.exif)) + problems.get("exif", [])
    t = lap("exif", t)
    evidence += _guarded("png-text", lambda: read_text_chunks(meta.text)) + problems.get("png-text", [])
    t = lap("png-text", t)
    if watermark and data:
        try:
            found, said = read_watermark(data)
        except Exception as exc:
            found, said = [note("watermark", f"watermark check failed ({type(exc).__name__}: {exc})")], []
        evidence += found
        notes += said
        lap("watermark", t)
    elif not watermark:
        notes.append("watermark check not asked for")
    timings["total"] = (time.perf_counter() - started) * 1000.0
    return Provenance(tuple(evidence), timings, tuple(notes), fmt.name if fmt else None)
