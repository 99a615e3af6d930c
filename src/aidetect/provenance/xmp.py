"""XMP packets: the IPTC ``DigitalSourceType`` (what the file says it is: AI-made, a capture,
an edit), ``xmp:CreatorTool`` (the software that made it) and a ``dcterms:provenance``
pointer to a remote C2PA manifest (reported, never fetched).

XMP is unsigned text: a capture source type says nothing (anyone can write it); an AI
source type or an AI generator as creator tool is an admission and counts as AI evidence.
Packets that declare a DTD or entities are refused (no entity expansion, no external
references); a packet that is not well-formed XML is a note."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aidetect.provenance.evidence import Evidence, note, one_line
from aidetect.provenance.generators import match_generator
from aidetect.provenance.limits import MAX_QUOTE_CHARS
from aidetect.provenance.source_types import (
    AI_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    short_name,
    words,
)

_RDF_RESOURCE = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fields(root: ET.Element) -> dict[str, list[str]]:
    """Values of the properties read, as attributes (``<rdf:Description X="..."/>``) or
    elements (text or ``rdf:resource``), in document order, by local name."""
    wanted: dict[str, list[str]] = {"DigitalSourceType": [], "CreatorTool": [], "provenance": []}
    for el in root.iter():
        for attr, value in el.attrib.items():
            name = _local(attr)
            if name in wanted and attr != _RDF_RESOURCE:
                wanted[name].append(value)
        name = _local(el.tag) if isinstance(el.tag, str) else ""
        if name in wanted:
            value = el.get(_RDF_RESOURCE) or "".join(el.itertext())
            if value.strip():
                wanted[name].append(value)
    return {k: [v.strip() for v in vs if v.strip()] for k, vs in wanted.items()}


def read_xmp(packets: list[bytes]) -> list[Evidence]:
    out: list[Evidence] = []
    for packet in packets:
        out.extend(_read_packet(packet))
    return out


def _read_packet(packet: bytes) -> list[Evidence]:
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return [note("xmp", "XMP packet declares a DTD or entities: refused, not read")]
    start = packet.find(b"<")
    if start < 0:
        return [note("xmp", "XMP packet holds no XML: not read")]
    try:
        root = ET.fromstring(packet[start:].rstrip(b"\x00 \t\r\n"))
    except ET.ParseError as exc:
        return [note("xmp", f"XMP packet is not well-formed XML ({exc}): not read")]
    fields = _fields(root)
    tool = one_line(fields["CreatorTool"][0], MAX_QUOTE_CHARS) if fields["CreatorTool"] else None
    tool_generator = match_generator(tool)
    out: list[Evidence] = []
    ai_seen = False
    for raw in dict.fromkeys(fields["DigitalSourceType"]):
        name = short_name(raw)
        said = f"XMP: IPTC digital source type says {words(name)} ({one_line(name, MAX_QUOTE_CHARS)})"
        if name in AI_SOURCE_TYPES:
            ai_seen = True
            made = f"; creator tool {tool}" if tool else ""
            out.append(Evidence("xmp", "ai", tool_generator or tool, said + made))
        elif name in CAPTURE_SOURCE_TYPES:
            out.append(Evidence("xmp", "none", None, said + "; XMP is unsigned, so this is no proof"))
        else:
            out.append(Evidence("xmp", "none", None, said))
    if tool and not ai_seen:
        if tool_generator:
            out.append(Evidence("xmp", "ai", tool_generator, f"XMP: creator tool {tool} is an AI image generator"))
        else:
            out.append(Evidence("xmp", "none", None, f"XMP: creator tool {tool}"))
    for ref in dict.fromkeys(fields["provenance"]):
        if not ref.startswith("self#"):
            out.append(note("xmp", f"XMP points to a remote C2PA manifest ({one_line(ref, MAX_QUOTE_CHARS)}), "
                                   "which is not fetched"))
    return out
