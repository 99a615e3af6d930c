"""Do the heatmaps mean anything? A deletion test.

For each image, the region the CAM ranks highest (top 10 / 20 / 40 % of the image) is
blurred (``mode="blur"``) or removed (``mode="remove"``: filled with the image's mean
colour), and the fall of the predicted class's probability is compared with the fall when
the same area, chosen at random, is perturbed the same way. A faithful heatmap makes the
first fall larger than the second.

Both masks are drawn on the same coarse grid (cells of the CAM resized so that its long side
has ``GRID`` cells), so the CAM region and the random region have exactly the same area and
the same blockiness: a scattered random mask would touch more pixel neighbourhoods than a
compact one and unfairly hurt a detector that looks at pixel-level traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
from PIL import Image

from aidetect.errors import AidetectError, ImageLoadError
from aidetect.model.decode import load_image, to_rgb

if TYPE_CHECKING:
    from aidetect.inference import Detector, ImageInput

GRID = 16
Mode = Literal["blur", "remove"]


def _grid_shape(h: int, w: int) -> tuple[int, int]:
    s = GRID / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def cam_mask(cam: np.ndarray, fraction: float, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask (image shape) of the top ``fraction`` grid cells by CAM value."""
    gh, gw = _grid_shape(*cam.shape)
    grid = cv2.resize(cam.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    k = max(1, round(fraction * gh * gw))
    order = np.argsort(-grid.ravel(), kind="stable")[:k]
    return _upsample(order, (gh, gw), shape)


def random_mask(cam_shape: tuple[int, int], fraction: float, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    gh, gw = _grid_shape(*cam_shape)
    k = max(1, round(fraction * gh * gw))
    return _upsample(rng.choice(gh * gw, size=k, replace=False), (gh, gw), shape)


def _upsample(cells: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    small = np.zeros(grid[0] * grid[1], np.uint8)
    small[cells] = 1
    small = small.reshape(grid)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def perturb(rgb: np.ndarray, mask: np.ndarray, mode: Mode, blurred: np.ndarray | None = None) -> Image.Image:
    if mode == "blur":
        fill = blurred if blurred is not None else _blur(rgb)
    elif mode == "remove":
        fill = np.broadcast_to(rgb.reshape(-1, 3).mean(axis=0).round().astype(np.uint8), rgb.shape)
    else:
        raise AidetectError(f"unknown deletion mode {mode!r}; use 'blur' or 'remove'")
    out = rgb.copy()
    out[mask] = fill[mask]
    return Image.fromarray(out)


def _blur(rgb: np.ndarray) -> np.ndarray:
    sigma = max(2.0, min(rgb.shape[:2]) / 64)
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def _load(item: ImageInput) -> np.ndarray:
    if isinstance(item, Image.Image):
        return np.asarray(to_rgb(item))
    return np.asarray(load_image(item))


def deletion_test(
    detector: Detector,
    images: Sequence[ImageInput],
    fractions: Sequence[float] = (0.1, 0.2, 0.4),
    seed: int = 0,
    mode: Mode = "blur",
    random_draws: int = 3,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Run the deletion test on ``images`` (paths, bytes or PIL images) with ``detector``.

    Returns a JSON-friendly dict: ``n`` images scored, ``mode``, ``method``, ``fractions``,
    ``per_fraction`` (``fraction``, ``cam_drop`` and ``random_drop`` = mean fall of the
    predicted class's probability, ``cam_wins`` = share of images where the CAM region's
    fall beats the random one's), and ``errors`` (inputs that could not be scored).
    """
    if mode not in ("blur", "remove"):
        raise AidetectError(f"unknown deletion mode {mode!r}; use 'blur' or 'remove'")
    rng = np.random.default_rng(seed)
    size = batch_size or detector.settings.batch_size
    cam_drops: dict[float, list[float]] = {f: [] for f in fractions}
    rnd_drops: dict[float, list[float]] = {f: [] for f in fractions}
    errors: list[str] = []
    for start in range(0, len(images), size):
        chunk = list(images[start : start + size])
        verdicts = detector.classify(chunk, explain=True)
        perturbed: list[Image.Image] = []
        # per perturbed image: (group = one image x fraction, predicted-is-ai, is the CAM mask)
        meta: list[tuple[int, bool, bool]] = []
        groups: list[tuple[float, float]] = []  # (fraction, p0)
        for item, v in zip(chunk, verdicts, strict=True):
            if v.error or v.cam is None or v.prob_ai is None:
                errors.append(v.error or f"{v.source}: not explained")
                continue
            try:
                rgb = _load(item)
            except ImageLoadError as exc:  # pragma: no cover - classify decoded it a moment ago
                errors.append(str(exc))
                continue
            blurred = _blur(rgb) if mode == "blur" else None
            is_ai = v.label == "ai"
            p0 = v.prob_ai if is_ai else 1.0 - v.prob_ai
            for f in fractions:
                gid = len(groups)
                groups.append((f, p0))
                perturbed.append(perturb(rgb, cam_mask(v.cam, f, rgb.shape[:2]), mode, blurred))
                meta.append((gid, is_ai, True))
                for _ in range(random_draws):
                    m = random_mask(v.cam.shape, f, rgb.shape[:2], rng)
                    perturbed.append(perturb(rgb, m, mode, blurred))
                    meta.append((gid, is_ai, False))
        cam_fall: dict[int, float] = {}
        rnd_fall: dict[int, list[float]] = {}
        for j in range(0, len(perturbed), size):
            scored = detector.classify(perturbed[j : j + size], explain=False)
            for (gid, is_ai, is_cam), pv in zip(meta[j : j + size], scored, strict=True):
                assert pv.prob_ai is not None
                fall = groups[gid][1] - (pv.prob_ai if is_ai else 1.0 - pv.prob_ai)
                if is_cam:
                    cam_fall[gid] = fall
                else:
                    rnd_fall.setdefault(gid, []).append(fall)
        for gid, (f, _) in enumerate(groups):
            cam_drops[f].append(cam_fall[gid])
            rnd_drops[f].append(float(np.mean(rnd_fall[gid])) if gid in rnd_fall else float("nan"))
    per_fraction = []
    for f in fractions:
        c, r = np.asarray(cam_drops[f]), np.asarray(rnd_drops[f])
        per_fraction.append(
            {
                "fraction": float(f),
                "cam_drop": float(c.mean()) if c.size else None,
                "random_drop": float(r.mean()) if r.size else None,
                "cam_wins": float((c > r).mean()) if c.size and c.size == r.size else None,
            }
        )
    n = len(cam_drops[fractions[0]]) if fractions else 0
    return {
        "n": n,
        "mode": mode,
        "method": detector.cam_method,
        "model_version": detector.version,
        "fractions": [float(f) for f in fractions],
        "random_draws": random_draws,
        "per_fraction": per_fraction,
        "errors": errors,
    }


def faithfulness_markdown(result: dict[str, Any]) -> str:
    """A Markdown section for the evaluation report."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.3f}"

    lines = [
        "## Explanation faithfulness (deletion test)",
        "",
        f"{result['n']} images, CAM method `{result['method']}`, model `{result.get('model_version', '')}`; "
        f"the top-k% CAM region was {'blurred' if result['mode'] == 'blur' else 'removed (mean colour)'} "
        f"and compared with the same area chosen at random ({result.get('random_draws', 1)} draws). "
        "Drop = mean fall of the predicted class's probability; higher for CAM than for random "
        "means the heatmap points at what the model uses.",
        "",
        "| region | CAM drop | random drop | CAM - random | CAM wins |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in result["per_fraction"]:
        c, r = row["cam_drop"], row["random_drop"]
        diff = None if c is None or r is None else c - r
        wins = "n/a" if row["cam_wins"] is None else f"{row['cam_wins']:.0%}"
        lines.append(f"| top {row['fraction']:.0%} | {pct(c)} | {pct(r)} | {pct(diff)} | {wins} |")
    if result.get("errors"):
        lines += ["", f"{len(result['errors'])} image(s) could not be scored."]
    return "\n".join(lines) + "\n"
