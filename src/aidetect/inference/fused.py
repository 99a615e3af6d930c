"""Scoring with a fused model (Detector v3): the CNN branch (a whole :class:`Detector` of its own
model directory: native-resolution views, its small-image model, its out-of-distribution check)
and the semantic branch (:mod:`aidetect.inference.semantic`), combined by the fusion head
(:mod:`aidetect.model.fusion`) and calibrated by the fused card (temperature, threshold,
uncertain band).

Each verdict says how much each branch contributed (``Verdict.branches``: the branch's calibrated
log-odds, its term of the fused logit and its share of the decision), and its heatmap is the
two branches' heatmaps weighted by those shares: the CNN's CAM over what its views saw and the
CLIP branch's Grad-CAM (last block, patch tokens) over its views (``fusion.clip_size`` px), summed and normalised;
parts neither saw stay "not seen". Images under ``fusion.clip_min_side`` (the CNN routes them to
its small-image model) are scored by the CNN branch alone (CLIP on an upscaled thumbnail says
nothing), and their verdict says so.

The cascade (``fusion.cnn_firm``, a probability q): where the CNN branch is already firm (its
calibrated P(ai) >= q or <= 1 - q, inside its training data), the CLIP branch is not run and the
CNN's own verdict stands; ``branches.skipped`` says why CLIP did not vote. q is chosen on
leave-one-source-out scores (docs/detector-v3.md) so that it costs no accuracy.
Knows nothing of Celery, SQL or Tk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from aidetect.errors import ModelLoadError
from aidetect.inference.decoding import Decoded, ImageInput, source_name
from aidetect.inference.semantic import ClipBranch, ClipViews
from aidetect.inference.verdict import Verdict
from aidetect.inference.views import stitch
from aidetect.model.card import CARD_FILE, ModelCard
from aidetect.model.clip import INPUT_SIZE
from aidetect.model.fusion import FusionHead, shares
from aidetect.wording import uncertainty

if TYPE_CHECKING:
    from aidetect.inference.detector import Detector

LOGIT_CLIP = 1e-6  # probabilities kept inside [1e-6, 1 - 1e-6] before taking log-odds


def log_odds(p: float) -> float:
    p = min(max(float(p), LOGIT_CLIP), 1 - LOGIT_CLIP)
    return float(np.log(p / (1 - p)))


def branch_dir(model_dir: Path, name: str, marker: str) -> Path:
    """A branch named by a fused card: a folder relative to the model directory, else one shipped
    with aidetect by that name. ``marker``: a file the folder must hold."""
    from aidetect.config import SHIPPED_MODEL_DIR

    for cand in ((model_dir / name).resolve(), SHIPPED_MODEL_DIR.parent / Path(name).name):
        if (cand / marker).is_file():
            return cand
    raise ModelLoadError(f"{model_dir}: its branch {name!r} is not there, nor shipped with aidetect")


class FusedScorer:
    """Holds the CNN branch's Detector, the CLIP branch and the head of one fused model."""

    def __init__(self, owner: Detector, head: FusionHead, card: ModelCard) -> None:
        from aidetect.inference.detector import Detector

        fusion = card.fusion or {}
        self.owner, self.head, self.card = owner, head.to(owner.device).eval(), card
        for p in self.head.parameters():
            p.requires_grad_(False)
        cnn_dir = branch_dir(owner.model_dir, str(fusion["cnn"]), CARD_FILE)
        self.cnn = Detector(cnn_dir, owner.device, owner.cam_method, threads=0, precision=owner.precision,
                            provenance=False)
        from aidetect.inference.semantic import ENCODER_FILE

        clip_dir = branch_dir(owner.model_dir, str(fusion["clip"]), ENCODER_FILE)
        self.clip = ClipBranch(clip_dir, self.head, owner.device, owner.amp_dtype,
                               str(fusion.get("clip_views", "center")), owner.cam_method,
                               int(fusion.get("clip_size", INPUT_SIZE)))
        self.clip_min_side = int(fusion.get("clip_min_side", self.cnn.min_side or 0))
        self.cnn_firm = float(fusion["cnn_firm"]) if fusion.get("cnn_firm") is not None else None

    def skip_reason(self, semantic: bool, c: Verdict) -> str | None:
        """Why the CLIP branch does not vote on this image (None: it does); ``semantic``: the
        image is large enough for it."""
        if not semantic:
            return f"image under {self.clip_min_side} px"
        firm = self.cnn_firm is not None and c.prob_ai is not None and not c.uncertain
        if firm and max(c.prob_ai, 1 - c.prob_ai) >= self.cnn_firm:  # type: ignore[arg-type,operator]
            return f"cnn firm (p >= {self.cnn_firm:g})"
        return None

    def classify(self, items: list[ImageInput], explain: bool, target: str,
                 heatmap_dir: str | Path | None) -> list[Verdict]:
        owner = self.owner
        verdicts = [Verdict(source=source_name(it, i), model_version=owner.version) for i, it in enumerate(items)]
        images, decoded, semantic = [], [], []
        for i, item in enumerate(items):
            v = verdicts[i]
            img = owner.open_item(item, v)
            if img is None:
                continue
            semantic.append(min(img.size) >= self.clip_min_side)
            base = owner._overlay_base(img) if heatmap_dir is not None else None
            decoded.append(Decoded(i, img.width, img.height, base, v.sha256 or "", v.format))
            images.append(img)
        if not images:
            return verdicts
        t0 = time.perf_counter()
        cnn = self.cnn._classify(images, explain, target, None)  # type: ignore[arg-type]
        cnn_s = (time.perf_counter() - t0) / len(cnn)
        cnn_logit = np.array([log_odds(c.prob_ai) if c.prob_ai is not None else 0.0 for c in cnn])
        skipped = [None if c.error else self.skip_reason(sem, c) for sem, c in zip(semantic, cnn, strict=True)]
        with_clip = [k for k, c in enumerate(cnn) if c.error is None and skipped[k] is None]
        clip_logit = np.zeros(len(cnn))
        clip_cams: dict[int, np.ndarray] = {}
        t1 = time.perf_counter()
        # the CLIP views of the images the branch scores only (the decoded images were alive for
        # the CNN pass anyway; a firm image's views are never made)
        clip_views: dict[int, ClipViews] = {k: self.clip.views(images[k]) for k in with_clip}
        del images
        if with_clip:
            views = [clip_views[k] for k in with_clip]

            def explained(clip_now: np.ndarray) -> np.ndarray:
                """The class each image's heatmap explains: from the fused verdict of this forward."""
                fused_now = self._fuse(cnn_logit[with_clip], clip_now)
                ai = np.array([self.card.verdict(p)[0] == "ai" for p in self._probs(fused_now)])
                return (ai if target == "predicted" else ~ai).astype(int)

            logits, cams = self.clip.score(views, explain=explain, choose=explained)
            clip_logit[with_clip] = logits
            if cams is not None:
                clip_cams = {k: c for k, c in zip(with_clip, cams, strict=True)}
        clip_s = (time.perf_counter() - t1) / max(1, len(with_clip))
        out_dir = Path(heatmap_dir) if heatmap_dir is not None else None
        for k, d in enumerate(decoded):
            v, c = verdicts[d.index], cnn[k]
            if c.error:
                v.error = c.error
                continue
            self._verdict(v, c, float(cnn_logit[k]), float(clip_logit[k]) if skipped[k] is None else None,
                          clip_views.get(k), clip_cams.get(k), d, skipped[k])
            v.timings.update({"cnn": cnn_s, **({"clip": clip_s} if skipped[k] is None else {})})
            if out_dir is not None and v.cam is not None:
                owner._write_files(v, out_dir, d.overlay_base)
            v.timings["total"] = sum(v.timings.values())
        return verdicts

    # -- internals -----------------------------------------------------------------------
    def _fuse(self, cnn_logit: np.ndarray, clip_logit: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.head(torch.as_tensor(cnn_logit, dtype=torch.float32),
                             torch.as_tensor(clip_logit, dtype=torch.float32)).numpy().astype(np.float64)

    def _probs(self, fused: np.ndarray) -> np.ndarray:
        t = float(self.card.temperature or 1.0)
        return 1.0 / (1.0 + np.exp(-np.asarray(fused, np.float64) / t))

    def _verdict(self, v: Verdict, c: Verdict, cnn_logit: float, clip_logit: float | None,
                 views: ClipViews | None, clip_cam: np.ndarray | None, d: Decoded, skipped: str | None = None) -> None:
        """Fill ``v`` from the CNN branch's verdict ``c`` and the CLIP branch's logit (None: the
        CNN's verdict alone, for the reason ``skipped``)."""
        v.tiles, v.seen, v.ood_score = c.tiles, c.seen, c.ood_score
        # scored by this fused model, unless the CNN branch routed the image to its small-image model
        v.scored_by = c.scored_by if c.scored_by != c.model_version else v.model_version
        v.cam_method, v.cam_target, v.cam_class = c.cam_method, c.cam_target, c.cam_class
        outside = c.uncertain_reason == "outside training data"
        if clip_logit is None:  # the CNN branch alone (small image, or firm): its own calibrated verdict
            v.prob_ai, v.label, v.uncertain, v.uncertain_reason = c.prob_ai, c.label, c.uncertain, c.uncertain_reason
            v.branches = {"cnn": {"logit": round(cnn_logit, 4), "contribution": round(cnn_logit, 4), "share": 1.0},
                          "clip": None, "skipped": skipped}
            v.cam = c.cam
            return
        with torch.no_grad():
            contrib = self.head.contributions(torch.tensor([cnn_logit]), torch.tensor([clip_logit]))[0].numpy()
        p = float(self._probs(self._fuse(np.array([cnn_logit]), np.array([clip_logit])))[0])
        v.prob_ai = p
        v.label, in_band = self.card.verdict(p)
        v.uncertain, v.uncertain_reason = uncertainty(in_band, outside)
        share = shares(contrib)
        v.branches = {
            name: {"logit": round(lg, 4), "contribution": round(float(ct), 4), "share": round(float(sh), 4)}
            for name, lg, ct, sh in zip(("cnn", "clip"), (cnn_logit, clip_logit), contrib, share, strict=True)
        }
        v.branches["skipped"] = None
        if c.cam is not None and clip_cam is not None and views is not None:
            v.cam_class = v.label if v.cam_target != "other" else ("real" if v.label == "ai" else "ai")
            v.cam = fused_heatmap(c.cam, stitch(clip_cam, views.plan, d.width, d.height), share, self.clip.patches)


def fused_heatmap(cnn_cam: np.ndarray, clip_cam: np.ndarray, share: np.ndarray, patches: int = 14) -> np.ndarray:
    """The two branches' heatmaps (each normalised over what it saw, NaN elsewhere; same canvas)
    as one: share-weighted sum, 0 for a branch where it did not look, NaN where neither did,
    normalised over the seen part. Where the CNN saw more than the CLIP views (the centre square
    of a wide image), the CLIP term fades in from the views' border over one patch
    (1 / ``patches`` of the canvas's short side, the centre square's side; ``patches``: the CLIP
    view's patch grid, 14 at 224 px), so the sum has no seam at the square's edge that neither
    branch's evidence has."""
    import cv2

    from aidetect.explain.cam import normalise

    a, b = np.isfinite(cnn_cam), np.isfinite(clip_cam)
    width = max(1.0, min(clip_cam.shape) / patches)
    inside = cv2.distanceTransform(b.astype(np.uint8), cv2.DIST_L2, 3)  # 0 outside; image edges are no border
    fade = np.where(a, np.clip(inside / width, 0.0, 1.0), 1.0)
    total = share[0] * np.where(a, cnn_cam, 0) + share[1] * fade * np.where(b, clip_cam, 0)
    return normalise(np.where(a | b, total, np.nan).astype(np.float32))


__all__ = ["FusedScorer", "fused_heatmap", "log_odds"]
