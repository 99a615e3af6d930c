"""Heatmaps every host can read: with a blob layer, a worker keeps each CAM PNG and overlay
JPEG under ``heatmaps/<shard>/<name>`` (the same names as in the heatmap folder) and the
prediction records ``blob:heatmaps/...``; a reader (``results``, exports, the dashboard) gets
a local copy in its own heatmap folder, fetched once."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from aidetect.blobs import BlobLayer, blob_layer
from aidetect.blobs.base import HEATMAP_PREFIX, BlobMissing, BlobsUnavailable
from aidetect.config import get_settings

log = logging.getLogger(__name__)
REF = "blob:"
Row = TypeVar("Row")


def is_ref(path: str | None) -> bool:
    return bool(path) and str(path).startswith(REF)


def keep(layer: BlobLayer, heatmap_dir: Path, *paths: str) -> list[str]:
    """Put the heatmap files ``paths`` (under ``heatmap_dir``) into the blob layer, all in
    one go (one transaction in the store: a batch's heatmaps cost one commit), and delete the
    local files; returns their references (``blob:heatmaps/...``), in order."""
    keys = [HEATMAP_PREFIX + Path(p).resolve().relative_to(heatmap_dir.resolve()).as_posix() for p in paths]
    vanished = []
    with contextlib.ExitStack() as files:
        items = []
        for p, key in zip(paths, keys, strict=True):
            try:
                items.append((key, files.enter_context(open(p, "rb"))))
            except FileNotFoundError:
                vanished.append((p, key))
        layer.keeping.put_many(items)
    for p, key in vanished:
        # a redelivered batch beside the first one: the other process kept this file
        # (put, then unlink) between our write and our read
        if not layer.keeping.exists(key):
            raise FileNotFoundError(f"heatmap {p} is gone and was not kept")
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)
    return [REF + key for key in keys]


def local_path(path: str | None, layer: BlobLayer | None = None, heatmap_dir: Path | None = None) -> str | None:
    """A path on this host for a stored heatmap path: a local path as it is; a ``blob:``
    reference fetched into this host's heatmap folder once (None when it cannot be read:
    no blob layer set here, the blob gone, the backend down)."""
    if not path or not is_ref(path):
        return path
    key = path[len(REF):]
    if not key.startswith(HEATMAP_PREFIX) or ".." in key.split("/"):
        return None
    target = (heatmap_dir or get_settings().heatmap_dir) / key[len(HEATMAP_PREFIX):]
    if target.is_file():
        return str(target)
    layer = layer or blob_layer()
    if layer is None:
        return None
    try:
        with layer.keeping.open(key) as src:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".tmp-{secrets.token_hex(6)}{target.suffix}")
            try:
                with open(tmp, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    except (BlobMissing, BlobsUnavailable, OSError) as exc:
        log.warning("heatmap %s not readable here: %s", key, exc)
        return None
    return str(target)


def localize(rows: Sequence[Row]) -> list[Row]:
    """Result rows (``aidetect.store.results.ResultRow``) whose heatmap paths are paths on
    this host: ``blob:`` references fetched into the local heatmap folder (left as they are
    when they cannot be read)."""
    out: list[Row] = []
    layer: BlobLayer | None | bool = False
    for row in rows:
        cam, ov = getattr(row, "cam_path", None), getattr(row, "overlay_path", None)
        if not (is_ref(cam) or is_ref(ov)):
            out.append(row)
            continue
        if layer is False:
            layer = blob_layer()
        changes: dict[str, Any] = {}
        for name, value in (("cam_path", cam), ("overlay_path", ov)):
            if is_ref(value):
                changes[name] = local_path(value, layer or None) or value
        out.append(dataclasses.replace(row, **changes))  # type: ignore[type-var]
    return out
