"""A format-only baseline: how well the file *container* alone tells AI from real.

:func:`container_features` reads only what a file's header says (format, size, byte count,
JPEG quantisation tables and chroma subsampling, EXIF / ICC / XMP / text chunks, colour mode),
never a decoded pixel. A gradient-boosted classifier on those features, scored by
group-k-fold cross-validated ROC AUC (:func:`cross_validated_auc`), measures the shortcut a
pixel model could learn instead of the real traces. Near 1.0 on the raw ``extra`` mix; the
same baseline on copies made by :func:`normalise_image` (pixels decoded, metadata dropped,
crop aspect, long side and JPEG quality drawn from one distribution for both classes) shows
whether the normalisation removes the cue.

Core only: Pillow, numpy, scikit-learn; no torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aidetect.errors import DataSourceError

FEATURES = (
    "is_jpeg", "is_png", "is_webp", "is_other", "width", "height", "long_side", "short_side", "aspect",
    "log_pixels", "bytes", "bytes_per_pixel", "jpeg_quality", "qtable_luma_sum", "qtable_chroma_sum",
    "qtables", "subsampling", "progressive", "has_exif", "has_icc", "has_xmp", "text_chunks", "has_alpha",
    "is_grey", "is_palette",
)
SIZE_OF_PAYLOAD = ("bytes", "bytes_per_pixel")  # depend on the pixels' compressibility too
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_STD_LUMA = np.array([  # IJG / JPEG Annex K luminance table, natural order
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)
_IJG_SUMS = None


def _ijg_sums() -> np.ndarray:
    """Sum of the IJG luminance table at quality 1..100."""
    global _IJG_SUMS
    if _IJG_SUMS is None:
        sums = []
        for q in range(1, 101):
            scale = 5000 / q if q < 50 else 200 - 2 * q
            sums.append(np.clip(np.floor((_STD_LUMA * scale + 50) / 100), 1, 255).sum())
        _IJG_SUMS = np.array(sums)
    return _IJG_SUMS


def estimate_jpeg_quality(luma_table: Iterable[int]) -> float:
    """The IJG quality (1-100) whose luminance table has the nearest sum."""
    s = float(sum(luma_table))
    return float(1 + int(np.argmin(np.abs(_ijg_sums() - s))))


def container_features(data: bytes) -> dict[str, float]:
    """The container's features (:data:`FEATURES`; NaN where one does not apply) from the
    header only: Pillow opens the file without decoding its pixels."""
    from PIL import Image, JpegImagePlugin

    nan = math.nan
    f = dict.fromkeys(FEATURES, nan)
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format or ""
        w, h = im.size
        info = im.info
        f.update(is_jpeg=float(fmt in ("JPEG", "MPO")), is_png=float(fmt == "PNG"), is_webp=float(fmt == "WEBP"))
        f["is_other"] = 1.0 - f["is_jpeg"] - f["is_png"] - f["is_webp"]
        f.update(width=w, height=h, long_side=max(w, h), short_side=min(w, h), aspect=w / max(h, 1),
                 log_pixels=math.log(max(w * h, 1)), bytes=len(data), bytes_per_pixel=len(data) / max(w * h, 1))
        q = getattr(im, "quantization", None) or {}
        if q:
            tables = [q[k] for k in sorted(q)]
            f.update(jpeg_quality=estimate_jpeg_quality(tables[0]), qtable_luma_sum=float(sum(tables[0])),
                     qtable_chroma_sum=float(sum(tables[1])) if len(tables) > 1 else nan, qtables=len(tables))
        if fmt in ("JPEG", "MPO"):
            f["subsampling"] = float(JpegImagePlugin.get_sampling(im))
            f["progressive"] = float(bool(info.get("progressive") or info.get("progression")))
        f["has_exif"] = float(bool(info.get("exif")))
        f["has_icc"] = float(bool(info.get("icc_profile")))
        f["has_xmp"] = float(bool(info.get("xmp") or info.get("XML:com.adobe.xmp")))
        f["text_chunks"] = float(sum(isinstance(v, str) and k not in ("XML:com.adobe.xmp",) for k, v in info.items()))
        f["has_alpha"] = float("A" in im.mode or "transparency" in info)
        f["is_grey"] = float(im.mode in ("L", "LA", "1", "I", "I;16", "F"))
        f["is_palette"] = float(im.mode in ("P", "PA"))
    return f


# -- data sets as rows {file, label, group, source} ---------------------------------------------
def read_index(path: str | Path) -> list[dict]:
    """Rows of an ``index.csv`` (``path`` relative to its folder), with ``file`` made absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / "index.csv"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DataSourceError(f"index {path}: {exc.strerror or exc}") from None
    if not rows or not {"path", "label", "group"} <= set(rows[0]):
        raise DataSourceError(f"index {path}: no rows with path, label and group")
    for r in rows:
        r["file"] = str(path.parent / r["path"])
        r.setdefault("source", path.parent.name)
    return rows


def folder_rows(folder: str | Path, name: str | None = None) -> list[dict]:
    """Rows of an image folder with ``ai/`` and/or ``real/`` sub-folders. The group is the
    camera (``note`` = ``camera=...``) or ``source_path`` of the folder's ``MANIFEST.csv`` where it
    names the file, else the file."""
    folder = Path(folder)
    name = name or folder.name
    groups: dict[str, str] = {}
    if (folder / "MANIFEST.csv").is_file():
        with (folder / "MANIFEST.csv").open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r.get("path"):
                    note = r.get("note") or ""
                    groups[r["path"]] = note if note.startswith("camera=") else r.get("source_path") or r["path"]
    rows = []
    for label in ("ai", "real"):
        for f in sorted((folder / label).rglob("*")) if (folder / label).is_dir() else []:
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                rel = f.relative_to(folder).as_posix()
                rows.append({"file": str(f), "path": rel, "label": label, "source": name,
                             "group": f"{name}:{groups.get(rel, rel)}", "generator": ""})
    if not rows:
        raise DataSourceError(f"{folder}: no images under ai/ or real/")
    return rows


def load_rows(spec: str | Path) -> list[dict]:
    """An ``index.csv``, a folder holding one, or an image folder (``ai/``, ``real/``)."""
    p = Path(spec)
    if p.is_file() or (p / "index.csv").is_file():
        return read_index(p)
    if p.is_dir():
        return folder_rows(p)
    raise DataSourceError(f"{spec}: neither an index.csv nor an image folder")


# -- the baseline ---------------------------------------------------------------------------
@dataclass
class BaselineResult:
    auc: float  # pooled out-of-fold ROC AUC (AI = positive)
    fold_aucs: list[float]
    files: int
    groups: int
    labels: dict[str, int]
    folds: int
    model: str
    features: list[str]
    single_feature_auc: dict[str, float]  # each feature alone, max(auc, 1 - auc): the strongest cues

    def to_json(self) -> dict:
        return asdict(self)


def feature_matrix(rows: list[dict], progress: bool | None = None) -> np.ndarray:
    from tqdm import tqdm

    out = np.full((len(rows), len(FEATURES)), np.nan)
    for i, r in enumerate(tqdm(rows, desc="features", unit="file", disable=None if progress is None else not progress)):
        try:
            f = container_features(Path(r["file"]).read_bytes())
        except Exception:  # noqa: BLE001 -- an unreadable file keeps NaN features
            continue
        out[i] = [f[k] for k in FEATURES]
    return out


def _model(kind: str, seed: int):
    if kind == "gb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    if kind == "logistic":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
                             StandardScaler(), LogisticRegression(max_iter=2000))
    raise ValueError(f"model {kind!r}: gb or logistic")


def cross_validated_auc(X: np.ndarray, labels: list[str], groups: list[str], *, folds: int = 5,
                        model: str = "gb", seed: int = 0, feature_names: Iterable[str] = FEATURES) -> BaselineResult:
    """Out-of-fold P(ai) from ``folds`` stratified group folds (every group on one side), and
    its ROC AUC pooled over all files."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.array([lab == "ai" for lab in labels], dtype=int)
    if len(set(y)) < 2:
        raise DataSourceError("the format baseline needs both classes (ai and real)")
    g = np.array(groups)
    n_groups = len(set(groups))
    k = max(2, min(folds, n_groups, int(min(np.bincount(y)))))
    oof = np.full(len(y), np.nan)
    fold_aucs = []
    for train, test in StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y, g):
        clf = _model(model, seed).fit(X[train], y[train])
        oof[test] = clf.predict_proba(X[test])[:, 1]
        if len(set(y[test])) == 2:
            fold_aucs.append(float(roc_auc_score(y[test], oof[test])))
    names = list(feature_names)
    single = {}
    for j, name in enumerate(names):
        col = X[:, j]
        if np.all(np.isnan(col)) or np.nanmin(col) == np.nanmax(col):
            continue
        col = np.where(np.isnan(col), np.nanmin(col) - 1, col)
        a = float(roc_auc_score(y, col))
        single[name] = round(max(a, 1 - a), 4)
    single = dict(sorted(single.items(), key=lambda kv: -kv[1]))
    counts = Counter(labels)
    return BaselineResult(float(roc_auc_score(y, oof)), fold_aucs, len(y), n_groups, dict(sorted(counts.items())), k,
                          model, names, single)


def format_baseline(rows: list[dict], *, folds: int = 5, model: str = "gb", seed: int = 0,
                    drop: Iterable[str] = (), progress: bool | None = None) -> BaselineResult:
    """The baseline over ``rows`` ({file, label, group}); ``drop`` names features left out."""
    X = feature_matrix(rows, progress)
    keep = [i for i, n in enumerate(FEATURES) if n not in set(drop)]
    return cross_validated_auc(X[:, keep], [r["label"] for r in rows], [r["group"] for r in rows], folds=folds,
                               model=model, seed=seed, feature_names=[FEATURES[i] for i in keep])


# -- normalisation: one distribution of container for both classes ----------------------------
@dataclass(frozen=True)
class Normalisation:
    """What every normalised copy is drawn from, the same for both classes."""

    long_side: tuple[int, int] = (256, 512)  # uniform, inclusive; most sources are reduced, few enlarged
    quality: tuple[int, int] = (70, 95)  # JPEG quality, uniform, inclusive
    aspects: tuple[float, ...] = (1.0, 4 / 3, 3 / 2, 16 / 9)  # crop aspect, landscape or portrait at random
    subsampling: int = 2  # 4:2:0 for every file
    # "resize": crop the largest window of the drawn aspect, resize it to the drawn long side;
    # "crop": cut a window of the drawn size at native resolution (enlarged only when the file is
    # smaller than the window), so that neither class carries resampling traces of its own
    mode: str = "resize"


def normalise_image(data: bytes, rng: np.random.Generator, spec: Normalisation = Normalisation()) -> bytes:
    """Decode, turn upright (EXIF orientation), drop alpha over white and every piece of
    metadata, crop to an aspect drawn from ``spec.aspects`` (at a random place), resize so the
    long side is drawn from ``spec.long_side`` (``mode="crop"``: cut a window of that size at
    native resolution instead) and re-encode as baseline JPEG at a quality drawn from
    ``spec.quality``. The draws do not depend on the file, so both classes end with one
    distribution of format, size, aspect, tables and subsampling."""
    return _normalise(data, rng, spec)[0]


def _normalise(data: bytes, rng: np.random.Generator, spec: Normalisation) -> tuple[bytes, float]:
    """The normalised JPEG and its scale (output long side / crop long side; > 1: enlarged)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as src:
        src.seek(0)
        im = ImageOps.exif_transpose(src)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            im = Image.new("RGB", rgba.size, (255, 255, 255))
            im.paste(rgba, mask=rgba.getchannel("A"))
        else:
            im = im.convert("RGB")
    if spec.mode not in ("resize", "crop"):
        raise ValueError(f"normalisation mode {spec.mode!r}: resize or crop")
    aspect = float(rng.choice(spec.aspects))
    if rng.random() < 0.5:
        aspect = 1 / aspect  # portrait
    long_side = int(rng.integers(spec.long_side[0], spec.long_side[1] + 1))
    size = (long_side, max(1, round(long_side / aspect))) if aspect >= 1 else (max(1, round(long_side * aspect)), long_side)
    w, h = im.size
    if spec.mode == "crop":
        scale = max(1.0, size[0] / w, size[1] / h)
        if scale > 1:
            im = im.resize((max(size[0], round(w * scale)), max(size[1], round(h * scale))), Image.Resampling.LANCZOS)
        x0 = int(rng.integers(0, im.width - size[0] + 1))
        y0 = int(rng.integers(0, im.height - size[1] + 1))
        im = im.crop((x0, y0, x0 + size[0], y0 + size[1]))
    else:
        cw, ch = (w, round(w / aspect)) if w / h <= aspect else (round(h * aspect), h)
        cw, ch = max(1, min(cw, w)), max(1, min(ch, h))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        im = im.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        scale = long_side / max(cw, ch)
    buf = io.BytesIO()
    quality = int(rng.integers(spec.quality[0], spec.quality[1] + 1))
    im.save(buf, "JPEG", quality=quality, subsampling=spec.subsampling, optimize=False, progressive=False)
    return buf.getvalue(), scale


def file_rng(seed: int, key: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and a file's key (its SHA-256): the same copy every run."""
    return np.random.default_rng([seed, int(hashlib.sha256(key.encode()).hexdigest()[:16], 16)])


NORMALISED_COLUMNS = ("path", "label", "generator", "group", "source", "sha256", "width", "height", "format",
                      "bytes", "source_sha256", "scale")


def normalise_rows(rows: list[dict], out: str | Path, *, spec: Normalisation = Normalisation(), seed: int = 0,
                   progress: bool | None = None) -> list[dict]:
    """Write a normalised copy of every row's file as ``out/images/<label>/<sha256[:16]>.jpg``
    and ``out/index.csv`` (:data:`NORMALISED_COLUMNS`; ``scale`` > 1 marks an enlarged copy);
    returns the new rows. The draws are seeded by ``seed`` and the source file's SHA-256, so a
    re-run writes the same bytes. A file that does not decode is left out."""
    from PIL import Image
    from tqdm import tqdm

    out = Path(out)
    try:
        (out / "images").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataSourceError(f"{out}: not a writable folder ({exc.strerror or exc})") from None
    new_rows = []
    for r in tqdm(rows, desc="normalise", unit="file", disable=None if progress is None else not progress):
        data = Path(r["file"]).read_bytes()
        src_sha = r.get("sha256") or hashlib.sha256(data).hexdigest()
        try:
            copy, scale = _normalise(data, file_rng(seed, src_sha), spec)
        except Exception:  # noqa: BLE001 -- a file that does not decode is left out
            continue
        rel = f"images/{r['label']}/{src_sha[:16]}.jpg"
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        tmp.write_bytes(copy)
        os.replace(tmp, target)
        with Image.open(io.BytesIO(copy)) as im:
            w, h = im.size
        new_rows.append({"path": rel, "file": str(target), "label": r["label"], "generator": r.get("generator", ""),
                         "group": r["group"], "source": r.get("source", ""), "sha256": hashlib.sha256(copy).hexdigest(),
                         "width": w, "height": h, "format": "JPEG", "bytes": len(copy), "source_sha256": src_sha,
                         "scale": round(scale, 4)})
    tmp = out / f".index.csv.tmp{os.getpid()}"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(NORMALISED_COLUMNS), extrasaction="ignore")
        wr.writeheader()
        wr.writerows(new_rows)
    os.replace(tmp, out / "index.csv")
    return new_rows
