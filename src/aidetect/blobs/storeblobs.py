"""The ``store`` backend: blobs in the database every host already reaches (tables ``blobs``
and ``blob_chunks``; the SQL is in :mod:`aidetect.store.blobs`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import BinaryIO

from aidetect.blobs.base import (
    CHUNK_BYTES,
    BlobBackend,
    BlobMissing,
    BlobsUnavailable,
    check_key,
    chunk_stream,
)
from aidetect.config import get_settings, redact_url
from aidetect.errors import AidetectError
from aidetect.store import blobs as sql


class StoreBlobs(BlobBackend):
    def __init__(self) -> None:
        self.name = f"store ({redact_url(get_settings().database_url)})"

    def put(self, key: str, stream: BinaryIO, ttl_s: float | None = None) -> bool:
        return sql.put_blob(check_key(key), stream, CHUNK_BYTES, ttl_s)

    def put_many(self, items: Sequence[tuple[str, BinaryIO]], ttl_s: float | None = None) -> list[bool]:
        return sql.put_blobs([(check_key(k), stream) for k, stream in items], CHUNK_BYTES, ttl_s)

    def open(self, key: str) -> BinaryIO:
        info = sql.blob_info(check_key(key))
        if info is None:
            raise BlobMissing(f"blob {key}: not in the store")
        size, n = info
        return chunk_stream(lambda seq: sql.read_chunk(key, seq), n, size, key)

    def exists(self, key: str) -> bool:
        return sql.blob_info(check_key(key)) is not None

    def touch(self, key: str, ttl_s: float | None = None) -> bool:
        return sql.touch_blob(check_key(key), ttl_s)

    def generations(self, keys: Sequence[str]) -> dict[str, object]:
        return sql.generations([check_key(k) for k in keys])

    def delete_if_unchanged(self, tokens: Mapping[str, object]) -> int:
        return sql.delete_if_unchanged({check_key(k): t for k, t in tokens.items()})

    def delete(self, keys: Sequence[str]) -> int:
        return sql.delete_blobs([check_key(k) for k in keys])

    def keys(self, prefix: str) -> Iterator[str]:
        return sql.blob_keys(prefix)

    def check(self) -> None:
        try:
            sql.blob_info("check")
        except AidetectError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database is down or refuses us
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BlobsUnavailable(f"blobs: the store is not reachable at {self.name} ({first})") from None

    def sweep_expired(self) -> int:
        return sql.delete_expired()
