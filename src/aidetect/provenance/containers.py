"""Find the metadata blocks in a file's bytes: EXIF, XMP packets, PNG text chunks and whether
a C2PA (JUMBF) box is there. Walks JPEG segments, PNG chunks and WebP (RIFF) chunks with
every length checked against the bytes that are there; other formats get a bounded scan for
an XMP packet. Nothing is decompressed past the caps in :mod:`aidetect.provenance.limits`;
whatever is damaged or over a cap is listed in ``problems``, never raised."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from aidetect.provenance.evidence import Kind
from aidetect.provenance.formats import Format
from aidetect.provenance.limits import (
    MAX_CHUNKS,
    MAX_EXIF_BYTES,
    MAX_TEXT_CHUNK_BYTES,
    MAX_TEXT_TOTAL_BYTES,
    MAX_XMP_BYTES,
    MiB,
)

XMP_KEYWORD = "XML:com.adobe.xmp"
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_EXIF = b"Exif\x00\x00"


@dataclass(frozen=True)
class TextChunk:
    """A PNG tEXt, zTXt or iTXt chunk: its keyword and its text (decoded, decompressed)."""

    keyword: str
    text: str
    chunk: str


@dataclass
class Metadata:
    exif: list[bytes] = field(default_factory=list)
    xmp: list[bytes] = field(default_factory=list)
    text: list[TextChunk] = field(default_factory=list)
    c2pa_box: bool = False
    # (kind the problem is evidence about, or None for a note on the container; one line)
    problems: list[tuple[Kind | None, str]] = field(default_factory=list)


def size_words(n: int) -> str:
    """A byte count in plain words: "812 bytes", "3.4 KB", "50.0 MB"."""
    if n < 1024:
        return f"{n} bytes"
    if n < MiB:
        return f"{n / 1024:.1f} KB"
    return f"{n / MiB:.1f} MB"


def find_metadata(data: bytes, fmt: Format | None) -> Metadata:
    meta = Metadata()
    if fmt is None:
        _scan_generic(data, meta)
    elif fmt.name == "jpeg":
        _walk_jpeg(data, meta)
    elif fmt.name == "png":
        _walk_png(data, meta)
    elif fmt.name == "webp":
        _walk_webp(data, meta)
    else:
        if fmt.name == "tiff":
            meta.exif.append(data)  # a TIFF file is its own EXIF structure
        _scan_generic(data, meta)
    return meta


def _add_capped(meta: Metadata, kind: str, blob: bytes, where: str) -> None:
    """Keep an XMP packet or EXIF block for its reader, or note that it is over its cap."""
    name, cap, into = {"xmp": ("XMP packet", MAX_XMP_BYTES, meta.xmp), "exif": ("EXIF block", MAX_EXIF_BYTES, meta.exif)}[kind]
    if len(blob) > cap:
        meta.problems.append(
            (kind, f"{name} in {where} is {size_words(len(blob))}, over the {size_words(cap)} cap: not read")
        )
    else:
        into.append(blob)


# --- JPEG -------------------------------------------------------------------------------

_JPEG_KIND: dict[int, Kind] = {0xE1: "exif", 0xEB: "c2pa"}


def _walk_jpeg(data: bytes, meta: Metadata) -> None:
    n, pos = len(data), 2
    for _ in range(MAX_CHUNKS):
        if pos >= n:
            meta.problems.append((None, "JPEG ends before its image data (truncated file)"))
            return
        if data[pos] != 0xFF:
            meta.problems.append((None, f"JPEG segment marker expected at byte {pos}: stopped reading metadata"))
            return
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            return
        marker = data[pos]
        pos += 1
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: metadata comes before
            return
        if pos + 2 > n:
            meta.problems.append((None, "JPEG ends inside a segment header (truncated file)"))
            return
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if length < 2:
            meta.problems.append((None, f"JPEG segment at byte {pos} has an impossible length"))
            return
        if marker == 0xEB:
            meta.c2pa_box = True  # JUMBF: c2pa reads it itself and says what is wrong
        if end > n:
            head = data[pos + 2 : pos + 2 + len(_JPEG_XMP)]
            kind: Kind | None = "xmp" if head.startswith(_JPEG_XMP) else _JPEG_KIND.get(marker) if marker != 0xEB else None
            meta.problems.append((kind, f"JPEG segment 0x{marker:02X} is cut short (truncated file)"))
            return
        payload = data[pos + 2 : end]
        if marker == 0xE1 and payload.startswith(_JPEG_EXIF):
            _add_capped(meta, "exif", payload, "JPEG APP1")
        elif marker == 0xE1 and payload.startswith(_JPEG_XMP):
            _add_capped(meta, "xmp", payload[len(_JPEG_XMP) :], "JPEG APP1")
        pos = end
    meta.problems.append((None, f"JPEG has more than {MAX_CHUNKS} segments: stopped reading metadata"))


# --- PNG --------------------------------------------------------------------------------

_PNG_KIND: dict[bytes, Kind] = {b"tEXt": "png-text", b"zTXt": "png-text", b"iTXt": "png-text", b"eXIf": "exif"}


def _inflate(raw: bytes, cap: int) -> bytes | None:
    """zlib-decompress ``raw`` to at most ``cap`` bytes; None when it would be more."""
    d = zlib.decompressobj()
    out = d.decompress(raw, cap + 1)
    if len(out) > cap or d.unconsumed_tail:
        return None
    return out


def _walk_png(data: bytes, meta: Metadata) -> None:
    n, pos, text_total = len(data), 8, 0
    for _ in range(MAX_CHUNKS):
        if pos == n:
            meta.problems.append((None, "PNG ends without an IEND chunk (truncated file)"))
            return
        if pos + 8 > n:
            meta.problems.append((None, "PNG ends inside a chunk header (truncated file)"))
            return
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        start, end = pos + 8, pos + 8 + length
        name = ctype.decode("latin-1")
        if length > 0x7FFFFFFF or end + 4 > n:
            kind = _PNG_KIND.get(ctype, "c2pa" if ctype == b"caBX" else None)
            meta.problems.append((kind, f"PNG {name!r} chunk runs past the end of the file (truncated or malformed)"))
            return
        if ctype == b"IEND":
            return
        if ctype == b"caBX":
            meta.c2pa_box = True
        elif ctype in _PNG_KIND:
            body = data[start:end]
            crc = int.from_bytes(data[end : end + 4], "big")
            if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
                meta.problems.append((_PNG_KIND[ctype], f"PNG {name} chunk fails its CRC check (damaged): not read"))
            elif ctype == b"eXIf":
                _add_capped(meta, "exif", body, "PNG eXIf")
            else:
                text_total += _png_text(ctype, body, meta, MAX_TEXT_TOTAL_BYTES - text_total)
        pos = end + 4
    meta.problems.append((None, f"PNG has more than {MAX_CHUNKS} chunks: stopped reading metadata"))


def _png_text(ctype: bytes, body: bytes, meta: Metadata, budget: int) -> int:
    """Parse one text chunk into ``meta``; returns the bytes of text it took from the budget."""
    name = ctype.decode("latin-1")
    sep = body.find(b"\x00", 0, 80)
    if sep < 1:
        meta.problems.append(("png-text", f"PNG {name} chunk has no keyword: not read"))
        return 0
    keyword = body[:sep].decode("latin-1")
    rest = body[sep + 1 :]
    compressed, encoding = ctype == b"zTXt", "latin-1"
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            meta.problems.append(("png-text", f"PNG zTXt chunk {keyword!r} uses an unknown compression: not read"))
            return 0
        rest = rest[1:]
    elif ctype == b"iTXt":
        parts = rest[2:].split(b"\x00", 2)
        if len(rest) < 2 or len(parts) < 3 or rest[1] != 0:
            meta.problems.append(("png-text", f"PNG iTXt chunk {keyword!r} is malformed: not read"))
            return 0
        compressed, encoding, rest = rest[0] == 1, "utf-8", parts[2]
    is_xmp = keyword == XMP_KEYWORD
    cap = MAX_XMP_BYTES if is_xmp else min(MAX_TEXT_CHUNK_BYTES, max(budget, 0))
    if compressed:
        try:
            raw = _inflate(rest, cap)
        except zlib.error as exc:
            meta.problems.append(("xmp" if is_xmp else "png-text",
                                  f"PNG {name} chunk {keyword!r} does not decompress ({exc}): not read"))
            return 0
        if raw is None:
            what = "XMP packet" if is_xmp else f"PNG {name} chunk {keyword!r}"
            if not is_xmp and cap < MAX_TEXT_CHUNK_BYTES:
                detail = f"{what} is over the text cap for the whole file: not read"
            else:
                detail = f"{what} decompresses to more than the {size_words(cap)} cap (possible decompression bomb): not read"
            meta.problems.append(("xmp" if is_xmp else "png-text", detail))
            return 0
    else:
        raw = rest
    if is_xmp:
        _add_capped(meta, "xmp", raw, f"PNG {name}")
        return 0
    if len(raw) > cap:
        over = "the text cap for the whole file" if cap < MAX_TEXT_CHUNK_BYTES else f"the {size_words(cap)} cap"
        meta.problems.append(("png-text", f"PNG {name} chunk {keyword!r} is {size_words(len(raw))}, over {over}: not read"))
        return 0
    meta.text.append(TextChunk(keyword, raw.decode(encoding, errors="replace"), name))
    return len(raw)


# --- WebP -------------------------------------------------------------------------------


_WEBP_KIND: dict[bytes, Kind] = {b"EXIF": "exif", b"XMP ": "xmp", b"C2PA": "c2pa"}


def _walk_webp(data: bytes, meta: Metadata) -> None:
    n, pos = len(data), 12
    for _ in range(MAX_CHUNKS):
        if pos + 8 > n:
            if pos < n:
                meta.problems.append((None, "WebP ends inside a chunk header (truncated file)"))
            return
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        start, end = pos + 8, pos + 8 + size
        if fourcc == b"C2PA":
            meta.c2pa_box = True
        if end > n:
            kind = _WEBP_KIND.get(fourcc)
            meta.problems.append((kind, f"WebP {fourcc.decode('latin-1')!r} chunk runs past the end of the file (truncated)"))
            return
        if fourcc == b"EXIF":
            _add_capped(meta, "exif", data[start:end], "WebP EXIF")
        elif fourcc == b"XMP ":
            _add_capped(meta, "xmp", data[start:end], "WebP XMP")
        pos = end + (size & 1)
    meta.problems.append((None, f"WebP has more than {MAX_CHUNKS} chunks: stopped reading metadata"))


# --- anything else ----------------------------------------------------------------------


def _scan_generic(data: bytes, meta: Metadata) -> None:
    """An XMP packet anywhere in the bytes (GIF, TIFF, HEIF, AVIF keep it in different
    boxes; the packet itself is plain text), and whether a C2PA JUMBF box is there."""
    start = data.find(b"<x:xmpmeta")
    if start >= 0:
        end = data.find(b"</x:xmpmeta>", start)
        if end < 0:
            meta.problems.append(("xmp", "XMP packet has no end (truncated or malformed): not read"))
        else:
            _add_capped(meta, "xmp", data[start : end + len(b"</x:xmpmeta>")], "the file")
    if data.find(b"jumb") >= 0 and data.find(b"c2pa") >= 0:
        meta.c2pa_box = True
