"""Image bytes travel with the work: the submitter (scan, the inbox, the dashboard's upload)
stages each queued content once under ``img/<sha256>``; a worker that cannot see the path
reads the staged bytes; they are deleted once every row for that content is final, and a
sweep removes what a crash left behind."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from aidetect.blobs import BlobLayer, blob_layer
from aidetect.blobs.base import IMAGE_PREFIX, BlobMissing, BlobsUnavailable, image_key
from aidetect.errors import ImageLoadError
from aidetect.model.decode import MAX_FILE_BYTES, file_kind
from aidetect.store import blobs as sql
from aidetect.store import writes
from aidetect.store.tables import FINAL_STATUSES

log = logging.getLogger(__name__)
CHANGED = "file changed since it was registered (content hash differs)"
GONE = "the file is not on this host and its staged bytes are gone (expired or swept); queue it again"


@dataclass
class Staged:
    """What :func:`stage_images` did: contents staged now (and their bytes), contents that
    were staged already, and images failed because their file could not be staged."""

    staged: int = 0
    bytes: int = 0
    present: int = 0
    failed: dict[int, str] = field(default_factory=dict)


class _Hashing:
    """Reads through ``fh`` and hashes what it reads, refusing more than ``limit`` bytes."""

    def __init__(self, fh: BinaryIO, limit: int) -> None:
        self.fh, self.limit, self.n = fh, limit, 0
        self.h = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.n += len(data)
        if self.n > self.limit:
            raise ImageLoadError(f"refused: over the limit of {self.limit} bytes per file")
        self.h.update(data)
        return data


def _open_regular(path: str) -> BinaryIO:
    """``path`` opened for reading as :func:`aidetect.model.decode.read_file_bytes` does
    (non-blocking, a regular file checked on the descriptor, at most MAX_FILE_BYTES), or
    :class:`ImageLoadError` with the one-line reason."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ImageLoadError("file not found (deleted before it was staged)", source=path) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ImageLoadError("unreadable: permission denied", source=path) from None
        raise ImageLoadError(f"unreadable: {exc.strerror or exc}", source=path) from None
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        raise ImageLoadError(f"not a regular file: {file_kind(st.st_mode)}", source=path)
    if st.st_size > MAX_FILE_BYTES:
        fh.close()
        raise ImageLoadError(f"refused: {st.st_size} bytes is over the limit of {MAX_FILE_BYTES} bytes per file",
                             source=path)
    return fh


def stage_images(image_ids: Sequence[int], layer: BlobLayer | None = None) -> Staged:
    """Stage the bytes of the queued images ``image_ids`` (each content once; a content
    staged already is not read again). An image whose file is gone, unreadable or changed
    since it was hashed is failed with the reason (``report.failed``; do not queue it).
    :class:`BlobsUnavailable` when the backend cannot be reached."""
    layer = layer or blob_layer()
    out = Staged()
    if layer is None:
        return out
    seen: set[str] = set()
    for image_id, path, sha, status in sql.image_sources(image_ids):
        if sha is None or status in FINAL_STATUSES or sha in seen:
            continue
        seen.add(sha)
        key = image_key(sha)
        if layer.staging.touch(key, layer.ttl_s):  # there already: a new generation keeps it from a release under way
            out.present += 1
            continue
        try:
            with _open_regular(path) as fh:
                reader = _Hashing(fh, MAX_FILE_BYTES)
                if not layer.staging.put(key, reader, ttl_s=layer.ttl_s):  # type: ignore[arg-type]
                    out.present += 1
                    continue
        except ImageLoadError as exc:
            out.failed[image_id] = exc.reason
            continue
        if reader.h.hexdigest() != sha:
            layer.staging.delete([key])
            out.failed[image_id] = CHANGED
            continue
        out.staged += 1
        out.bytes += reader.n
    for reason in set(out.failed.values()):
        writes.mark_failed([i for i, r in out.failed.items() if r == reason], reason)
    return out


def read_staged(sha: str, layer: BlobLayer, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The staged bytes of content ``sha`` (a worker that cannot see the path), or
    :class:`ImageLoadError` with the reason (gone, over the limit, backend down)."""
    try:
        return layer.staging.read(image_key(sha), max_bytes)
    except BlobMissing:
        raise ImageLoadError(GONE) from None
    except BlobsUnavailable as exc:
        raise ImageLoadError(f"staged bytes not readable: {exc}") from None


def read_staged_many(shas: Sequence[str], layer: BlobLayer,
                     max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes | ImageLoadError]:
    """:func:`read_staged` for a batch in few round trips (one pipeline of Redis): per
    content its bytes or the :class:`ImageLoadError` with the reason."""
    keys = {image_key(s): s for s in dict.fromkeys(shas)}
    try:
        got = layer.staging.read_many(list(keys), max_bytes)
    except BlobsUnavailable as exc:
        err = ImageLoadError(f"staged bytes not readable: {exc}")
        return dict.fromkeys(keys.values(), err)
    out: dict[str, bytes | ImageLoadError] = {}
    for key, sha in keys.items():
        value = got[key]
        if isinstance(value, bytes | ImageLoadError):
            out[sha] = value
        else:  # BlobMissing
            out[sha] = ImageLoadError(GONE)
    return out


def release(shas: Iterable[str], layer: BlobLayer | None = None) -> int:
    """Delete the staged bytes of the contents in ``shas`` whose rows are all final now;
    returns how many were deleted.

    Safe against a content queued again meanwhile (``scan --rescan``, a re-queue): the
    blobs' generations are read *before* the rows' states and a blob is deleted only if its
    generation is unchanged. The submitter commits ``queued`` before it stages, and staging
    a blob that is there gives it a new generation (:meth:`BlobBackend.touch`): so either
    the states read here show it queued, or the generation changed, or the delete came
    first and staging finds the blob gone and puts it again."""
    layer = layer or blob_layer()
    if layer is None:
        return 0
    keys = {image_key(s): s for s in set(shas) if s}
    tokens = layer.staging.generations(list(keys))  # first: see above
    if not tokens:
        return 0
    states = sql.image_states([keys[k] for k in tokens])
    final = {k: t for k, t in tokens.items() if states.get(keys[k], "done") in FINAL_STATUSES}
    return layer.staging.delete_if_unchanged(final) if final else 0


def sweep(layer: BlobLayer | None = None) -> int:
    """Delete orphans: staged bytes whose content has no row that still waits (after a
    crash between scoring and release), and expired blobs in the store. Returns how many."""
    layer = layer or blob_layer()
    if layer is None:
        return 0
    shas = [k[len(IMAGE_PREFIX):] for k in layer.staging.keys(IMAGE_PREFIX)]
    removed = 0
    for i in range(0, len(shas), 2000):
        removed += release(shas[i : i + 2000], layer)
    for backend in {id(layer.staging): layer.staging, id(layer.keeping): layer.keeping}.values():
        sweep_expired = getattr(backend, "sweep_expired", None)
        if sweep_expired is not None:
            removed += int(sweep_expired())
    if removed:
        log.info("blob sweep: %d orphaned or expired blobs deleted", removed)
    return removed
