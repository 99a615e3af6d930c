"""Decoding image files: one definition for scoring, training, evaluation and the dashboard.
Imports no torch (the dashboard decodes with it)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aidetect.errors import ImageLoadError

ImageSource = str | Path | bytes


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit and float images stretched to their range, transparency on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = Image.fromarray(((arr - lo) * scale).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(source: ImageSource, name: str | None = None, draft: int | None = None) -> Image.Image:
    """Decode ``source`` to an upright RGB image.

    ``draft``: a JPEG may be decoded at a reduced scale whose long side stays at least this
    many pixels (much faster for display; never used for scoring).

    Raises :class:`ImageLoadError` with a one-line reason for anything that is not a whole,
    decodable image (missing, unreadable, empty, truncated, not an image, decompression bomb).
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) stays on; its warning is
    treated as an error too.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageLoadError(f"{label}: empty file (0 bytes)")
            fh: io.BytesIO | Path = io.BytesIO(source)
        else:
            fh = Path(source)
            if fh.is_file() and fh.stat().st_size == 0:
                raise ImageLoadError(f"{label}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                if draft is not None:
                    img.draft("RGB", (draft, draft))
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{label}: refused as a possible decompression bomb ({exc})") from exc
    except FileNotFoundError as exc:
        raise ImageLoadError(f"{label}: file not found") from exc
    except PermissionError as exc:
        raise ImageLoadError(f"{label}: permission denied") from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(f"{label}: is a directory") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{label}: not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{label}: corrupted or truncated image ({exc})") from exc
