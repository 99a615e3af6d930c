"""The active model's files for worker hosts that lack them: the host that registered the
model stages its files once under ``models/<version>/...`` with a manifest (sizes, SHA-256)
written last; a worker whose registered model folder does not exist fetches them into
``$AIDETECT_HOME/models/<version>`` (checked against the manifest) and loads from there."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from pathlib import Path

from aidetect.blobs import BlobLayer, blob_layer
from aidetect.blobs.base import MODEL_PREFIX, BlobMissing
from aidetect.config import get_settings
from aidetect.errors import ModelLoadError

log = logging.getLogger(__name__)
MANIFEST = "MANIFEST.json"
CARD = "card.json"
_published: set[tuple[str, str]] = set()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.relative_to(folder).parts))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def publish(version: str, folder: str | Path, layer: BlobLayer | None = None) -> bool:
    """Stage the files of model ``version`` (folder ``folder``) once; False when they were
    there already (or there is no blob layer, or the folder is not on this host)."""
    layer = layer or blob_layer()
    folder = Path(folder)
    if layer is None or (version, str(folder)) in _published:
        return False
    manifest_key = f"{MODEL_PREFIX}{version}/{MANIFEST}"
    if layer.keeping.exists(manifest_key) or not (folder / CARD).is_file():
        _published.add((version, str(folder)))
        return False
    entries = {}
    for p in _files(folder):
        rel = p.relative_to(folder).as_posix()
        with p.open("rb") as fh:
            layer.keeping.put(f"{MODEL_PREFIX}{version}/{rel}", fh)
        entries[rel] = {"size": p.stat().st_size, "sha256": _sha256(p)}
    layer.keeping.put_bytes(manifest_key, json.dumps({"version": version, "files": entries}).encode())
    _published.add((version, str(folder)))
    log.info("model %s staged for other hosts (%d files)", version, len(entries))
    return True


def local_dir(version: str, path: str | Path, layer: BlobLayer | None = None) -> Path:
    """Where this host loads model ``version`` from: its registered folder when it is here,
    else a copy fetched from the blob layer (once) into ``$AIDETECT_HOME/models/<version>``."""
    path = Path(path)
    if (path / CARD).is_file():
        return path
    dest = get_settings().home / "models" / version
    if (dest / CARD).is_file():
        return dest
    layer = layer or blob_layer()
    if layer is None:
        return path  # the Detector says the folder is missing
    try:
        manifest = json.loads(layer.keeping.read(f"{MODEL_PREFIX}{version}/{MANIFEST}"))
    except BlobMissing:
        raise ModelLoadError(
            f"model {version}: its folder {path} is not on this host and its files were not staged "
            "(start `aidetect up` or `aidetect scan` on the host that registered it)"
        ) from None
    tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
    try:
        for rel, meta in manifest["files"].items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with layer.keeping.open(f"{MODEL_PREFIX}{version}/{rel}") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if _sha256(target) != meta["sha256"]:
                raise ModelLoadError(f"model {version}: {rel} fetched from the blob layer does not match its manifest")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / CARD).is_file():  # another process of this host fetched it at the same time
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("model %s fetched from the blob layer into %s", version, dest)
    return dest
