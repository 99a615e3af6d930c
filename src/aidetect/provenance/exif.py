"""EXIF, parsed with Pillow from the block the container walk found (no pixels decoded):
Make, Model, Software, DateTimeOriginal, and the places AI front-ends hide their settings
(Automatic1111 in UserComment, ComfyUI's WebP ``workflow:``/``prompt:`` in Make/Model).

Camera EXIF never says real: it is trivial to write, so it is evidence of nothing and
reported as ``none`` naming the camera. A known generator in Software (or Make/Model) is
an admission and says AI."""

from __future__ import annotations

import warnings

from PIL import Image

from aidetect.provenance import parameters
from aidetect.provenance.evidence import Evidence, note, one_line
from aidetect.provenance.generators import match_generator
from aidetect.provenance.limits import MAX_QUOTE_CHARS

MAKE, MODEL, SOFTWARE, DESCRIPTION = 0x010F, 0x0110, 0x0131, 0x010E
EXIF_IFD, DATETIME_ORIGINAL, USER_COMMENT = 0x8769, 0x9003, 0x9286


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", " ").strip()
    return value or None


def _user_comment(value: object) -> str | None:
    """EXIF UserComment: 8 bytes naming the character set, then the text."""
    if isinstance(value, str):
        return value.strip() or None
    if not isinstance(value, bytes) or len(value) < 8:
        return None
    head, body = value[:8], value[8:]
    if head.startswith(b"UNICODE"):
        # byte order varies between writers: take the decoding with more plain ASCII
        texts = [body.decode(enc, errors="replace") for enc in ("utf-16-be", "utf-16-le")]
        text = max(texts, key=lambda t: sum(ch.isascii() and ch.isprintable() for ch in t))
    else:
        text = body.decode("utf-8" if head.startswith(b"ASCII") else "latin-1", errors="replace")
    text = text.replace("\x00", " ").strip()
    return text or None


def read_exif(blobs: list[bytes]) -> list[Evidence]:
    if not blobs:
        return []
    exif = Image.Exif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exif.load(blobs[0])
            sub = exif.get_ifd(EXIF_IFD)
            tags = {t: exif.get(t) for t in (MAKE, MODEL, SOFTWARE, DESCRIPTION)}
            tags[DATETIME_ORIGINAL] = sub.get(DATETIME_ORIGINAL)
            tags[USER_COMMENT] = sub.get(USER_COMMENT)
    except Exception as exc:  # Pillow raises many types on hostile EXIF
        return [note("exif", f"EXIF block is damaged and could not be read ({type(exc).__name__}: {exc})")]
    return _evidence(tags)


def _evidence(tags: dict[int, object]) -> list[Evidence]:
    make, model, software = _text(tags[MAKE]), _text(tags[MODEL]), _text(tags[SOFTWARE])
    description, taken = _text(tags[DESCRIPTION]), _text(tags[DATETIME_ORIGINAL])
    comment = _user_comment(tags[USER_COMMENT])
    out: list[Evidence] = []

    comfy = [(v, _comfy(v)) for v in (make, model, description) if v]
    comfy = [(v, found) for v, found in comfy if found]
    if comfy:
        out.append(Evidence("exif", "ai", "ComfyUI", f"EXIF carries a {comfy[0][1]}"))
        make = None if any(make == v for v, _ in comfy) else make
        model = None if any(model == v for v, _ in comfy) else model
    if comment:
        found = parameters.a1111(comment)
        if found:
            out.append(Evidence("exif", "ai", "Automatic1111", f"EXIF UserComment: {found}"))
    tool_hits = [(v, match_generator(v)) for v in (software, make, model) if v]
    for value, generator in tool_hits:
        if generator:
            out.append(Evidence("exif", "ai", generator,
                                f"EXIF names an AI generator: {one_line(value, MAX_QUOTE_CHARS)}"))
    camera_named = [v for v in (make, model) if v and not match_generator(v)]
    if camera_named:
        out.append(Evidence("exif", "none", None, _camera_line(make, model, taken, software)))
    elif software and not match_generator(software):
        out.append(Evidence("exif", "none", None, f"EXIF software: {one_line(software, MAX_QUOTE_CHARS)}"))
    return out


def _comfy(value: str) -> str | None:
    """ComfyUI's WebP output keeps its graphs in EXIF as ``workflow:{json}`` / ``prompt:{json}``."""
    head, _, rest = value.partition(":")
    if head.lower() == "workflow":
        return parameters.comfy_workflow(rest)
    if head.lower() == "prompt":
        return parameters.comfy_prompt(rest)
    return None


def _camera_line(make: str | None, model: str | None, taken: str | None, software: str | None) -> str:
    if make and model:
        camera = model if model.lower().startswith(make.lower()) else f"{make} {model}"
    else:
        camera = make or model or ""
    parts = [f"camera: {one_line(camera, MAX_QUOTE_CHARS)}"]
    if taken:
        parts.append(f"taken {one_line(taken, 40)}")
    if software and not match_generator(software):
        parts.append(f"software {one_line(software, MAX_QUOTE_CHARS)}")
    parts.append("camera EXIF is easy to forge, so this is no proof")
    return "; ".join(parts)
