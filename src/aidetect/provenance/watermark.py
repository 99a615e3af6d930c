"""Invisible watermarks of the Stable Diffusion reference code (the ``dwtDct`` method of
``invisible-watermark``):

* SD v1 (CompVis scripts): the bytes ``b"StableDiffusionV1"`` (136 bits);
* SDXL (Stability's generative-models): the 48 bits of
  ``0b101100111110110010010000011110111011000110011110``.

Decoded here with NumPy, OpenCV and PyWavelets, which the package installs: the scheme is small,
and the ``invisible-watermark`` package pins the GUI build of OpenCV (``opencv-python``), which
would overwrite our ``opencv-python-headless`` (both own ``cv2``), so it cannot be a dependency.
Its encoder is a test tool only (``scripts/bootstrap.sh test``): the tests embed both payloads
with it and check that :func:`decode_dwtdct` reads them back, and reads the same bits as its
decoder on unmarked images.

The scheme, as the reference encoder writes it: the image in YUV, only the U channel (scales
[0, 36, 36], and the encoder's channel loop stops before V); a one-level Haar DWT of the
channel cropped to a multiple of 4; its approximation band cut into 4 x 4 blocks in row-major
order, block ``n`` carrying bit ``n mod L``; in each block the coefficient of largest magnitude
(the first one excepted) is quantised so that ``|c| mod 36`` is near 9 (bit 0) or 27 (bit 1).
The decoder reads each block's bit as ``|c| mod 36 > 18`` and a payload bit as the majority of
its blocks.

Only an exact payload counts (a random image matches 136 or 48 given bits with odds of
2^-136 and 2^-48). The check runs on images at least ``WATERMARK_MIN_SIDE`` px on both sides;
a larger image than ``WATERMARK_MAX_PIXELS`` is decoded on its top band of full-width rows
(the code spreads the bits over blocks in row-major order, so the top rows of full width
hold every bit at the same block positions). The watermark does not survive resizing,
cropping of the top-left or re-encoding: finding none means nothing."""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from aidetect.provenance.evidence import Evidence, note
from aidetect.provenance.limits import WATERMARK_MAX_PIXELS, WATERMARK_MIN_SIDE

SD_V1_PAYLOAD = b"StableDiffusionV1"
SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110
SDXL_BITS = tuple(int(b) for b in bin(SDXL_MESSAGE)[2:])


@dataclass(frozen=True)
class Mark:
    name: str
    generator: str
    wm_type: str  # the WatermarkDecoder type: "bytes" or "bits"
    length: int  # in bits
    payload: bytes | tuple[int, ...]
    shown: str  # the payload in an evidence line


MARKS: tuple[Mark, ...] = (
    Mark("Stable Diffusion v1 reference watermark", "Stable Diffusion", "bytes", 8 * len(SD_V1_PAYLOAD),
         SD_V1_PAYLOAD, "'StableDiffusionV1'"),
    Mark("SDXL reference watermark", "Stable Diffusion XL", "bits", len(SDXL_BITS), SDXL_BITS,
         f"48 bits 0x{SDXL_MESSAGE:012x}"),
)


def band_rows(width: int, height: int) -> int:
    """Rows decoded: all of them up to ``WATERMARK_MAX_PIXELS``, else a top band of whole
    8-pixel block rows (the DWT halves, the blocks are 4 wide) of at least the minimum side."""
    if width * height <= WATERMARK_MAX_PIXELS:
        return height
    rows = max(WATERMARK_MIN_SIDE, 8 * math.ceil(WATERMARK_MAX_PIXELS / width / 8))
    return min(height, rows)


def _pixels(data: bytes) -> tuple[np.ndarray | None, str]:
    """BGR uint8 pixels to decode (the top band of a large image) and a note on what was
    decoded; or None and why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings on odd headers: not our business
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if min(width, height) < WATERMARK_MIN_SIDE:
                    return None, (f"watermark check skipped: the image is {width}x{height} px, "
                                  f"under {WATERMARK_MIN_SIDE} px on a side")
                rows = band_rows(width, height)
                region = img.crop((0, 0, width, rows)) if rows < height else img
                rgb = np.asarray(region.convert("RGB"))
                band = f"watermark decoded on the top {rows} of {height} rows" if rows < height else ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return None, f"watermark check skipped: pixels refused as a possible decompression bomb ({exc})"
    except UnidentifiedImageError:
        return None, "watermark check skipped: no pixels Pillow can decode"
    except Exception as exc:  # truncated or corrupt pixel data: Pillow raises OSError and others
        return None, f"watermark check skipped: pixels could not be decoded ({type(exc).__name__}: {exc})"
    return np.ascontiguousarray(rgb[:, :, ::-1]), band


DWT_SCALE = 36.0  # the quantisation step of the reference encoder's U channel
DWT_BLOCK = 4
MIN_DECODE_PIXELS = 256 * 256  # the reference decoder refuses smaller images


def decode_dwtdct(bgr: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` bits (bool array) that the dwtDct scheme reads from a BGR uint8 image
    (see the module doc); ValueError for an image under 256 x 256 pixels."""
    import cv2  # opencv-python-headless: a dependency of the package
    import pywt

    rows, cols = bgr.shape[:2]
    if rows * cols < MIN_DECODE_PIXELS:
        raise ValueError("image too small for the watermark (under 256 x 256 pixels)")
    u = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[: rows // 4 * 4, : cols // 4 * 4, 1]
    approx = pywt.dwt2(u, "haar")[0]  # float64, half the size on each side
    b = DWT_BLOCK
    nr, nc = approx.shape[0] // b, approx.shape[1] // b
    blocks = approx[: nr * b, : nc * b].reshape(nr, b, nc, b).swapaxes(1, 2).reshape(nr * nc, b * b)
    pos = np.abs(blocks[:, 1:]).argmax(axis=1) + 1  # largest magnitude, the first coefficient excepted
    value = np.abs(blocks[np.arange(len(blocks)), pos])
    block_bits = (np.mod(value, DWT_SCALE) > 0.5 * DWT_SCALE).astype(np.float64)
    which = np.arange(len(blocks)) % length
    ones = np.bincount(which, weights=block_bits, minlength=length)
    counts = np.bincount(which, minlength=length)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = ones / counts  # NaN for a bit no block carries (an image too small for the payload)
    return share * 255 > 127


def read_watermark(data: bytes) -> tuple[list[Evidence], list[str]]:
    """(evidence, notes): an item for each exact payload found; notes on what was not done."""
    pixels, said = _pixels(data)
    if pixels is None:
        return [], [said]
    found: list[Evidence] = []
    for mark in MARKS:
        try:
            bits = decode_dwtdct(pixels, mark.length)
        except Exception as exc:
            found.append(note("watermark", f"{mark.name} could not be decoded ({type(exc).__name__}: {exc})"))
            continue
        got: bytes | tuple[int, ...] = (
            np.packbits(bits).tobytes() if mark.wm_type == "bytes" else tuple(int(x) for x in bits)
        )
        if got == mark.payload:
            found.append(Evidence("watermark", "ai", mark.generator,
                                  f"invisible watermark: {mark.name} ({mark.shown}, dwtDct) decoded exactly"))
    band = [said] if said else []
    if not any(e.says == "ai" for e in found):
        return found, [*band, "watermark: no Stable Diffusion v1 or SDXL watermark found"]
    return found, band
