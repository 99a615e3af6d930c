"""Make the files the provenance tests read: pixels, PNG text chunks (Pillow ``PngInfo``),
XMP packets in JPEG APP1 and PNG iTXt, EXIF (Pillow), Stable Diffusion watermarks (the
``invisible-watermark`` encoder, as the reference scripts call it) and C2PA manifests signed
with ``c2pa-python``'s Builder and a throwaway ES256 certificate chain (``cryptography``).
Nothing is downloaded."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
A1111_PARAMETERS = (
    "a watercolor fox in the snow\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.9.4"
)


# --- pixels and plain files -------------------------------------------------------------


def pixels(seed: int = 0, width: int = 64, height: int | None = None) -> np.ndarray:
    """Uniform-noise RGB pixels (the dwtDct watermark round-trips exactly on them)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height or width, width, 3), dtype=np.uint8)


def encode(arr: np.ndarray, fmt: str = "PNG", **save: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **save)
    return buf.getvalue()


def strip(data: bytes, fmt: str | None = None) -> bytes:
    """The same pixels re-saved with no metadata at all (what a strip tool leaves)."""
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert("RGB"))
        fmt = fmt or img.format or "PNG"
    return encode(arr, fmt, **({"quality": 95} if fmt == "JPEG" else {}))


# --- PNG chunks -------------------------------------------------------------------------


def png_with_text(chunks: dict[str, str], arr: np.ndarray | None = None, how: str = "tEXt") -> bytes:
    """A PNG carrying ``chunks`` as tEXt, zTXt (``how="zTXt"``) or iTXt (``how="iTXt"``)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        if how == "iTXt":
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value, zip=how == "zTXt")
    return encode(pixels() if arr is None else arr, "PNG", pnginfo=info)


def png_chunk(ctype: bytes, body: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def insert_png_chunks(png: bytes, *chunks: bytes) -> bytes:
    """``png`` with raw ``chunks`` placed right after IHDR (8-byte signature + 25-byte IHDR)."""
    return png[:33] + b"".join(chunks) + png[33:]


# --- XMP --------------------------------------------------------------------------------


def xmp_packet(source_type: str | None = None, creator_tool: str | None = None, *, element: bool = False,
               padding: int = 0) -> bytes:
    """An XMP packet with an IPTC DigitalSourceType (as attribute, or as an element with
    ``rdf:resource`` when ``element``) and an xmp:CreatorTool; ``padding`` bytes of space."""
    attrs, children = [], []
    if creator_tool is not None:
        attrs.append(f'xmp:CreatorTool="{creator_tool}"')
    if source_type is not None:
        uri = IPTC + source_type
        if element:
            children.append(f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{uri}"/>')
        else:
            attrs.append(f'Iptc4xmpExt:DigitalSourceType="{uri}"')
    body = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f'    {" ".join(attrs)}>\n'
        f'   {"".join(children)}\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n' + " " * padding + '<?xpacket end="w"?>'
    )
    return body.encode("utf-8")


def jpeg_with_xmp(packet: bytes, arr: np.ndarray | None = None) -> bytes:
    return encode(pixels() if arr is None else arr, "JPEG", quality=90, xmp=packet)


def png_with_xmp(packet: bytes, arr: np.ndarray | None = None) -> bytes:
    """XMP in an uncompressed iTXt chunk ``XML:com.adobe.xmp``, as Adobe writes it."""
    body = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet
    return insert_png_chunks(encode(pixels() if arr is None else arr, "PNG"), png_chunk(b"iTXt", body))


# --- EXIF -------------------------------------------------------------------------------


def exif_bytes(make: str | None = None, model: str | None = None, software: str | None = None,
               taken: str | None = None, user_comment: bytes | None = None) -> bytes:
    exif = Image.Exif()
    for tag, value in ((0x010F, make), (0x0110, model), (0x0131, software)):
        if value is not None:
            exif[tag] = value
    sub = exif.get_ifd(0x8769)
    if taken is not None:
        sub[0x9003] = taken
    if user_comment is not None:
        sub[0x9286] = user_comment
    return exif.tobytes()


def a1111_user_comment(text: str) -> bytes:
    """UserComment as Automatic1111 writes it into JPEG/WebP: "UNICODE\\0" + UTF-16-BE."""
    return b"UNICODE\x00" + text.encode("utf-16-be")


def jpeg_with_exif(exif: bytes, arr: np.ndarray | None = None) -> bytes:
    return encode(pixels() if arr is None else arr, "JPEG", quality=90, exif=exif)


# --- watermarks -------------------------------------------------------------------------

SD_V1 = b"StableDiffusionV1"
SDXL_BITS = [int(b) for b in bin(0b101100111110110010010000011110111011000110011110)[2:]]


def watermarked(arr: np.ndarray, which: str) -> np.ndarray:
    """``arr`` (RGB) watermarked as the SD v1 scripts (``"sd1"``) or SDXL (``"sdxl"``) do:
    RGB -> BGR, ``WatermarkEncoder.encode(..., "dwtDct")``, BGR -> RGB. ``"sdxl-inverted"``:
    the SDXL bits flipped (a decoy that no reader must take for SDXL)."""
    import cv2

    try:
        from imwatermark import WatermarkEncoder
    except ImportError as exc:
        raise RuntimeError(
            "invisible-watermark is not installed: it is installed with `pip install --no-deps "
            "invisible-watermark==0.2.0` (its metadata asks for opencv-python, which would "
            "overwrite opencv-python-headless's cv2)"
        ) from exc

    encoder = WatermarkEncoder()
    if which == "sd1":
        encoder.set_watermark("bytes", SD_V1)
    elif which == "sdxl":
        encoder.set_watermark("bits", SDXL_BITS)
    else:
        encoder.set_watermark("bits", [1 - b for b in SDXL_BITS])
    bgr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(encoder.encode(bgr, "dwtDct")[:, :, ::-1])


# --- C2PA -------------------------------------------------------------------------------


@dataclass
class Pki:
    """A throwaway root CA -> intermediate CA -> ES256 signing certificate chain."""

    root_pem: bytes
    chain_pem: bytes  # signing certificate, then the intermediate (the root is left out)
    key_pem: bytes


def make_pki(valid_for: dt.timedelta = dt.timedelta(days=30), org: str = "Throwaway Test Signer") -> Pki:
    """Certificates with what the C2PA certificate profile asks of them: X.509 v3, ECDSA
    P-256 with SHA-256, authority and subject key identifiers, CA basic constraints and
    keyCertSign on the CAs; on the signing certificate basicConstraints CA false, a critical
    keyUsage digitalSignature and an extendedKeyUsage of emailProtection (documentSigning
    and the C2PA claim-signing OID are accepted too; "any" is refused)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str, o: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, o)])

    def usage(signing: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=signing, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not signing,
                             crl_sign=not signing, encipher_only=False, decipher_only=False)

    def cert(subject: x509.Name, key: Any, issuer: x509.Name, issuer_key: Any, ca: bool,
             until: dt.datetime) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
            .add_extension(usage(not ca), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    root_key, mid_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root_name, mid_name = name("Test Root CA", "Throwaway Root"), name("Test Intermediate CA", "Throwaway Root")
    year = now + dt.timedelta(days=365)
    root = cert(root_name, root_key, root_name, root_key, True, year)
    mid = cert(mid_name, mid_key, root_name, root_key, True, year)
    leaf = cert(name("Test Signer", org), key, mid_name, mid_key, False, now + valid_for)
    pem = serialization.Encoding.PEM
    return Pki(
        root_pem=root.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + mid.public_bytes(pem),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def manifest(source_type: str | None, claim_generator: str, agent: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"action": "c2pa.created"}
    if source_type is not None:  # an IPTC name, or a whole URI
        action["digitalSourceType"] = source_type if "://" in source_type else IPTC + source_type
    if agent is not None:
        action["softwareAgent"] = {"name": agent}
    return {
        "claim_generator_info": [{"name": claim_generator, "version": "1.0"}],
        "title": "fixture",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }


def c2pa_sign(asset: bytes, mime: str, definition: dict[str, Any], pki: Pki) -> bytes:
    """``asset`` with ``definition`` signed by ``pki`` and embedded (no thumbnail)."""
    import c2pa

    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki.chain_pem, pki.key_pem, None))
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    out = io.BytesIO()
    with c2pa.Builder(definition, context=context) as builder:
        builder.sign(signer, mime, io.BytesIO(asset), out)
    return out.getvalue()


def jpeg_segment(data: bytes, marker: int) -> tuple[int, int]:
    """(offset of the 0xFF marker byte, segment length field) of the first ``marker``."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("not at a JPEG marker")
        m, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if m == marker:
            return pos, length
        pos += 2 + length
    raise ValueError(f"no segment 0x{marker:02X}")
