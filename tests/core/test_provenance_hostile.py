"""aidetect.provenance never trusts the bytes: truncated or garbled C2PA/JUMBF, oversize and
entity-laden XMP, huge and bomb text chunks, malformed chunks and segments, damaged EXIF,
decompression bombs, truncated and bit-flipped files. Each becomes an evidence note (says
"none") or a note, never an exception and never an AI or real claim."""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import provenance_fixtures as fx  # noqa: E402
from images import bomb_png  # noqa: E402

import aidetect.provenance as provenance  # noqa: E402
from aidetect.provenance import Provenance, decide, read_evidence  # noqa: E402
from aidetect.provenance.limits import (  # noqa: E402
    MAX_TEXT_CHUNK_BYTES,
    MAX_TEXT_TOTAL_BYTES,
    MAX_XMP_BYTES,
    MiB,
)


def notes_of(p: Provenance, kind: str) -> list[str]:
    return [e.detail for e in p.evidence if e.kind == kind and e.says == "none"]


def assert_no_claim(p: Provenance) -> None:
    assert all(e.says == "none" for e in p.evidence), p.to_json()
    assert decide(p) == ("model", None)
    json.dumps(p.to_json())  # strict, serialisable


@pytest.fixture(scope="module")
def signed_jpeg() -> bytes:
    return fx.c2pa_sign(fx.encode(fx.pixels(), "JPEG", quality=90), "image/jpeg",
                        fx.manifest("trainedAlgorithmicMedia", "ChatGPT", "GPT-4o"), fx.make_pki())


# --- C2PA / JUMBF -------------------------------------------------------------------------


def test_jpeg_cut_inside_the_c2pa_box(signed_jpeg: bytes) -> None:
    pos, length = fx.jpeg_segment(signed_jpeg, 0xEB)
    p = read_evidence(signed_jpeg[: pos + 4 + length // 2])
    assert notes_of(p, "c2pa"), p.to_json()
    assert any("could not be read" in d for d in notes_of(p, "c2pa"))
    assert_no_claim(p)


@pytest.mark.parametrize("damage", ["garbled", "half-payload"])
def test_damaged_jumbf_box(signed_jpeg: bytes, damage: str) -> None:
    pos, length = fx.jpeg_segment(signed_jpeg, 0xEB)
    data = bytearray(signed_jpeg)
    if damage == "garbled":
        data[pos + 12 : pos + 60] = bytes(48)
    else:  # half the payload gone, the segment length left as it was
        del data[pos + 4 + length // 4 : pos + 4 + length // 2]
    p = read_evidence(bytes(data), watermark=False)
    assert notes_of(p, "c2pa"), p.to_json()
    assert_no_claim(p)


def test_png_cut_inside_its_cabx_chunk() -> None:
    signed = fx.c2pa_sign(fx.encode(fx.pixels(), "PNG"), "image/png",
                          fx.manifest("trainedAlgorithmicMedia", "Adobe Firefly"), fx.make_pki())
    cut = signed[: signed.find(b"caBX") + 300]
    p = read_evidence(cut)
    (detail,) = notes_of(p, "c2pa")  # c2pa is not asked to read a box that is not all there
    assert "caBX" in detail and "runs past the end" in detail
    assert_no_claim(p)


# --- XMP ----------------------------------------------------------------------------------


def test_oversize_xmp_packet_is_not_read() -> None:
    packet = fx.xmp_packet("trainedAlgorithmicMedia", "Midjourney", padding=50 * MiB)
    assert len(packet) > 50 * MiB
    p = read_evidence(fx.png_with_xmp(packet), watermark=False)
    (detail,) = notes_of(p, "xmp")
    assert "50.0 MB" in detail and "cap" in detail
    assert_no_claim(p)


def test_xmp_just_under_the_cap_is_read() -> None:
    packet = fx.xmp_packet("trainedAlgorithmicMedia", padding=MAX_XMP_BYTES - 2000)
    assert len(packet) <= MAX_XMP_BYTES
    assert decide(read_evidence(fx.png_with_xmp(packet), watermark=False)) == ("provenance", "ai")


def test_xmp_with_entities_is_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&c;</x:xmpmeta>'
    )
    p = read_evidence(fx.jpeg_with_xmp(laughs), watermark=False)
    assert any("DTD" in d for d in notes_of(p, "xmp"))
    assert_no_claim(p)


def test_malformed_xmp() -> None:
    broken = fx.xmp_packet("trainedAlgorithmicMedia")[:-200]
    p = read_evidence(fx.png_with_xmp(broken), watermark=False)
    assert any("not well-formed" in d for d in notes_of(p, "xmp"))
    assert_no_claim(p)


def test_compressed_xmp_bomb() -> None:
    bomb = zlib.compress(b" " * (MAX_XMP_BYTES * 4), 9)
    chunk = fx.png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + bomb)
    p = read_evidence(fx.insert_png_chunks(fx.encode(fx.pixels(), "PNG"), chunk), watermark=False)
    assert any("decompression bomb" in d for d in notes_of(p, "xmp"))
    assert_no_claim(p)


# --- PNG text chunks ----------------------------------------------------------------------


def test_huge_text_chunk_is_not_read() -> None:
    text = fx.A1111_PARAMETERS + " " * (MAX_TEXT_CHUNK_BYTES + 10)
    p = read_evidence(fx.png_with_text({"parameters": text}), watermark=False)
    assert any("over the 4.0 MB cap" in d for d in notes_of(p, "png-text"))
    assert_no_claim(p)


def test_ztxt_bomb() -> None:
    bomb = zlib.compress(fx.A1111_PARAMETERS.encode() + b"a" * (64 * MiB), 9)
    chunk = fx.png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)
    p = read_evidence(fx.insert_png_chunks(fx.encode(fx.pixels(), "PNG"), chunk), watermark=False)
    assert any("decompression bomb" in d for d in notes_of(p, "png-text"))
    assert_no_claim(p)


def test_text_total_cap() -> None:
    full, rest = divmod(MAX_TEXT_TOTAL_BYTES, MAX_TEXT_CHUNK_BYTES)
    chunks = {f"filler{i}": "x" * MAX_TEXT_CHUNK_BYTES for i in range(full)}
    chunks |= {"rest": "x" * rest, "parameters": fx.A1111_PARAMETERS}  # the budget is spent
    p = read_evidence(fx.png_with_text(chunks), watermark=False)
    assert any("text cap for the whole file" in d for d in notes_of(p, "png-text")), p.to_json()
    assert_no_claim(p)


@pytest.mark.parametrize(("chunk", "expect"), [
    (fx.png_chunk(b"tEXt", b"parameters\x00" + fx.A1111_PARAMETERS.encode(), crc=0), "CRC"),
    (fx.png_chunk(b"tEXt", b"no separator here"), "no keyword"),
    (fx.png_chunk(b"tEXt", b"\x00starts with the separator"), "no keyword"),
    (fx.png_chunk(b"zTXt", b"parameters\x00\x07" + zlib.compress(b"x")), "unknown compression"),
    (fx.png_chunk(b"zTXt", b"parameters\x00\x00this is not zlib"), "does not decompress"),
    (fx.png_chunk(b"iTXt", b"parameters\x00"), "malformed"),
    (fx.png_chunk(b"iTXt", b"parameters\x00\x00\x00nolanguageseparator"), "malformed"),
])
def test_malformed_text_chunks(chunk: bytes, expect: str) -> None:
    p = read_evidence(fx.insert_png_chunks(fx.encode(fx.pixels(), "PNG"), chunk), watermark=False)
    assert any(expect in d for d in notes_of(p, "png-text")), p.to_json()
    assert_no_claim(p)


def test_chunk_length_past_the_end() -> None:
    png = fx.encode(fx.pixels(), "PNG")
    bad = png[:33] + (0xFFFFFFF0).to_bytes(4, "big") + b"tEXt" + b"parameters\x00Steps: 1"
    p = read_evidence(bad)
    assert any("runs past the end" in d for d in notes_of(p, "png-text"))
    assert any(n.startswith("watermark check skipped") for n in p.notes), p.notes
    assert_no_claim(p)


def test_deeply_nested_json_in_a_comfyui_chunk() -> None:
    p = read_evidence(fx.png_with_text({"prompt": "[" * 200_000}), watermark=False)
    assert any("ComfyUI's format" in d for d in notes_of(p, "png-text"))
    assert_no_claim(p)


# --- EXIF, pixels, files ------------------------------------------------------------------


def test_truncated_exif_segment() -> None:
    jpeg = fx.jpeg_with_exif(fx.exif_bytes(software="Adobe Firefly"))
    pos, length = fx.jpeg_segment(jpeg, 0xE1)
    p = read_evidence(jpeg[: pos + length // 2])
    assert any("cut short" in d for d in notes_of(p, "exif"))
    assert_no_claim(p)


@pytest.mark.parametrize("tiff", [
    b"MM\x00*\xff\xff\xff\xf0",  # first IFD far past the end
    b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x31\x01\x02\x00\xff\xff\xff\x7f\x00\x00\x00\x10",  # 65535 entries
    b"XX*\x00" + bytes(64),  # no byte order
])
def test_damaged_exif(tiff: bytes) -> None:
    png = fx.encode(fx.pixels(), "PNG")
    p = read_evidence(fx.insert_png_chunks(png, fx.png_chunk(b"eXIf", tiff)), watermark=False)
    assert_no_claim(p)


def test_decompression_bomb_pixels() -> None:
    p = read_evidence(bomb_png())
    assert any("decompression bomb" in n for n in p.notes), p.notes
    assert_no_claim(p)


@pytest.mark.parametrize("data", [b"", b"GIF89a" + bytes(10), b"\x00" * 4096, b"RIFF\x10\x00\x00\x00WEBPVP8X\xff\xff"])
def test_junk_bytes(data: bytes) -> None:
    assert_no_claim(read_evidence(data))


def test_paths_that_cannot_be_read(tmp_path: Path) -> None:
    for source in (tmp_path / "missing.png", tmp_path):
        p = read_evidence(source)
        assert p.evidence == () and any("could not be read" in n for n in p.notes)


def test_read_cap_on_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "big.png"
    f.write_bytes(fx.png_with_text({"parameters": fx.A1111_PARAMETERS}, arr=fx.pixels(0, 300)))
    monkeypatch.setattr(provenance, "MAX_FILE_BYTES", 2000)
    p = read_evidence(f)
    assert any("read cap" in n for n in p.notes)
    assert decide(p) == ("provenance", "ai")  # the text chunk comes before the pixels


def _rich_files() -> dict[str, bytes]:
    pki = fx.make_pki()
    png = fx.png_with_text({"parameters": fx.A1111_PARAMETERS, "Software": "NovelAI"}, how="zTXt")
    png = fx.insert_png_chunks(png, fx.png_chunk(b"eXIf", fx.exif_bytes("Canon", "EOS R5")))
    png = fx.c2pa_sign(png, "image/png", fx.manifest("trainedAlgorithmicMedia", "Adobe Firefly"), pki)
    jpeg = fx.encode(fx.pixels(), "JPEG", exif=fx.exif_bytes(software="Midjourney"),
                     xmp=fx.xmp_packet("trainedAlgorithmicMedia", "Midjourney"))
    jpeg = fx.c2pa_sign(jpeg, "image/jpeg", fx.manifest("trainedAlgorithmicMedia", "ChatGPT"), pki)
    webp = fx.encode(fx.pixels(), "WEBP", exif=fx.exif_bytes(software="Leonardo.Ai"),
                     xmp=fx.xmp_packet("trainedAlgorithmicMedia"))
    return {"png": png, "jpeg": jpeg, "webp": webp}


def test_truncated_and_bit_flipped_files_never_raise() -> None:
    for name, data in _rich_files().items():
        full = read_evidence(data)
        assert decide(full) == ("provenance", "ai"), (name, full.to_json())
        n = len(data)
        for i in range(1, 60):
            cut = read_evidence(data[: n * i // 60])
            json.dumps(cut.to_json())
        for i in range(60):
            flipped = bytearray(data)
            flipped[(i * 7919) % n] ^= 0x5A
            json.dumps(read_evidence(bytes(flipped)).to_json())
