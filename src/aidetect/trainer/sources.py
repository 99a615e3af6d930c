"""Data sources, all through Hugging Face ``datasets``.

A *source spec* (the CLI's ``--data``) is one of:

- a hub id such as ``Hemg/AI-Generated-vs-Real-Images-Datasets`` (the default);
- a local parquet file, or a folder of parquet files in the hub layout
  (``train*.parquet``, ``validation*.parquet``, ``test*.parquet``, or ``data/...``);
- an image folder with one sub-folder per class (``real/``, ``ai/`` or any aliases),
  optionally under ``train/``, ``validation/``, ``test/`` split folders;
- a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.

``NAME=SPEC`` names the source (used as its group in per-group reports); by default the
name is the folder/file name or the hub id.

Class names are read from the data (``ClassLabel`` names, string labels or folder names)
and mapped to the canonical ``real``/``ai`` through :data:`LABEL_ALIASES` plus the user's
``--label-map NAME=real|ai``. Integer labels are never assumed to mean anything.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aidetect.errors import DataSourceError

DEFAULT_HUB_ID = "Hemg/AI-Generated-vs-Real-Images-Datasets"

# Documented alias table: lower-cased class name -> canonical class. Extend with --label-map.
LABEL_ALIASES: dict[str, str] = {
    # real photographs / human-made
    "real": "real",
    "realart": "real",
    "real_art": "real",
    "realimages": "real",
    "real_images": "real",
    "authentic": "real",
    "human": "real",
    "nature": "real",
    "natural": "real",
    "photo": "real",
    "photos": "real",
    "0_real": "real",
    # AI-generated
    "ai": "ai",
    "fake": "ai",
    "aiartdata": "ai",
    "ai_art": "ai",
    "aiart": "ai",
    "ai_generated": "ai",
    "aigenerated": "ai",
    "generated": "ai",
    "synthetic": "ai",
    "sd": "ai",
    "1_fake": "ai",
}

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
    "eval": "test",
}
GROUP_COLUMNS = ("group", "generator", "source", "subset", "domain")
HUB_CHECK_TIMEOUT_S = 3.0


@dataclass
class SourceData:
    """One loaded source: per split, a ``datasets.Dataset`` with columns ``image``
    (undecoded: ``{"bytes", "path"}``) and an int label column, plus the mapping of
    that column's values to canonical classes."""

    name: str
    spec: str
    kind: str  # hub | parquet | imagefolder | disk
    splits: dict[str, Any]  # split -> datasets.Dataset
    label_column: str
    value_to_class: dict[int | str, str]  # label value -> real|ai
    value_names: dict[int | str, str]  # label value -> the data's own class name
    group_column: str | None = None
    split_rule: str | None = None  # how the splits were made, when aidetect made them

    def canonical_labels(self, split: str) -> np.ndarray:
        """0 = real, 1 = ai for every row of ``split``."""
        ds = self.splits[split]
        values = ds[self.label_column]
        return np.array([1 if self.value_to_class[v] == "ai" else 0 for v in values], dtype=np.int64)

    def groups(self, split: str) -> list[str]:
        ds = self.splits[split]
        if self.group_column:
            return [f"{self.name}/{g}" for g in ds[self.group_column]]
        return [self.name] * len(ds)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec,
            "kind": self.kind,
            "label_column": self.label_column,
            "classes": {str(self.value_names[v]): c for v, c in self.value_to_class.items()},
            "splits": {s: len(d) for s, d in self.splits.items()},
            "group_column": self.group_column,
        }


@dataclass
class ExampleRef:
    """A reference to one example: source index, split, row index."""

    source: int
    split: str
    row: int


@dataclass
class Selection:
    """Labelled examples drawn from one or more sources (for one role: train/val/test)."""

    sources: list[SourceData]
    items: list[ExampleRef] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    groups: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def digest(self) -> str:
        h = hashlib.sha256()
        for it, lab in zip(self.items, self.labels.tolist(), strict=True):
            h.update(f"{self.sources[it.source].name}|{it.split}|{it.row}|{lab}\n".encode())
        return h.hexdigest()[:16]

    def counts(self) -> dict[str, int]:
        n_ai = int(self.labels.sum())
        return {"n": len(self), "real": len(self) - n_ai, "ai": n_ai}

    def image_bytes(self, i: int) -> tuple[bytes | None, str | None]:
        it = self.items[i]
        cell = self.sources[it.source].splits[it.split][it.row]["image"]
        return _cell_bytes(cell)

    def iter_images(self, batch: int = 512):
        """Yield (index, bytes-or-None, path-or-None), reading Arrow columns in chunks."""
        by_key: dict[tuple[int, str], list[int]] = {}
        for i, it in enumerate(self.items):
            by_key.setdefault((it.source, it.split), []).append(i)
        for (src, split), idxs in by_key.items():
            ds = self.sources[src].splits[split]
            for start in range(0, len(idxs), batch):
                chunk = idxs[start : start + batch]
                rows = [self.items[i].row for i in chunk]
                cells = ds.select(rows)["image"]
                for i, cell in zip(chunk, cells, strict=True):
                    data, path = _cell_bytes(cell)
                    yield i, data, path


def _cell_bytes(cell: Any) -> tuple[bytes | None, str | None]:
    if isinstance(cell, dict):
        return cell.get("bytes"), cell.get("path")
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell), None
    if isinstance(cell, str):
        return None, cell
    raise DataSourceError(f"unsupported image cell of type {type(cell).__name__}")


# -- label mapping ------------------------------------------------------------------------
def parse_label_map(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["AiArtData=ai", "Photos=real"]`` -> {"aiartdata": "ai", "photos": "real"}."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise DataSourceError(f"--label-map {pair!r}: expected NAME=real or NAME=ai")
        name, target = (s.strip() for s in pair.rsplit("=", 1))
        target = target.lower()
        if target not in ("real", "ai"):
            raise DataSourceError(f"--label-map {pair!r}: the target must be 'real' or 'ai'")
        out[name.lower()] = target
    return out


def map_class_name(name: str, extra: dict[str, str] | None = None) -> str | None:
    key = str(name).strip().lower()
    if extra and key in extra:
        return extra[key]
    if key in LABEL_ALIASES:
        return LABEL_ALIASES[key]
    squashed = re.sub(r"[^a-z0-9]", "", key)
    for alias, target in LABEL_ALIASES.items():
        if re.sub(r"[^a-z0-9]", "", alias) == squashed:
            return target
    return None


# -- loading -------------------------------------------------------------------------------
def _split_name(name: str) -> str:
    return SPLIT_ALIASES.get(name.lower(), name.lower())


def _split_of_file(path: Path) -> str:
    stem = path.stem.lower()
    for part in re.split(r"[-_.]", stem):
        if part in SPLIT_ALIASES:
            return SPLIT_ALIASES[part]
    return "train"


def classify_spec(spec: str) -> tuple[str, Path | None]:
    """-> (kind, path) for a source spec, without loading anything."""
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() == ".parquet":
                return "parquet", path
            raise DataSourceError(f"{spec}: a file source must be a .parquet file")
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "disk", path
        if any(path.glob("*.parquet")) or any(path.glob("data/*.parquet")) or any(path.glob("*/*.parquet")):
            return "parquet", path
        return "imagefolder", path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", spec) and not spec.startswith((".", "/")):
        return "hub", None
    raise DataSourceError(
        f"{spec}: no such file or folder, and not a Hugging Face hub id (owner/name)"
    )


def _parquet_files(path: Path) -> dict[str, list[str]]:
    if path.is_file():
        return {_split_of_file(path): [str(path)]}
    files = sorted(path.glob("*.parquet")) or sorted(path.glob("data/*.parquet")) or sorted(path.glob("*/*.parquet"))
    out: dict[str, list[str]] = {}
    for f in files:
        split = _split_of_file(f) if f.parent == path or f.parent.name == "data" else _split_name(f.parent.name)
        out.setdefault(split, []).append(str(f))
    return out


def check_hub_reachable(timeout: float = HUB_CHECK_TIMEOUT_S) -> str | None:
    """None when the hub answers a TCP connect within ``timeout`` s, else the reason.
    Name resolution runs in a thread so a hanging resolver cannot stall us either."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    m = re.match(r"^(?:https?://)?([^/:]+)(?::(\d+))?", endpoint)
    host = m.group(1) if m else "huggingface.co"
    port = int(m.group(2)) if m and m.group(2) else (80 if endpoint.startswith("http://") else 443)
    result: list[str | None] = ["timed out"]

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result[0] = None
        except OSError as exc:
            result[0] = str(exc) or type(exc).__name__

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return None if result[0] is None else f"{host}:{port}: {result[0]}"


LOCAL_COPY_HINT = (
    "point --data at a local copy instead (parquet files, an image folder with real/ and ai/ "
    "sub-folders, or a save_to_disk folder)"
)


def _offline_message(spec: str, reason: str) -> str:
    return (
        f"cannot reach the Hugging Face hub to load {spec!r} ({reason}); {LOCAL_COPY_HINT}, "
        "or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache"
    )


def _load_raw(kind: str, spec: str, path: Path | None) -> dict[str, Any]:
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        if kind == "disk":
            obj = datasets.load_from_disk(str(path))
            return dict(obj) if isinstance(obj, datasets.DatasetDict) else {"train": obj}
        if kind == "parquet":
            assert path is not None
            files = _parquet_files(path)
            if not files:
                raise DataSourceError(f"{spec}: no .parquet files found")
            return dict(datasets.load_dataset("parquet", data_files=files))
        if kind == "imagefolder":
            return dict(datasets.load_dataset("imagefolder", data_dir=str(path)))
        # hub
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        if not offline:
            reason = check_hub_reachable()
            if reason is not None:
                raise DataSourceError(_offline_message(spec, reason))
            return dict(datasets.load_dataset(spec))
        return _load_hub_offline(spec)
    except DataSourceError:
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise DataSourceError(_offline_message(spec, type(exc).__name__)) from exc
    except Exception as exc:  # datasets raises many types; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if kind == "hub" and ("offline" in first.lower() or "connect" in first.lower()):
            raise DataSourceError(_offline_message(spec, first)) from exc
        raise DataSourceError(f"{spec}: cannot load as {kind} dataset: {first}") from exc


def _load_hub_offline(spec: str) -> dict[str, Any]:
    """``load_dataset`` from the local cache only. The libraries read HF_HUB_OFFLINE once
    at import; set their flags too, so a value set later in this process is honoured."""
    import datasets
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        return dict(datasets.load_dataset(spec))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataSourceError(
            f"HF_HUB_OFFLINE is set and the Hugging Face cache has no usable copy of {spec!r} "
            f"({first[:100]}); {LOCAL_COPY_HINT}"
        ) from exc
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def load_source(spec: str, label_map: dict[str, str] | None = None) -> SourceData:
    """Load one source spec (``[NAME=]PATH_OR_HUB_ID``) and map its classes to real/ai."""
    import datasets

    name = None
    if "=" in spec and not Path(spec).exists():
        name, spec = spec.split("=", 1)
    kind, path = classify_spec(spec)
    if name is None:
        name = path.stem if path is not None and path.is_file() else (path.name if path else spec)
    raw = _load_raw(kind, spec, path)
    splits = {_split_name(k): v for k, v in raw.items() if len(v) > 0}
    if not splits:
        raise DataSourceError(f"{spec}: the dataset is empty")
    first = next(iter(splits.values()))
    features = first.features
    image_col = next((c for c, f in features.items() if isinstance(f, datasets.Image)), None)
    if image_col is None:
        image_col = "image" if "image" in features else None
    if image_col is None:
        raise DataSourceError(f"{spec}: no image column (columns: {', '.join(features)})")
    label_col = next((c for c, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
    if label_col is None:
        label_col = next((c for c in ("label", "labels", "class", "target") if c in features), None)
    if label_col is None and kind == "imagefolder":
        # one class folder only (datasets then drops the labels): the folder names the class
        splits = {k: _label_from_folder(v, image_col) for k, v in splits.items()}
        label_col, features = "label", next(iter(splits.values())).features
    if label_col is None:
        raise DataSourceError(f"{spec}: no label column (columns: {', '.join(features)})")
    feat = features[label_col]
    if isinstance(feat, datasets.ClassLabel):
        value_names: dict[int | str, str] = dict(enumerate(feat.names))
    else:
        values: set[Any] = set()
        for ds in splits.values():
            values.update(ds.unique(label_col))
        if any(not isinstance(v, str) for v in values):
            raise DataSourceError(
                f"{spec}: label column {label_col!r} holds integers without class names "
                "(aidetect never guesses which integer means AI); store it as a ClassLabel "
                "or as strings"
            )
        value_names = {v: v for v in sorted(values)}
    mapping: dict[int | str, str] = {}
    unknown = []
    for value, cname in value_names.items():
        target = map_class_name(cname, label_map)
        if target is None:
            unknown.append(cname)
        else:
            mapping[value] = target
    if unknown:
        raise DataSourceError(
            f"{spec}: unknown class name(s) {', '.join(repr(u) for u in unknown)}; "
            f"map each with --label-map NAME=real or --label-map NAME=ai"
        )
    if len(value_names) > 1 and set(mapping.values()) != {"real", "ai"}:
        raise DataSourceError(
            f"{spec}: classes {sorted(map(str, value_names.values()))} map to only "
            f"{sorted(set(mapping.values()))}; both real and ai are needed (check --label-map)"
        )
    group_col = next((c for c in GROUP_COLUMNS if c in features and c not in (label_col, image_col)), None)
    keep = [c for c in (image_col, label_col, group_col) if c]
    out_splits = {}
    for split, ds in splits.items():
        ds = ds.select_columns(keep)
        if image_col != "image":
            ds = ds.rename_column(image_col, "image")
        ds = ds.cast_column("image", datasets.Image(decode=False))
        out_splits[split] = ds
    return SourceData(
        name=name,
        spec=spec,
        kind=kind,
        splits=out_splits,
        label_column=label_col,
        value_to_class=mapping,
        value_names=value_names,
        group_column=group_col,
    )


def _label_from_folder(ds: Any, image_col: str) -> Any:
    import datasets

    ds = ds.cast_column(image_col, datasets.Image(decode=False))
    names = [Path(c["path"]).parent.name if isinstance(c, dict) and c.get("path") else "" for c in ds[image_col]]
    return ds.add_column("label", names)


def load_sources(
    specs: list[str] | tuple[str, ...],
    label_map: dict[str, str] | None = None,
    group_split: tuple[float, float, float] | None = None,
) -> list[SourceData]:
    """Load every spec; with ``group_split`` (train, validation, test fractions), sources that
    come as one split are divided by :func:`split_by_group`."""
    if not specs:
        specs = [DEFAULT_HUB_ID]
    sources = [load_source(s, label_map) for s in specs]
    if group_split is not None:
        sources = [split_by_group(s, group_split) if len(s.splits) == 1 else s for s in sources]
    classes = {c for s in sources for c in s.value_to_class.values()}
    if classes != {"real", "ai"}:
        raise DataSourceError(
            f"{', '.join(s.spec for s in sources)}: the classes map to only {sorted(classes)}; "
            "both real and ai are needed (a one-class source such as a folder of camera photos "
            "goes beside others; check --label-map)"
        )
    return sources


# -- splits by source image ------------------------------------------------------------------
MANIFEST = "MANIFEST.csv"


def parse_group_split(text: str) -> tuple[float, float, float]:
    """``"70,15,15"`` -> (0.7, 0.15, 0.15): train, validation and test shares (they are
    normalised to sum to 1)."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(p < 0 for p in parts) or parts[0] <= 0 or parts[1] <= 0 or sum(parts) <= 0:
        raise DataSourceError(f"--group-split {text!r}: expected TRAIN,VAL,TEST shares such as 70,15,15")
    total = sum(parts)
    return parts[0] / total, parts[1] / total, parts[2] / total


def group_keys(src: SourceData, split: str) -> list[str]:
    """The group of every row: the source image an image folder's ``MANIFEST.csv`` (columns
    ``path``, relative to the folder, and ``source_path``) names, so that crops of one picture
    share a key, or, where the manifest's ``note`` names a camera (``camera=Make|Model``), the
    camera model, so that held-out photos come from cameras never trained on; otherwise each
    file (or row) is its own group."""
    ds = src.splits[split]
    cells = ds["image"]
    paths = [c.get("path") if isinstance(c, dict) else None for c in cells]
    manifest: dict[str, str] = {}
    root = Path(src.spec)
    if src.kind == "imagefolder" and (root / MANIFEST).is_file():
        import csv

        with (root / MANIFEST).open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                note = row.get("note") or ""
                if row.get("path") and note.startswith("camera="):
                    manifest[row["path"]] = note  # every photo of one camera model together
                elif row.get("path") and row.get("source_path"):
                    manifest[row["path"]] = row["source_path"]
    keys = []
    for i, p in enumerate(paths):
        if p is None:
            keys.append(f"row{i}")
            continue
        try:
            rel = Path(p).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = Path(p).name
        keys.append(manifest.get(rel, rel))
    return keys


def split_by_group(src: SourceData, fractions: tuple[float, float, float]) -> SourceData:
    """Divide a one-split source into train / validation / test by a hash of each row's
    source image (:func:`group_keys`): every crop of one picture lands on the same side, and
    the same picture always lands on the same side (no seed: ``aidetect train`` and
    ``aidetect evaluate`` find the same test images without sharing state)."""
    (only,) = src.splits
    ds = src.splits[only]
    keys = group_keys(src, only)
    cut_train, cut_val = fractions[0], fractions[0] + fractions[1]
    rows: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for i, key in enumerate(keys):
        u = int.from_bytes(hashlib.sha256(f"{src.name}|{key}".encode()).digest()[:8], "big") / 2.0**64
        rows["train" if u < cut_train else "validation" if u < cut_val else "test"].append(i)
    splits = {name: ds.select(r) for name, r in rows.items() if r}
    for name in ("train", "validation"):
        if name not in splits:
            raise DataSourceError(f"{src.spec}: --group-split leaves no {name} images ({len(set(keys))} source images)")
    out = SourceData(src.name, src.spec, src.kind, splits, src.label_column, src.value_to_class, src.value_names,
                     src.group_column)
    out.split_rule = (f"by source image ({len(set(keys))} of them, sha256 of name|source): "
                      + " / ".join(f"{n} {len(d)}" for n, d in splits.items()))
    return out


# -- splits --------------------------------------------------------------------------------
def _stratified(labels: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out), the held-out part ``frac`` of each class."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = max(1, round(len(idx) * frac)) if len(idx) > 1 else 0
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _select(sources: list[SourceData], parts: list[tuple[int, str, np.ndarray]]) -> Selection:
    sel = Selection(sources=sources)
    labs, groups = [], []
    for src, split, rows in parts:
        all_labels = sources[src].canonical_labels(split)
        all_groups = sources[src].groups(split)
        sel.items.extend(ExampleRef(src, split, int(r)) for r in rows)
        labs.append(all_labels[rows])
        groups.extend(all_groups[int(r)] for r in rows)
    sel.labels = np.concatenate(labs) if labs else np.zeros(0, dtype=np.int64)
    sel.groups = groups
    return sel


def train_val_split(
    sources: list[SourceData], val_fraction: float = 0.1, seed: int = 0, max_train: int | None = None
) -> tuple[Selection, Selection, dict[str, Any]]:
    """Training and validation examples. A source's own ``validation`` split is used when
    it has one; otherwise a seeded stratified ``val_fraction`` of its ``train`` split (or
    of its only split). A ``test`` split is never trained on. Returns the record that goes
    into the model card."""
    train_parts, val_parts = [], []
    record: dict[str, Any] = {"sources": [], "seed": seed, "val_fraction": val_fraction}
    for i, src in enumerate(sources):
        names = list(src.splits)
        train_split = "train" if "train" in names else next((n for n in names if n not in ("validation", "test")), None)
        if train_split is None:
            raise DataSourceError(f"{src.spec}: no training split (splits: {', '.join(names)})")
        n_train = len(src.splits[train_split])
        rows = np.arange(n_train)
        if "validation" in names:
            how = src.split_rule or f"source splits: {train_split} / validation"
            train_parts.append((i, train_split, rows))
            val_parts.append((i, "validation", np.arange(len(src.splits["validation"]))))
        else:
            keep, held = _stratified(src.canonical_labels(train_split), val_fraction, seed)
            how = f"seeded stratified split of {train_split!r}: {1 - val_fraction:.0%} train / {val_fraction:.0%} validation (seed {seed})"
            train_parts.append((i, train_split, keep))
            val_parts.append((i, train_split, held))
        record["sources"].append({**src.describe(), "split": how})
    train = _select(sources, train_parts)
    if max_train is not None and len(train) > max_train:
        keep, _ = _stratified(train.labels, 1 - max_train / len(train), seed + 1)
        train = Selection(sources, [train.items[k] for k in keep], train.labels[keep], [train.groups[k] for k in keep])
        record["max_train"] = max_train
    val = _select(sources, val_parts)
    record["train"] = {**train.counts(), "hash": train.digest()}
    record["validation"] = {**val.counts(), "hash": val.digest()}
    record["split_hash"] = hashlib.sha256((train.digest() + val.digest()).encode()).hexdigest()[:16]
    return train, val, record


def eval_selection(sources: list[SourceData], split: str | None = None) -> tuple[Selection, dict[str, Any]]:
    """Examples to evaluate on: ``split`` if given; else each source's ``test`` split when
    it has one, otherwise all of its rows."""
    parts = []
    used = []
    for i, src in enumerate(sources):
        if split is not None:
            s = _split_name(split)
            if s not in src.splits:
                raise DataSourceError(f"{src.spec}: no split {split!r} (splits: {', '.join(src.splits)})")
            chosen = [s]
        elif "test" in src.splits:
            chosen = ["test"]
        else:
            chosen = list(src.splits)
        for s in chosen:
            parts.append((i, s, np.arange(len(src.splits[s]))))
        used.append({**src.describe(), "evaluated_splits": chosen})
    sel = _select(sources, parts)
    return sel, {"sources": used, **sel.counts(), "hash": sel.digest()}
