"""IPTC digital source types (http://cv.iptc.org/newscodes/digitalsourcetype/), as XMP
(``Iptc4xmpExt:DigitalSourceType``) and C2PA actions (``digitalSourceType``) name them:
which say AI or synthetic, which say a capture of the real world, and their plain words."""

from __future__ import annotations

#: Made by a model trained on data, or a composite with such parts; and purely algorithmic
#: or synthetic media (not a photograph either).
AI_SOURCE_TYPES = frozenset({
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
    "compositeSynthetic",
})

#: A capture of the real world (camera, scan of film or print, composite of captures).
CAPTURE_SOURCE_TYPES = frozenset({
    "digitalCapture",
    "computationalCapture",
    "negativeFilm",
    "positiveFilm",
    "print",
    "compositeCapture",
})

WORDS = {
    "trainedAlgorithmicMedia": "made by a generative AI model",
    "compositeWithTrainedAlgorithmicMedia": "a composite with AI-generated parts",
    "algorithmicMedia": "synthetic, made purely by an algorithm",
    "compositeSynthetic": "a composite with synthetic parts",
    "algorithmicallyEnhanced": "algorithmically enhanced, not generated",
    "digitalCapture": "a digital capture from a camera",
    "computationalCapture": "a computational capture from a phone camera",
    "negativeFilm": "a scan of negative film",
    "positiveFilm": "a scan of positive film",
    "print": "a scan of a print",
    "compositeCapture": "a composite of captures",
    "screenCapture": "a screen capture",
    "humanEdits": "edited by a person",
    "minorHumanEdits": "lightly edited by a person",
    "composite": "a composite",
    "digitalArt": "digital art made by a person",
    "virtualRecording": "a recording of a virtual scene",
    "dataDrivenMedia": "data-driven media",
}


def short_name(value: str) -> str:
    """``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` ->
    ``trainedAlgorithmicMedia`` (a bare name stays as it is)."""
    return value.strip().rstrip("/").rsplit("/", 1)[-1]


def words(name: str) -> str:
    return WORDS.get(name, name)
