"""The one verdict policy: what the provenance evidence decides on its own, and when the
model must look at the pixels (docs/provenance.md, Verdict policy).

* Any item that says ``ai`` decides AI. The readers say ``ai`` only for strong evidence:
  a C2PA AI source type or AI claim generator (whatever its certificate), an XMP AI
  source type or AI creator tool, a generator's settings in PNG text or EXIF, an
  invisible watermark decoded with its exact payload, a known generator's Software tag.
  AI wins over a real claim: an admission of AI is not something a forger gains from.
* Else an item that says ``real`` decides real. Only a C2PA capture manifest that
  validates as Trusted (signed by a certificate chained to a configured trust anchor,
  hashes intact) says ``real``; camera EXIF, XMP capture types and capture manifests
  from untrusted signers never do.
* Else the model decides: ``("model", None)``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from aidetect.provenance.evidence import Evidence, Provenance

DecidedBy = Literal["provenance", "model"]
Label = Literal["ai", "real"]


def decide(evidence: Provenance | Iterable[Evidence | Mapping[str, Any]]) -> tuple[DecidedBy, Label | None]:
    """``("provenance", "ai")``, ``("provenance", "real")`` or ``("model", None)``; the items
    may be :class:`Evidence` or their JSON form (``Evidence.to_json``, as stored)."""
    items = evidence.evidence if isinstance(evidence, Provenance) else tuple(evidence)
    claims = [(e["kind"], e["says"]) if isinstance(e, Mapping) else (e.kind, e.says) for e in items]
    if any(says == "ai" for _, says in claims):
        return "provenance", "ai"
    if any(says == "real" and kind == "c2pa" for kind, says in claims):
        return "provenance", "real"
    return "model", None
