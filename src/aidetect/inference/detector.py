"""The inference engine: load a model directory once, score batches of images, explain them.

``Detector.classify(items)`` decodes every item (path, bytes or PIL image), turns each into
one or more native-resolution views (:mod:`aidetect.inference.views`: the whole image, or
windows of it, for the default model; input-size tiles or a resize + centre crop for the
CIFAKE model), and runs **one forward and one backward per pass** (images whose views share
a shape, at most MAX_PIXELS_PER_PASS pixels) through pytorch-grad-cam, under bf16 autocast
where the CPU has it; the logits reported come from that same forward. View logits are
averaged per image, then calibrated (``softmax(logits / card.temperature)``); view CAMs are
stitched into one heatmap over the full image. A bad item yields a :class:`Verdict` with
``error`` set; the others are scored as usual.

This module knows nothing of Celery, SQL or Tk; workers, the watcher, the GUI and the CLI
all call it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import torch
from PIL import Image

from aidetect.config import SHIPPED_MODEL_DIR, get_settings, read_trust_anchors
from aidetect.errors import AidetectError, ConfigError, ImageLoadError, ModelLoadError
from aidetect.explain.cam import DEFAULT_METHOD, batched_cam, resolve_method
from aidetect.explain.overlay import (
    cam_file_array,
    heatmap_names,
    overlay_size,
    render_overlay,
    write_image,
)
from aidetect.inference.decoding import Decoded, ImageInput, decode_item, source_name
from aidetect.inference.verdict import Verdict, apply_policy, read_provenance
from aidetect.inference.views import ViewPlan, plan_views, seen_share, stitch
from aidetect.model import AI_INDEX, CLASSES, EvalPreset, ModelCard, load_model_dir
from aidetect.model.card import CARD_FILE
from aidetect.model.decode import to_rgb
from aidetect.model.ood import FeatureTap, flat_share, load_ood
from aidetect.model.precision import PRECISIONS, pick_precision
from aidetect.model.preprocess import Normalisation
from aidetect.runtime import tune_malloc

if TYPE_CHECKING:
    from aidetect.inference.fused import FusedScorer
from aidetect.wording import uncertainty

log = logging.getLogger(__name__)
SHIPPED_MODELS = SHIPPED_MODEL_DIR.parent

Target = Literal["predicted", "other"]


@dataclass
class Prepared:
    """Output of :meth:`Detector.prepare`: one verdict per item, what was decoded, their
    view plans and uint8 views (one (k, 3, h, w) tensor per decoded image, normalised per
    pass), and the images routed to the small-image model."""

    verdicts: list[Verdict]
    decoded: list[Decoded]
    plans: list[ViewPlan]
    views: list[torch.Tensor]
    routed: list[tuple[int, Image.Image]] = field(default_factory=list)  # (item, image) for the small-image model
    flat: list[torch.Tensor] | None = None  # per image, per view: share of flat pixels (models with an OOD check)


@dataclass
class Pass:
    """Images scored by one forward (+ one backward): their views stacked (all of one shape),
    each image's row range in ``batch``."""

    decoded: list[Decoded]
    plans: list[ViewPlan]
    rows: list[tuple[int, int]]
    batch: torch.Tensor  # uint8 (N, 3, h, w)
    flat: torch.Tensor | None = None


# --------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------
def small_model_dir(model_dir: Path, name: str) -> Path:
    """Where a card's ``small_images.model`` is: a directory relative to the model directory,
    else a model shipped with aidetect by that name (so that a copy of the shipped default
    elsewhere still finds it)."""
    here = (model_dir / name).resolve()
    if (here / CARD_FILE).is_file():
        return here
    shipped = SHIPPED_MODELS / Path(name).name
    if (shipped / CARD_FILE).is_file():
        return shipped
    raise ModelLoadError(f"{model_dir}: its model for small images ({name}) is not there, nor shipped with aidetect")


# pixels of the views of one pass: bounds memory (a batch of 12 MP photos is hundreds of
# views); 8 views of 512 px was the fastest pass measured for the default (bf16, 2 threads:
# 36 img/s against 32 at 12-16 views and 26-30 at 1-2)
MAX_PIXELS_PER_PASS = 8 * 512 * 512


def make_passes(prep: Prepared, max_pixels: int = MAX_PIXELS_PER_PASS) -> list[Pass]:
    """The images of ``prep`` grouped into passes: images whose views have one shape go
    together (in input order), a pass holds views of at most ``max_pixels`` pixels (an image
    with more is a pass of its own); one pass when everything fits."""
    groups: dict[tuple[int, int], list[int]] = {}
    for k, v in enumerate(prep.views):
        groups.setdefault((int(v.shape[-2]), int(v.shape[-1])), []).append(k)
    chunks: list[list[int]] = []
    for (h, w), members in groups.items():
        chunk: list[int] = []
        pixels = 0
        for k in members:
            size = prep.views[k].shape[0] * h * w
            if chunk and pixels + size > max_pixels:
                chunks.append(chunk)
                chunk, pixels = [], 0
            chunk.append(k)
            pixels += size
        chunks.append(chunk)
    return [_pass_of(prep, chunk) for chunk in chunks]


def _pass_of(prep: Prepared, members: list[int]) -> Pass:
    rows, start = [], 0
    for j in members:
        rows.append((start, start + prep.views[j].shape[0]))
        start = rows[-1][1]
    flat = torch.cat([prep.flat[j] for j in members]) if prep.flat is not None else None
    return Pass([prep.decoded[j] for j in members], [prep.plans[j] for j in members], rows,
                torch.cat([prep.views[j] for j in members]), flat)


def select_device(device: str | torch.device | None) -> torch.device:
    """The torch device to score on: ``device``, or CUDA when available, else the CPU.
    A name torch does not know, or an accelerator this machine does not have, is an
    :class:`AidetectError` with one line (never a traceback from CUDA's initialisation)."""
    if device is None or (isinstance(device, str) and not device.strip()):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(device.strip().lower())
        except (RuntimeError, ValueError):
            raise AidetectError(f"device {device!r}: not a torch device; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise AidetectError(f"device {device!r}: no CUDA GPU is usable on this machine; use cpu")
        if dev.index is not None and dev.index >= count:
            raise AidetectError(f"device {device!r}: this machine has {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise AidetectError(f"device {device!r}: Apple MPS is not available on this machine; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        backend = getattr(torch, dev.type, None)
        available = getattr(backend, "is_available", None)
        if not callable(available) or not available():
            raise AidetectError(f"device {device!r}: not available on this machine; use cpu")
    return dev


class Detector:
    """Load a model directory once; score and explain batches of images.

    ``model_dir`` defaults to ``settings.model`` (the shipped model unless configured);
    ``device`` to CUDA when available, else CPU; ``cam_method`` to ``settings.cam_method``;
    ``tile_min_side``/``max_tiles`` (view policy), ``precision`` (autocast dtype: auto, fp32,
    bf16, fp16) and ``threads`` (torch CPU threads, set process-wide when > 0) to the settings
    of the same names. With ``provenance`` (default)
    each file's metadata is read too (:mod:`aidetect.provenance`) and the verdict policy
    (:func:`aidetect.inference.verdict.apply_policy`) applied: strong AI evidence decides.
    Calls are serialised by a lock, so one Detector can be shared between threads.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        cam_method: str | None = None,
        *,
        tile_min_side: int | None = None,
        max_tiles: int | None = None,
        threads: int | None = None,
        precision: str | None = None,
        provenance: bool = True,
    ) -> None:
        settings = get_settings()
        self.read_provenance = provenance  # evidence from the file's metadata (aidetect.provenance)
        self.trust_anchors = read_trust_anchors(settings) if provenance else None
        tune_malloc()  # activation buffers reused instead of re-mapped every pass (aidetect.runtime)
        threads = settings.torch_threads if threads is None else threads
        if threads > 0:
            # Process-wide. One thread per process is much faster when the CPU is shared
            # (OpenMP workers spin-wait for busy cores); Celery runs one process per core.
            torch.set_num_threads(threads)
        self.settings = settings
        self.model_dir = Path(model_dir) if model_dir is not None else settings.model
        self.device = select_device(device)
        self.cam_method = resolve_method(cam_method or settings.cam_method)
        # bf16 autocast on CPUs with AVX512-BF16/AMX (1.9x the fp32 forward here), fp16 on CUDA;
        # the head and the calibrated probabilities stay fp32 (docs/inference.md)
        self.precision = settings.precision if precision is None else precision
        if precision is None and self.precision.strip().lower() not in PRECISIONS:  # the setting names itself
            raise ConfigError(f"AIDETECT_PRECISION={self.precision!r}: choose {', '.join(PRECISIONS)}")
        self.amp_dtype = pick_precision(self.precision, self.device)
        self.tile_min_side = settings.tile_min_side if tile_min_side is None else tile_min_side
        self.max_tiles = settings.max_tiles if max_tiles is None else max_tiles
        model, card = load_model_dir(self.model_dir, device=self.device)
        for p in model.parameters():
            p.requires_grad_(False)
        self._lock = threading.Lock()
        self.fused: FusedScorer | None = None
        if card.fusion:  # two branches (Detector v3): the CNN's own Detector + CLIP + the head
            self._init_fused(model, card)
            return
        fuse = getattr(model, "fuse_for_inference", None)
        if callable(fuse):  # BatchNorm folded, activations fused into the convolutions: the same function
            fuse()
        # OpenCV's own thread pool (overlay resizing and encoding) competes with torch's threads
        # for the cores: one thread, measured 20-23 -> 23-24 img/s at 512 px on 2 cores
        cv2.setNumThreads(1)
        # NHWC convolutions: measured ~30% faster forward on CPU (oneDNN) for these CNNs
        self.memory_format = torch.channels_last
        model = model.to(memory_format=self.memory_format)
        self.model = model
        self.card: ModelCard = card
        self.version: str = card.version or f"{card.architecture}-unversioned"
        self.input_size = int(card.input_size)
        # fully convolutional views (card ``views``): the whole image up to whole_max_pixels, else
        # windows; the setting max_tiles caps the windows too
        self.window = int(card.views.get("window", 0))
        self.whole_max_pixels = int(card.views.get("whole_max_pixels", 0))
        self.max_windows = min(self.max_tiles, int(card.views.get("max_windows", self.max_tiles)))
        self.preset = EvalPreset(self.input_size, Normalisation(tuple(card.mean), tuple(card.std)))  # type: ignore[arg-type]
        self.layer = model.cam_layer
        # out-of-distribution score on the pooled features, captured in the same forward
        self.ood = load_ood(self.model_dir, card.ood)
        self.ood_layers = list(model.ood_layers) if self.ood is not None else []
        # images smaller than the model's domain go to the model of small images, if it names one
        self.min_side = int(card.domain.get("min_side", 0))
        self.max_side = int(card.domain.get("max_side", 0))
        self.small: Detector | None = None
        if card.small_images:
            small_dir = small_model_dir(self.model_dir, str(card.small_images["model"]))
            self.small = Detector(small_dir, self.device, cam_method, tile_min_side=tile_min_side,
                                  max_tiles=max_tiles, threads=0, precision=self.precision, provenance=False)

    def _init_fused(self, head: torch.nn.Module, card: ModelCard) -> None:
        """A fused model: the views, the small-image routing and the OOD check are the CNN branch's."""
        from aidetect.inference.fused import FusedScorer

        cv2.setNumThreads(1)
        self.model, self.card = head, card
        self.version = card.version or f"{card.architecture}-unversioned"
        self.fused = FusedScorer(self, head, card)  # type: ignore[arg-type]
        cnn = self.fused.cnn
        self.input_size, self.min_side, self.max_side = cnn.input_size, cnn.min_side, cnn.max_side
        self.window, self.whole_max_pixels, self.max_windows = cnn.window, cnn.whole_max_pixels, cnn.max_windows
        self.preset, self.small, self.ood = cnn.preset, None, None

    # -- public API ----------------------------------------------------------------------
    def classify(
        self,
        items: Sequence[ImageInput],
        explain: bool = True,
        target: Target = "predicted",
        heatmap_dir: str | Path | None = None,
    ) -> list[Verdict]:
        """Score ``items`` (same order in the result). With ``explain`` each verdict gets
        ``cam`` (the class explained is the predicted one, or the other with
        ``target="other"``); with ``heatmap_dir`` the raw CAM and overlay files are written
        there too (implies ``explain``) and their paths set on the verdict."""
        if target not in ("predicted", "other"):
            raise AidetectError(f"unknown CAM target {target!r}; use 'predicted' or 'other'")
        if heatmap_dir is not None:
            explain = True
        with self._lock:
            return self._classify(list(items), explain, target, heatmap_dir)

    def save_heatmaps(
        self,
        verdict: Verdict,
        out_dir: str | Path,
        image: ImageInput | None = None,
    ) -> tuple[Path, Path]:
        """Write the raw CAM (8-bit grayscale PNG) and the overlay PNG of an explained
        verdict under ``out_dir``; returns (cam_path, overlay_path). Files already there
        (same content, model version, method and target) are kept, not rewritten.
        ``image`` is the picture to draw on; by default the verdict's source path is
        decoded again."""
        if verdict.cam is None or verdict.sha256 is None:
            raise AidetectError(f"{verdict.source}: nothing to draw (not scored with explain=True)")
        if image is None:
            if verdict.source.startswith("<"):
                raise AidetectError(f"{verdict.source}: pass the image to draw the overlay on")
            image = verdict.source
        with self._lock:
            return self._write(verdict, Path(out_dir), image)

    # -- internals ----------------------------------------------------------------------
    def prepare(self, items: Sequence[ImageInput], keep_overlay_base: bool = False) -> Prepared:
        """Decode + preprocess stage only (no model): the verdict shells (errors filled in
        for bad items) and the normalised batch of views. ``classify`` = this + the pass.
        Decoded images are not kept (a batch of large photos would hold gigabytes); with
        ``keep_overlay_base`` a copy already shrunk to the overlay's size is."""
        verdicts = [Verdict(source=source_name(it, i), model_version=self.version) for i, it in enumerate(items)]
        routed: list[tuple[int, Image.Image]] = []
        decoded: list[Decoded] = []
        views: list[torch.Tensor] = []
        flats: list[torch.Tensor] = []
        plans: list[ViewPlan] = []
        for i, item in enumerate(items):
            v = verdicts[i]
            img = self.open_item(item, v)
            if img is None:
                continue
            t1 = time.perf_counter()
            sha, fmt = v.sha256, v.format
            assert sha is not None
            if self.small is not None and min(img.size) < self.min_side:
                routed.append((i, img))
                continue
            plan = self.plan(img.width, img.height)
            if plan.tiles:
                arr = np.asarray(img)
                vw, vh = plan.view
                # kept as uint8 (a quarter of the float size), in NHWC memory: the channels-last layout
                # the network runs in, with no transposing copy; each pass normalises its own views
                own = torch.from_numpy(np.stack([arr[y : y + vh, x : x + vw] for x, y in plan.tiles])).permute(0, 3, 1, 2)
            else:
                own = self.preset.to_uint8(img)[None]
            views.append(own)
            if self.ood is not None:
                flats.append(flat_share(own))
            plans.append(plan)
            base = self._overlay_base(img) if keep_overlay_base else None
            decoded.append(Decoded(i, img.width, img.height, base, sha, fmt))
            v.seen = round(seen_share(plan, img.width, img.height), 3)
            del img
            v.tiles = own.shape[0]
            v.timings["preprocess"] = time.perf_counter() - t1
        return Prepared(verdicts, decoded, plans, views, routed, flats if self.ood is not None else None)

    def open_item(self, item: ImageInput, v: Verdict) -> Image.Image | None:
        """Decode one input for verdict ``v`` (its hash, format, size, timings; its provenance
        evidence, read from the same bytes, when this Detector reads provenance); None with
        ``v.error`` set when it does not decode."""
        t0 = time.perf_counter()
        try:
            img, sha, fmt, data = decode_item(item, v.source)
        except ImageLoadError as exc:
            v.error = str(exc)
            v.timings["decode"] = time.perf_counter() - t0
            return None
        t1 = time.perf_counter()
        v.sha256, v.format, (v.width, v.height) = sha, fmt, img.size
        v.timings["decode"] = t1 - t0
        if self.read_provenance and data is not None:
            v.evidence = read_provenance(data, fmt, self.trust_anchors)
            v.timings["provenance"] = time.perf_counter() - t1
        return img

    def plan(self, width: int, height: int) -> ViewPlan:
        """What this model sees of an image of ``width`` x ``height`` (:func:`plan_views`)."""
        if self.window:
            return plan_views(width, height, self.input_size, self.tile_min_side, self.max_windows,
                              window=self.window, whole_max_pixels=self.whole_max_pixels)
        return plan_views(width, height, self.input_size, self.tile_min_side, self.max_tiles)

    def _classify(self, items: list[ImageInput], explain: bool, target: Target, heatmap_dir: str | Path | None) -> list[Verdict]:
        if self.fused is not None:
            verdicts = self.fused.classify(items, explain, target, heatmap_dir)
            for v in verdicts:
                apply_policy(v)
            return verdicts
        prep = self.prepare(items, keep_overlay_base=heatmap_dir is not None)
        if prep.routed:
            self._classify_small(prep, explain, target, heatmap_dir)
        for part in make_passes(prep):
            self._score(prep.verdicts, part, explain, target, heatmap_dir)
        for v in prep.verdicts:
            apply_policy(v)
        return prep.verdicts

    def _score(self, verdicts: list[Verdict], prep: Pass, explain: bool, target: Target,
               heatmap_dir: str | Path | None) -> None:
        """One forward (+ one backward with ``explain``) over the views of a pass: fills its verdicts."""
        decoded, plans, rows, batch = prep.decoded, prep.plans, prep.rows, prep.batch
        t0 = time.perf_counter()
        batch = self.preset.normalise(batch).to(self.device, memory_format=self.memory_format)
        n_img = len(decoded)
        owner = np.concatenate([np.full(b - a, k) for k, (a, b) in enumerate(rows)])
        state: dict[str, np.ndarray] = {}

        def per_image_mean(rows_of_views: torch.Tensor) -> torch.Tensor:
            """(views, k) -> (images, k): the mean over each image's views (logits, statistics)."""
            logits = rows_of_views
            out = torch.zeros((n_img, logits.shape[1]), dtype=logits.dtype, device=logits.device)
            out.index_add_(0, torch.as_tensor(owner, device=logits.device), logits)
            counts = torch.as_tensor([b - a for a, b in rows], dtype=logits.dtype, device=logits.device)
            return out / counts[:, None]

        def choose(logits: torch.Tensor) -> np.ndarray:
            probs = self._probs(per_image_mean(logits))
            state["probs"] = probs
            pred = np.array([AI_INDEX if self.card.verdict(float(p))[0] == "ai" else 1 - AI_INDEX for p in probs])
            cls = pred if target == "predicted" else 1 - pred
            return cls[owner]

        cams: np.ndarray | None = None
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)
        with FeatureTap(self.ood_layers) as tap, autocast:  # early-block statistics, from the same forward
            if explain:
                res = batched_cam(self.model, self.layer, batch, choose, self.cam_method)
                cams = res.cams
                probs = state["probs"]
            else:
                with torch.inference_mode():
                    probs = self._probs(per_image_mean(self.model(batch)))
        ood_scores = ood_outside = None
        if self.ood is not None and prep.flat is not None:  # in fp32, outside autocast
            # an image's statistics and flat share: the mean over its views, checked once per image
            ood_scores = self.ood.score(per_image_mean(tap.features().to(batch.device)))
            flat = per_image_mean(prep.flat[:, None].to(batch.device)).flatten().cpu().numpy()
            ood_outside = self.ood.outside(ood_scores, flat)
        model_s = (time.perf_counter() - t0) / n_img

        out_dir = Path(heatmap_dir) if heatmap_dir is not None else None
        for k, d in enumerate(decoded):
            v = verdicts[d.index]
            t1 = time.perf_counter()
            p = float(probs[k])
            v.prob_ai = p
            v.scored_by = self.version
            v.label, in_band = self.card.verdict(p)
            outside = self._outside_domain(d.width, d.height)
            if ood_scores is not None and ood_outside is not None:
                v.ood_score = round(float(ood_scores[k]), 4)
                outside = outside or bool(ood_outside[k])
            v.uncertain, v.uncertain_reason = uncertainty(in_band, outside)
            v.timings["model"] = model_s
            if cams is not None:
                a, b = rows[k]
                w, h = d.width, d.height
                v.cam = stitch(cams[a:b], plans[k], w, h)
                v.cam_method, v.cam_target = self.cam_method, target
                pred = AI_INDEX if v.label == "ai" else 1 - AI_INDEX
                v.cam_class = CLASSES[pred if target == "predicted" else 1 - pred]
                v.timings["cam"] = time.perf_counter() - t1
                if out_dir is not None:
                    self._write_files(v, out_dir, d.overlay_base)
            v.timings["total"] = sum(v.timings.values())

    def _write_files(self, v: Verdict, out_dir: Path, image: ImageInput | np.ndarray) -> None:
        """Write one verdict's heatmap files; a failure (disk full, permissions) is recorded on
        the verdict, which stands."""
        t0 = time.perf_counter()
        try:
            self._write(v, out_dir, image)
        except OSError as exc:
            v.heatmap_error = f"{out_dir}: heatmap not written ({exc.strerror or exc})"
            log.warning("%s: %s", v.source, v.heatmap_error)
        v.timings["write"] = time.perf_counter() - t0

    def _outside_domain(self, width: int, height: int) -> bool:
        """Images whose size the model was never trained on (card ``domain``)."""
        return min(width, height) < self.min_side or bool(self.max_side and max(width, height) > self.max_side)

    def _classify_small(self, prep: Prepared, explain: bool, target: Target, heatmap_dir: str | Path | None) -> None:
        """Score the images routed to the small-image model; their verdicts name that model."""
        assert self.small is not None
        small = self.small._classify([img for _, img in prep.routed], explain, target, None)
        out_dir = Path(heatmap_dir) if heatmap_dir is not None else None
        for (i, img), sv in zip(prep.routed, small, strict=True):
            v = prep.verdicts[i]
            sv.source, sv.sha256, sv.format, sv.evidence = v.source, v.sha256, v.format, v.evidence
            sv.model_version, sv.scored_by = self.version, self.small.version
            sv.timings = {**v.timings, **{k: t for k, t in sv.timings.items() if k != "decode"}}
            if out_dir is not None and sv.cam is not None:
                self.small._write_files(sv, out_dir, img)
            prep.verdicts[i] = sv

    def _probs(self, logits: torch.Tensor) -> np.ndarray:
        t = float(self.card.temperature or 1.0)
        return torch.softmax(logits.detach().float() / t, dim=1)[:, AI_INDEX].cpu().numpy().astype(np.float64)

    def _overlay_base(self, img: Image.Image) -> np.ndarray:
        arr = np.asarray(img)
        size = overlay_size(img.width, img.height, self.settings.overlay_max_side)
        if size != img.size:
            arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
        return arr

    def _write(self, verdict: Verdict, out_dir: Path, image: ImageInput | np.ndarray) -> tuple[Path, Path]:
        assert verdict.cam is not None and verdict.sha256 is not None
        cam_rel, ov_rel = heatmap_names(
            verdict.sha256, self.version, verdict.cam_method or self.cam_method,
            verdict.cam_target or "predicted", DEFAULT_METHOD,
        )
        cam_path, ov_path = out_dir / cam_rel, out_dir / ov_rel
        if not cam_path.exists():
            write_image(cam_path, cam_file_array(verdict.cam))
        if not ov_path.exists():
            if isinstance(image, np.ndarray):
                img: Image.Image | np.ndarray = image
            elif isinstance(image, Image.Image):
                img = to_rgb(image)
            else:
                img = decode_item(image, verdict.source)[0]
            write_image(
                ov_path,
                render_overlay(img, verdict.cam, self.settings.overlay_max_side, self.settings.overlay_alpha),
            )
        verdict.cam_path, verdict.overlay_path = str(cam_path), str(ov_path)
        return cam_path, ov_path
