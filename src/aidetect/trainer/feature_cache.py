"""A cache of frozen features per image: CLIP ViT-B/16 embeddings and the v2 CNN's logit.

Core only (torch, timm, numpy, Pillow; no Celery, SQL or Tk). Each data set (an image folder
with ``ai/`` / ``real/`` or an ``index.csv`` as ``aidetect data build-extra`` writes) gets a
folder ``CACHE/<name>/`` holding

* ``items.csv``: one row per file (``path``, ``sha256`` of the file's bytes, ``label``,
  ``source``, ``group``, ``generator``, ``source_sha256`` for normalised copies, ``width``,
  ``height``, ``v2_split`` for the shared sets: the split Detector v2 was trained with);
* one ``.npz`` per feature kind, its name carrying what the numbers depend on:
  ``clip-<view>-<encoder sha256[:12]>-<dtype>.npz`` and ``cnn-<model version>.npz``, each
  keyed by the file's SHA-256 (array ``sha256``), so that an entry is found by file hash +
  view + encoder hash whatever the file is called.

Views of the CLIP branch (pixels only: the file is decoded to upright RGB, nothing else of it
is read):

* ``center``: CLIP's own view, the short side resized to 224 px (bicubic), centre crop;
* ``center<S>`` (``center112``, ``center128``, ...): the same at S px (a multiple of 16 from 64 to
  224), the encoder's position embeddings resampled to the smaller patch grid
  (:meth:`ClipImageEncoder.set_input_size`): the cheap semantic view of a fused model;
* ``crops``: up to :data:`MAX_CROPS` native-resolution 224 px windows on the 8 px JPEG grid,
  spread evenly (:func:`crop_boxes`); their embeddings are kept one by one (``crops``, NaN
  padded) and averaged (``emb``). An image with a side under 224 px has no native window: it
  is resized as for ``center`` and cropped there (``native`` False).

The CNN entry is the shipped default's calibrated logit ``T * log(p / (1 - p))`` (its
decision score; whole image up to 1 MP, 512 px windows beyond, as ``Detector`` sees it; no
heatmap, no provenance), always from the default model itself: images with a side under
224 px, which the product routes to the CIFAKE model, are scored by the default here too
(``routed`` says which).

Runs are resumable: what a file already holds is skipped, and the file is rewritten
(atomically) every ``save_every`` images.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aidetect.model import AI_INDEX

CROP_SIZE = 224
MAX_CROPS = 4
GRID = 8
VIEWS = ("center", "crops")  # and center<S>: view_size()
ITEM_COLUMNS = ("path", "file", "sha256", "label", "source", "group", "generator", "source_sha256", "width",
                "height", "v2_split")
V2_SPLIT = (0.70, 0.85)  # --group-split 70,15,15 of scripts/train_default.sh v2
V2_SOURCES = ("coco_sd", "forrealscan", "camera")


def view_size(view: str) -> int | None:
    """The input size of a CLIP view name (``center`` and ``crops``: 224, ``center<S>``: S);
    None when the name is no view."""
    from aidetect.model.clip import INPUT_SIZE, input_size_ok

    if view in VIEWS:
        return INPUT_SIZE
    digits = view.removeprefix("center")
    if view.startswith("center") and digits.isdigit() and input_size_ok(int(digits)):
        return int(digits)
    return None


# -- data sets ------------------------------------------------------------------------------
def dataset_rows(name: str, spec: str | Path) -> list[dict]:
    """Rows ``{file, path, label, source, group, generator, source_sha256, v2_split}`` of an
    index.csv or image folder (:func:`aidetect.trainer.format_baseline.load_rows`). The shared
    sets keep their own name as ``source`` and get ``v2_split`` (train / validation / test, the
    same hash of name and source picture as ``aidetect train --group-split 70,15,15``)."""
    from aidetect.trainer.format_baseline import load_rows

    rows = load_rows(spec)
    for r in rows:
        r.setdefault("generator", "")
        r.setdefault("source_sha256", "")
        r["v2_split"] = v2_split(name, r) if name in V2_SOURCES else ""
    return rows


def v2_split(name: str, row: dict) -> str:
    """The split Detector v2 put this row of a shared set in (``trainer.sources.split_by_group``)."""
    key = row["group"].split(":", 1)[1]  # folder_rows: "<name>:<camera=... | source_path | path>"
    u = int.from_bytes(hashlib.sha256(f"{name}|{key}".encode()).digest()[:8], "big") / 2.0**64
    return "train" if u < V2_SPLIT[0] else "validation" if u < V2_SPLIT[1] else "test"


def read_items(folder: Path) -> list[dict]:
    """``items.csv`` of one cached data set."""
    with (folder / "items.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_items(folder: Path, rows: Sequence[dict], stamps: bool = False) -> None:
    """``items.csv``; with ``stamps`` also each file's size:mtime (``_stamp``), so that a re-run
    need not hash it again."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "items.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=[*ITEM_COLUMNS, *(["_stamp"] if stamps else [])], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, folder / "items.csv")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# -- geometry -------------------------------------------------------------------------------
def _spread(length: int, n: int, size: int, grid: int) -> list[int]:
    """``n`` window starts centred on equal cells of ``length``, inside it, on the grid."""
    room = length - size
    starts = [min(room, max(0, round((i + 0.5) * length / n - size / 2))) for i in range(n)]
    return [s - s % grid for s in starts]


def crop_boxes(width: int, height: int, size: int = CROP_SIZE, max_crops: int = MAX_CROPS,
               grid: int = GRID) -> list[tuple[int, int]]:
    """Top-left corners of up to ``max_crops`` ``size`` px windows that do not overlap, spread
    evenly over a ``width`` x ``height`` image on the ``grid`` (JPEG blocks): nx x ny windows,
    the most that fit (ties: the squarest layout). Empty when a side is under ``size``."""
    if width < size or height < size:
        return []
    cap_x, cap_y = width // size, height // size
    best = (1, 1)
    for nx in range(1, min(cap_x, max_crops) + 1):
        for ny in range(1, min(cap_y, max_crops // nx) + 1):
            if (nx * ny, -abs(nx - ny)) > (best[0] * best[1], -abs(best[0] - best[1])):
                best = (nx, ny)
    xs, ys = _spread(width, best[0], size, grid), _spread(height, best[1], size, grid)
    return [(x, y) for y in ys for x in xs]


def crop_views(img: Image.Image, size: int = CROP_SIZE, max_crops: int = MAX_CROPS) -> tuple[torch.Tensor, bool]:
    """uint8 (k, 3, size, size) native windows of ``img`` (RGB) and whether they are native
    (False: a side under ``size``, so one centre crop of the image resized as CLIP does)."""
    from aidetect.model.clip import clip_resize_crop

    boxes = crop_boxes(img.width, img.height, size, max_crops)
    if not boxes:
        return clip_resize_crop(img, size)[None], False
    arr = np.asarray(img)
    tiles = np.stack([arr[y:y + size, x:x + size] for x, y in boxes])
    return torch.from_numpy(tiles).permute(0, 3, 1, 2).contiguous(), True


# -- the cache files ------------------------------------------------------------------------
@dataclass
class FeatureFile:
    """One ``.npz`` of a data set: arrays with one row per SHA-256 (``sha256`` array)."""

    path: Path
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, path: Path) -> FeatureFile:
        if not path.is_file():
            return cls(path)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(path, arrays, set(arrays["sha256"].tolist()))

    def add(self, shas: Sequence[str], **columns: np.ndarray) -> None:
        new = {"sha256": np.asarray(shas, dtype="U64"), **columns}
        if self.arrays and set(new) != set(self.arrays):
            raise ValueError(f"{self.path}: columns {sorted(new)} != {sorted(self.arrays)}")
        self.arrays = {k: np.concatenate([self.arrays[k], new[k]]) for k in new} if self.arrays else new
        self.keys.update(shas)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, **self.arrays)
        os.replace(tmp, self.path)

    def lookup(self, shas: Sequence[str], column: str) -> np.ndarray:
        """``column`` in the order of ``shas`` (KeyError naming the first missing hash)."""
        index = {s: i for i, s in enumerate(self.arrays["sha256"].tolist())}
        missing = [s for s in shas if s not in index]
        if missing:
            raise KeyError(f"{self.path.name}: {len(missing)} files not cached (e.g. {missing[0][:16]})")
        return self.arrays[column][[index[s] for s in shas]]


def clip_file_name(view: str, encoder_hash: str, dtype: str) -> str:
    return f"clip-{view}-{encoder_hash[:12]}-{dtype}.npz"


def cnn_file_name(version: str) -> str:
    return f"cnn-{version}.npz"


# -- featurisers ----------------------------------------------------------------------------
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


class ClipFeatures:
    """The frozen CLIP encoder with weights in ``dtype`` and its file's SHA-256. ``auto``: bf16
    where the CPU computes in it (AVX512-BF16/AMX: bf16 weights ran 1.6x faster than fp32 under
    autocast there), else fp32 (an AVX2-only CPU only emulates bf16: 7x slower than fp32 there,
    9.5 against 67 GFLOP/s on a 768 x 3072 matmul, docs/detector-v3.md)."""

    def __init__(self, weights: Path | None = None, dtype: str = "auto", chunk: int = 32) -> None:
        from aidetect.model.clip import WEIGHTS_PATH, load_clip_encoder
        from aidetect.model.precision import pick_precision, precision_name

        if dtype == "auto":
            dtype = precision_name(pick_precision("auto", torch.device("cpu")))
        self.weights = Path(weights) if weights is not None else WEIGHTS_PATH
        self.encoder_hash = file_sha256(self.weights)
        self.dtype = dtype
        self.encoder = load_clip_encoder(self.weights, dtype=DTYPES[dtype])
        self._sized: dict[int, torch.nn.Module] = {self.encoder.input_size: self.encoder}
        self.chunk = chunk

    def at_size(self, size: int) -> torch.nn.Module:
        """The encoder taking ``size`` px inputs (a copy with resampled position embeddings)."""
        if size not in self._sized:
            import copy

            with torch.inference_mode(False), torch.no_grad():  # normal tensors, also when asked from embed()
                self._sized[size] = copy.deepcopy(self.encoder).set_input_size(size).requires_grad_(False)
        return self._sized[size]

    @torch.inference_mode()
    def embed(self, views: torch.Tensor) -> np.ndarray:
        """uint8 (n, 3, S, S) -> float32 (n, 512) ``image_embeds`` (S: 224, or a smaller view's size)."""
        encoder = self.at_size(int(views.shape[-1])) if len(views) else self.encoder
        out = [encoder(views[i:i + self.chunk]).float() for i in range(0, len(views), self.chunk)]
        return torch.cat(out).numpy() if out else np.zeros((0, 512), np.float32)


class CnnLogits:
    """The shipped CNN (``fast``, Detector v3's CNN branch; or ``model_dir``) as ``Detector`` runs
    it, without heatmaps, provenance or the small-image route; ``logits`` gives ``T * log(p / (1 - p))``."""

    def __init__(self, model_dir: Path | None = None) -> None:
        from aidetect.config import FAST_MODEL_DIR
        from aidetect.inference import Detector

        class _Float64Detector(Detector):
            def _probs(self, logits: torch.Tensor) -> np.ndarray:  # no float32 saturation at p = 1
                t = float(self.card.temperature or 1.0)
                return torch.softmax(logits.detach().double() / t, dim=1)[:, AI_INDEX].cpu().numpy()

        self.detector = _Float64Detector(model_dir or FAST_MODEL_DIR, provenance=False, threads=0)
        self.detector.small = None  # the default scores every image (routed images are marked)
        self.version = self.detector.version
        self.temperature = float(self.detector.card.temperature or 1.0)
        self.min_side = self.detector.min_side

    def logits(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logit, ood_score (NaN where none), routed by the product to the small model)."""
        verdicts = self.detector.classify(list(images), explain=False)
        p = np.array([v.prob_ai if v.prob_ai is not None else np.nan for v in verdicts], dtype=np.float64)
        bad = [v.error for v in verdicts if v.error]
        if bad:
            raise RuntimeError(f"CNN could not score an image: {bad[0]}")
        p = np.clip(p, 1e-15, 1 - 1e-15)
        logit = self.temperature * (np.log(p) - np.log1p(-p))
        ood = np.array([v.ood_score if v.ood_score is not None else np.nan for v in verdicts], dtype=np.float64)
        routed = np.array([min(im.size) < self.min_side for im in images])
        return logit, ood, routed


# -- the run --------------------------------------------------------------------------------
@dataclass
class RunReport:
    dataset: str
    files: int
    computed: dict[str, int] = field(default_factory=dict)  # feature file -> new entries
    seconds: dict[str, float] = field(default_factory=dict)  # decode, clip-center, clip-crops, cnn, total
    crop_counts: dict[int, int] = field(default_factory=dict)

    def line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in self.computed.items())
        secs = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        return f"{self.dataset}: {self.files} files; new: {parts or 'none'}; {secs}"


def _decode(path: str) -> Image.Image:
    from aidetect.model.decode import load_image

    return load_image(path)


def cache_dataset(name: str, spec: str | Path, cache: Path, *, views: Iterable[str] = VIEWS, cnn: bool = True,
                  clip: ClipFeatures | None = None, cnn_model: CnnLogits | None = None, batch: int = 16,
                  save_every: int = 256, progress: bool | None = None,
                  decode: Callable[[str], Image.Image] = _decode) -> RunReport:
    """Compute what ``cache/name`` lacks for the data set ``spec``: CLIP ``views`` (with
    ``clip``) and the CNN logit (with ``cnn``); returns counts and seconds per part."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    views = [v for v in views if v]
    unknown = [v for v in views if view_size(v) is None]
    if unknown:
        raise ValueError(f"unknown view(s) {unknown}; choose from {', '.join(VIEWS)}, center<S> (S: 64-224, a multiple of 16)")
    if views and clip is None:
        clip = ClipFeatures()
    if cnn and cnn_model is None:
        cnn_model = CnnLogits()
    folder = cache / name
    rows = dataset_rows(name, spec)
    old = {r["file"]: r for r in read_items(folder)} if (folder / "items.csv").is_file() else {}
    for r in rows:  # the hash of each file, once (kept in items.csv while the file's size and mtime hold)
        st = os.stat(r["file"])
        prev = old.get(r["file"])
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        if prev and prev.get("_stamp") == stamp:
            r["sha256"], r["width"], r["height"] = prev["sha256"], prev["width"], prev["height"]
        else:
            r["sha256"] = file_sha256(r["file"])
        r["_stamp"] = stamp
    files: dict[str, FeatureFile] = {}
    if clip is not None:
        for v in views:
            files[v] = FeatureFile.open(folder / clip_file_name(v, clip.encoder_hash, clip.dtype))
    if cnn_model is not None:
        files["cnn"] = FeatureFile.open(folder / cnn_file_name(cnn_model.version))
    todo = [r for r in rows if any(r["sha256"] not in f.keys for f in files.values())]
    report = RunReport(name, len(rows), {f.path.name: 0 for f in files.values()},
                       {"decode": 0.0, **{f"clip-{v}": 0.0 for v in views}, **({"cnn": 0.0} if cnn else {})})
    seen: set[str] = set()
    since_save = 0
    bar = tqdm(total=len(todo), desc=name, unit="img", disable=progress is False, smoothing=0.05)
    for start in range(0, len(todo), batch):
        part = [r for r in todo[start:start + batch] if r["sha256"] not in seen]
        seen.update(r["sha256"] for r in part)
        t0 = time.perf_counter()
        images = [decode(r["file"]) for r in part]
        for r, im in zip(part, images, strict=True):
            r["width"], r["height"] = im.width, im.height
        report.seconds["decode"] += time.perf_counter() - t0
        _featurise(part, images, files, clip, cnn_model, views, report)
        del images
        since_save += len(part)
        bar.update(len(todo[start:start + batch]))
        if since_save >= save_every:
            for f in files.values():
                f.save()
            since_save = 0
    bar.close()
    for f in files.values():
        if f.arrays:
            f.save()
    write_items(folder, rows, stamps=True)
    report.seconds["total"] = time.perf_counter() - t_start
    return report


def _featurise(part: list[dict], images: list[Image.Image], files: dict[str, FeatureFile],
               clip: ClipFeatures | None, cnn_model: CnnLogits | None, views: list[str], report: RunReport) -> None:
    from aidetect.model.clip import clip_resize_crop

    shas = [r["sha256"] for r in part]
    for view in (v for v in views if v != "crops" and clip is not None):
        need = [i for i, s in enumerate(shas) if s not in files[view].keys]
        if need:
            t0 = time.perf_counter()
            size = view_size(view) or 0
            emb = clip.embed(torch.stack([clip_resize_crop(images[i], size) for i in need]))
            files[view].add([shas[i] for i in need], emb=emb)
            report.seconds[f"clip-{view}"] += time.perf_counter() - t0
            report.computed[files[view].path.name] += len(need)
    if clip is not None and "crops" in views:
        need = [i for i, s in enumerate(shas) if s not in files["crops"].keys]
        if need:
            t0 = time.perf_counter()
            stacks = [crop_views(images[i]) for i in need]
            emb = clip.embed(torch.cat([s for s, _ in stacks]))
            counts = np.array([len(s) for s, _ in stacks], dtype=np.int8)
            per = np.full((len(need), MAX_CROPS, emb.shape[1]), np.nan, dtype=np.float32)
            at = np.concatenate([[0], np.cumsum(counts)])
            for k in range(len(need)):
                per[k, :counts[k]] = emb[at[k]:at[k + 1]]
                report.crop_counts[int(counts[k])] = report.crop_counts.get(int(counts[k]), 0) + 1
            files["crops"].add([shas[i] for i in need], emb=np.nanmean(per, axis=1).astype(np.float32), crops=per,
                               n=counts, native=np.array([nat for _, nat in stacks]))
            report.seconds["clip-crops"] += time.perf_counter() - t0
            report.computed[files["crops"].path.name] += len(need)
    if cnn_model is not None:
        need = [i for i, s in enumerate(shas) if s not in files["cnn"].keys]
        if need:
            t0 = time.perf_counter()
            logit, ood, routed = cnn_model.logits([images[i] for i in need])
            files["cnn"].add([shas[i] for i in need], logit=logit, ood=ood, routed=routed)
            report.seconds["cnn"] += time.perf_counter() - t0
            report.computed[files["cnn"].path.name] += len(need)


# -- reading the cache back -----------------------------------------------------------------
def find_feature_file(folder: Path, prefix: str) -> Path:
    """The one ``prefix-*.npz`` in ``folder`` (ValueError when none or several); ``clip-center``
    is not ``clip-center112``."""
    found = sorted(p for p in folder.glob(f"{prefix}-*.npz") if not p.name.endswith(".tmp.npz"))
    if len(found) != 1:
        raise ValueError(f"{folder}: {len(found)} files {prefix}*.npz (want exactly one)")
    return found[0]


def load_features(cache: Path, name: str, kinds: Iterable[str] = ("clip-center", "clip-crops", "cnn"),
                  optional: bool = True) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Items of ``cache/name`` and, per kind, its features in item order: ``clip-center``
    (n, 512), ``clip-crops`` (n, 512, the mean of the windows), ``cnn`` (n,: the logit),
    ``cnn-ood`` (n,: the CNN's out-of-distribution score). With ``optional``, a kind not
    cached for every item is left out instead of raising."""
    folder = cache / name
    items = read_items(folder)
    shas = [r["sha256"] for r in items]
    out: dict[str, np.ndarray] = {}
    columns = {"cnn": ("cnn", "logit"), "cnn-ood": ("cnn", "ood")}
    for kind in kinds:
        prefix, column = columns.get(kind, (kind, "emb"))
        try:
            out[kind] = FeatureFile.open(find_feature_file(folder, prefix)).lookup(shas, column)
        except (ValueError, KeyError):
            if not optional:
                raise
    return items, out
