"""Synthetic off-domain images: what a detector of photographs has never seen and must not
judge. Used to measure the out-of-distribution flag when it is fitted (recorded in the card),
in ``aidetect evaluate`` and in the tests. Deterministic for a seed."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = ("invoice total amount due", "def main(): return 0", "Quarterly report 2026", "Settings  General  Privacy",
         "Lorem ipsum dolor sit amet", "Error 404 page not found", "Meeting notes: action items")


def default_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` px (the fixed bitmap font where Pillow has no FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def uniform_noise(size: int, rng: random.Random) -> Image.Image:
    arr = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def flat_colour(size: int, rng: random.Random) -> Image.Image:
    return Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))


def text_screenshot(size: int, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (size, size), (255, 255, 255) if rng.random() < 0.7 else (30, 30, 30))
    draw = ImageDraw.Draw(img)
    ink = (20, 20, 20) if img.getpixel((0, 0))[0] > 128 else (230, 230, 230)
    font = default_font(max(10, size // 16))
    y = rng.randrange(4, 12)
    while y < size - 8:
        draw.text((rng.randrange(4, 16), y), rng.choice(WORDS), fill=ink, font=font)
        y += max(12, size // 12)
    return img


def diagram(size: int, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = default_font(max(9, size // 20))
    boxes = []
    for _ in range(rng.randrange(3, 6)):
        x, y = rng.randrange(0, size - 60), rng.randrange(0, size - 30)
        w, h = rng.randrange(40, 80), rng.randrange(20, 40)
        fill = rng.choice([(255, 255, 255), (220, 235, 250), (250, 240, 210)])
        draw.rectangle((x, y, x + w, y + h), outline=(0, 0, 0), fill=fill, width=2)
        draw.text((x + 4, y + 4), rng.choice(("Class", "Node", "Store", "View")), fill=(0, 0, 0), font=font)
        boxes.append((x + w // 2, y + h // 2))
    for a, b in zip(boxes, boxes[1:], strict=False):
        draw.line((*a, *b), fill=(0, 0, 0), width=2)
    return img


PROBES = {"noise": uniform_noise, "flat": flat_colour, "text": text_screenshot, "diagram": diagram}


def synthetic_probes(size: int, per_kind: int = 8, seed: int = 0) -> dict[str, list[Image.Image]]:
    """``per_kind`` RGB images of ``size`` x ``size`` px of each kind in :data:`PROBES`."""
    rng = random.Random(seed)
    return {kind: [make(size, rng) for _ in range(per_kind)] for kind, make in PROBES.items()}
