"""The blob interface: bytes under a key, written and read as streams.

Keys are ``img/<sha256>`` (staged image bytes: the content hash the store already records),
``heatmaps/<shard>/<name>`` (a CAM PNG or an overlay JPEG) and ``models/<version>/<file>``
(the registered model's files). A backend stores a key once: :meth:`BlobBackend.put` of a key
that is there already reads nothing and returns False."""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import BinaryIO

from aidetect.errors import AidetectError, ImageLoadError
from aidetect.model.decode import MAX_FILE_BYTES

CHUNK_BYTES = 1 << 20  # a large image travels in 1 MiB pieces, never as one value
IMAGE_PREFIX = "img/"
HEATMAP_PREFIX = "heatmaps/"
MODEL_PREFIX = "models/"
_SHA = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"[A-Za-z0-9._+@=/-]{1,500}")


class BlobsUnavailable(AidetectError):
    """The blob backend (Redis, the store) cannot be reached."""


class BlobMissing(AidetectError):
    """No blob under that key (never staged, expired, or deleted)."""


def image_key(sha256: str) -> str:
    if not _SHA.fullmatch(sha256 or ""):
        raise ValueError(f"not a sha256: {sha256!r}")
    return IMAGE_PREFIX + sha256


def too_large(size: int, max_bytes: int) -> ImageLoadError:
    return ImageLoadError(f"refused: {size} bytes is over the limit of {max_bytes} bytes per file")


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key.split("/") or key.startswith("/"):
        raise ValueError(f"not a blob key: {key!r}")
    return key


class BlobBackend(ABC):
    """Where blobs live. ``name`` is shown to people (no credentials)."""

    name: str = "?"

    @abstractmethod
    def put(self, key: str, stream: BinaryIO, ttl_s: float | None = None) -> bool:
        """Store ``stream`` under ``key`` (read in CHUNK_BYTES pieces); False when the key
        is there already. ``ttl_s``: expire after that many seconds (None: keep)."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A stream of the blob's bytes; :class:`BlobMissing` when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> int:
        """Delete ``keys``; returns how many there were."""

    @abstractmethod
    def touch(self, key: str, ttl_s: float | None = None) -> bool:
        """The blob is wanted again (a content queued again): give it a new generation, so
        that a :meth:`delete_if_unchanged` with a token read before leaves it, and start its
        TTL again (``ttl_s``; None: leave it). False when there is no blob (stage it)."""

    @abstractmethod
    def generations(self, keys: Sequence[str]) -> dict[str, object]:
        """An opaque token per key that has a blob, new whenever the blob is put or touched."""

    @abstractmethod
    def delete_if_unchanged(self, tokens: Mapping[str, object]) -> int:
        """Delete each key whose blob still has the generation ``tokens[key]`` (checked and
        deleted atomically: a concurrent :meth:`touch` either comes first and keeps the blob,
        or comes after and finds it gone); returns how many were deleted."""

    @abstractmethod
    def keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix`` (for sweeps)."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`BlobsUnavailable` (one line) when the backend cannot be reached."""

    def put_bytes(self, key: str, data: bytes, ttl_s: float | None = None) -> bool:
        return self.put(key, io.BytesIO(data), ttl_s)

    def put_many(self, items: Sequence[tuple[str, BinaryIO]], ttl_s: float | None = None) -> list[bool]:
        """:meth:`put` of several blobs (a backend may do it in one round trip or one
        transaction); per item, whether it was stored now."""
        return [self.put(key, stream, ttl_s) for key, stream in items]

    def read_many(self, keys: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes | AidetectError]:
        """:meth:`read` of several blobs (a backend may fetch them in a few round trips):
        per key its bytes, or the :class:`BlobMissing` / :class:`ImageLoadError` that
        :meth:`read` raises. :class:`BlobsUnavailable` when the backend cannot be reached."""
        out: dict[str, bytes | AidetectError] = {}
        for key in keys:
            try:
                out[key] = self.read(key, max_bytes)
            except (BlobMissing, ImageLoadError) as exc:
                out[key] = exc
        return out

    def read(self, key: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The whole blob, at most ``max_bytes`` (the file reader's limit per input: the
        same one-line refusal as :func:`aidetect.model.decode.read_file_bytes`)."""
        with self.open(key) as fh:
            size = getattr(fh, "size", None)
            if size is not None and size > max_bytes:
                raise too_large(size, max_bytes)
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ImageLoadError(f"refused: over the limit of {max_bytes} bytes per file")
        return data


class ChunkReader(io.RawIOBase):
    """A read-only stream over ``n`` chunks fetched one at a time by ``fetch(seq)``."""

    def __init__(self, fetch: Callable[[int], bytes | None], n: int, size: int, key: str) -> None:
        super().__init__()
        self._fetch, self._n, self.size, self._key = fetch, n, size, key
        self._seq = 0
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            if self._seq >= self._n:
                return 0
            data = self._fetch(self._seq)
            if data is None:
                raise BlobMissing(f"blob {self._key}: chunk {self._seq} is gone (deleted while read)")
            self._seq += 1
            self._buf = memoryview(data)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def chunk_stream(fetch: Callable[[int], bytes | None], n: int, size: int, key: str) -> BinaryIO:
    return io.BufferedReader(ChunkReader(fetch, n, size, key), CHUNK_BYTES)  # type: ignore[return-value]
