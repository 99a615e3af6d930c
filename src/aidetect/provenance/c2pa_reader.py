"""C2PA manifests, read and validated by ``c2pa-python`` (``c2pa.Reader``) from the bytes in
memory, offline: remote manifests and OCSP are never fetched.

What is reported: the claim generator, the signer (certificate organisation and name), the
validation state with its failures in plain words (untrusted, expired, image changed after
signing), and the actions' ``digitalSourceType``.

The rule (docs/provenance.md): an AI source type in any manifest of the store, or a known
AI generator as the claim generator, says AI whatever the validation state (an untrusted or
expired certificate is reported and is still an admission); a capture source type in the
active manifest says real only when the store validates as ``Trusted`` (signature and
hashes valid, certificate chained to a configured trust anchor) with no failure; any other
capture manifest says nothing, since anyone can sign one with a certificate of their own."""

from __future__ import annotations

import io
import json
from typing import Any

from aidetect.provenance.evidence import Evidence, note, one_line
from aidetect.provenance.generators import match_generator
from aidetect.provenance.limits import MAX_QUOTE_CHARS
from aidetect.provenance.source_types import (
    AI_SOURCE_TYPES,
    CAPTURE_SOURCE_TYPES,
    short_name,
    words,
)

_FAILURE_WORDS = {
    "signingCredential.untrusted": "certificate untrusted",
    "signingCredential.expired": "certificate expired",
    "signingCredential.revoked": "certificate revoked",
    "signingCredential.invalid": "certificate not fit for signing",
    "assertion.dataHash.mismatch": "image changed after signing",
    "assertion.bmffHash.mismatch": "image changed after signing",
    "assertion.boxesHash.mismatch": "image changed after signing",
    "assertion.hashedURI.mismatch": "manifest changed after signing",
    "claimSignature.mismatch": "signature does not match",
    "timeStamp.mismatch": "time stamp does not match",
}


def read_c2pa(data: bytes, mime: str | None, trust_anchors: str | None = None) -> list[Evidence]:
    """Evidence from the C2PA manifest store in ``data`` (the caller found a JUMBF box)."""
    try:
        import c2pa
    except ImportError as exc:  # a core install without the native library
        return [note("c2pa", f"a C2PA box is present but c2pa-python is not installed ({exc})")]
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"user_anchors": trust_anchors}
    try:
        context = c2pa.Context.from_dict(settings)
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
        if reader is None:
            return [note("c2pa", "a C2PA/JUMBF box is present but holds no readable manifest")]
        with reader:
            store = json.loads(reader.json())
    except Exception as exc:  # c2pa raises C2paError subtypes; anything else is a note too
        return [note("c2pa", f"C2PA manifest could not be read ({one_line(str(exc) or type(exc).__name__, 160)})")]
    try:
        return [_evidence(store)]
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        return [note("c2pa", f"C2PA manifest store has an unexpected shape ({type(exc).__name__}: {exc})")]


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and str(assertion.get("label", "")).startswith("c2pa.actions"):
            data = assertion.get("data") or {}
            out.extend(a for a in data.get("actions") or [] if isinstance(a, dict))
    return out


def _agent(action: dict[str, Any]) -> str | None:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):
        agent = agent.get("name")
    return one_line(agent, MAX_QUOTE_CHARS) if isinstance(agent, str) and agent.strip() else None


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict) and info[0].get("name"):
        return one_line(str(info[0]["name"]), MAX_QUOTE_CHARS)
    legacy = manifest.get("claim_generator")  # v1: "Adobe_Firefly/0.1 c2pa-rs/0.25"
    if isinstance(legacy, str) and legacy.strip():
        return one_line(legacy.split()[0].split("/")[0].replace("_", " "), MAX_QUOTE_CHARS)
    return None


def _failures(store: dict[str, Any]) -> list[str]:
    codes = [s.get("code") for s in store.get("validation_status") or [] if isinstance(s, dict)]
    active = (store.get("validation_results") or {}).get("activeManifest") or {}
    codes += [s.get("code") for s in active.get("failure") or [] if isinstance(s, dict)]
    return [c for c in dict.fromkeys(codes) if isinstance(c, str)]


def _state_words(state: str | None, failures: list[str]) -> str:
    said = list(dict.fromkeys(_FAILURE_WORDS.get(c, c) for c in failures))
    if state == "Trusted" and not failures:
        return "signature valid, certificate trusted"
    if not said:
        return "signature valid" if state == "Valid" else f"validation {state or 'unknown'}"
    return ", ".join(said)


def _evidence(store: dict[str, Any]) -> Evidence:
    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest"))
    if not isinstance(active, dict):
        return note("c2pa", "C2PA manifest store has no active manifest")
    state, failures = store.get("validation_state"), _failures(store)
    signature = active.get("signature_info") or {}
    signer = " / ".join(
        dict.fromkeys(one_line(str(signature[k]), MAX_QUOTE_CHARS) for k in ("issuer", "common_name") if signature.get(k))
    )
    signed = f"; signed by {signer}" if signer else "; no signer named"
    status = _state_words(state, failures)
    claim_generator = _claim_generator(active)

    ai_actions = [a for m in manifests.values() if isinstance(m, dict) for a in _actions(m)
                  if short_name(str(a.get("digitalSourceType", ""))) in AI_SOURCE_TYPES]
    if ai_actions:
        source = short_name(str(ai_actions[0]["digitalSourceType"]))
        agents = [g for g in (_agent(a) for a in ai_actions) if g]
        named = [match_generator(n) for n in [*agents, claim_generator] if n]
        generator = next((g for g in named if g), None) or (agents[0] if agents else claim_generator)
        made = f"made with {generator}, source type {source}" if generator else f"{words(source)} ({source})"
        return Evidence("c2pa", "ai", generator, f"C2PA manifest: {made}{signed}; {status}")

    captures = [a for a in _actions(active) if short_name(str(a.get("digitalSourceType", ""))) in CAPTURE_SOURCE_TYPES]
    if captures:
        source = short_name(str(captures[0]["digitalSourceType"]))
        by = _agent(captures[0]) or claim_generator
        said = f"C2PA capture manifest: {words(source)}" + (f" by {by}" if by else "") + signed
        if state == "Trusted" and not failures:
            return Evidence("c2pa", "real", None, f"{said}; {status}")
        return Evidence("c2pa", "none", None, f"{said}; {status}, so this is no proof")

    generator = match_generator(claim_generator)
    if generator:  # an AI generator's own manifest that does not spell out the source type
        return Evidence("c2pa", "ai", generator,
                        f"C2PA manifest: claim generator {claim_generator} is an AI image generator{signed}; {status}")
    made = f" from {claim_generator}" if claim_generator else ""
    return Evidence("c2pa", "none", None, f"C2PA manifest{made} with no AI or capture source type{signed}; {status}")
