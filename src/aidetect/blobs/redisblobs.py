"""The ``redis`` backend for staged image bytes: a Redis every host already reaches (the
broker's, or another), each blob a list of 1 MiB chunks plus a small hash (size, chunks)
that says it is complete. Written to a temporary key and renamed into place by one script,
so a reader never sees half a blob and a second writer of the same content stores nothing.
Every staged blob has a TTL (a safety net; it is deleted explicitly once scored)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import redis

from aidetect.blobs.base import (
    CHUNK_BYTES,
    BlobBackend,
    BlobMissing,
    BlobsUnavailable,
    check_key,
    chunk_stream,
    too_large,
)
from aidetect.config import redact_url
from aidetect.errors import AidetectError
from aidetect.model.decode import MAX_FILE_BYTES

PREFIX = "aidetect:blob:"
META = "aidetect:blobmeta:"
TMP = "aidetect:blobtmp:"
PIPELINE_CHUNKS = 64  # chunks (1 MiB each) fetched per round trip by read_many
TMP_TTL_S = 3600  # a writer that dies half-way leaves a temporary key for at most this long

# KEYS: tmp, data, meta; ARGV: size, chunks, ttl (0: keep), generation
_COMMIT = """
if redis.call('exists', KEYS[3]) == 1 then redis.call('del', KEYS[1]); return 0 end
if tonumber(ARGV[2]) > 0 then redis.call('rename', KEYS[1], KEYS[2]) end
redis.call('hset', KEYS[3], 'size', ARGV[1], 'chunks', ARGV[2], 'gen', ARGV[4])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('expire', KEYS[3], ttl)
  if tonumber(ARGV[2]) > 0 then redis.call('expire', KEYS[2], ttl) end
elseif tonumber(ARGV[2]) > 0 then
  redis.call('persist', KEYS[2])
end
return 1
"""


# KEYS: meta, data; ARGV: new generation, ttl (0: leave it)
_TOUCH = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], 'gen', ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('expire', KEYS[1], ttl)
  if redis.call('exists', KEYS[2]) == 1 then redis.call('expire', KEYS[2], ttl) end
end
return 1
"""

# KEYS: meta1, data1, meta2, data2, ...; ARGV: the generation each must still have ('' for a
# blob staged before generations existed)
_DELETE_IF = """
local n = 0
for i = 1, #ARGV do
  local gen = redis.call('hget', KEYS[2 * i - 1], 'gen') or ''
  if redis.call('exists', KEYS[2 * i - 1]) == 1 and gen == ARGV[i] then
    redis.call('del', KEYS[2 * i - 1], KEYS[2 * i])
    n = n + 1
  end
end
return n
"""


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class RedisBlobs(BlobBackend):
    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"redis ({redact_url(url)})"
        self.client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30)
        self._commit = self.client.register_script(_COMMIT)
        self._touch = self.client.register_script(_TOUCH)
        self._delete_if = self.client.register_script(_DELETE_IF)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.exceptions.RedisError as exc:
            raise BlobsUnavailable(f"blobs: Redis not reachable at {redact_url(self.url)} ({_one_line(exc)})") from None

    def put(self, key: str, stream: BinaryIO, ttl_s: float | None = None) -> bool:
        check_key(key)
        if self.exists(key):
            return False
        tmp = TMP + uuid.uuid4().hex
        n = size = 0
        try:
            while data := stream.read(CHUNK_BYTES):
                pipe = self.client.pipeline(transaction=False)
                pipe.rpush(tmp, data)
                pipe.expire(tmp, TMP_TTL_S)
                self._call(pipe.execute)
                n += 1
                size += len(data)
            ttl = max(1, int(ttl_s)) if ttl_s else 0
            gen = uuid.uuid4().hex  # every put a new generation (see touch, delete_if_unchanged)
            return bool(self._call(self._commit, [tmp, PREFIX + key, META + key], [size, n, ttl, gen]))
        except BaseException:
            with contextlib.suppress(redis.exceptions.RedisError):
                self.client.delete(tmp)
            raise

    def open(self, key: str) -> BinaryIO:
        meta = self._call(self.client.hgetall, META + check_key(key))
        if not meta:
            raise BlobMissing(f"blob {key}: not in Redis (never staged, expired or deleted)")
        size, n = int(meta[b"size"]), int(meta[b"chunks"])
        data_key = PREFIX + key
        return chunk_stream(lambda seq: self._call(self.client.lindex, data_key, seq), n, size, key)

    def read_many(self, keys: Sequence[str], max_bytes: int = MAX_FILE_BYTES) -> dict[str, bytes | AidetectError]:
        """A batch's staged bytes in few round trips: the completion hashes in one pipeline,
        then the chunks in pipelines of at most PIPELINE_CHUNKS (a large image still travels
        in 1 MiB pieces, never as one reply)."""
        keys = list(dict.fromkeys(check_key(k) for k in keys))
        out: dict[str, bytes | AidetectError] = {}
        if not keys:
            return out
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(META + key)
        calls: list[tuple[str, int]] = []
        for key, meta in zip(keys, self._call(pipe.execute), strict=True):
            if not meta:
                out[key] = BlobMissing(f"blob {key}: not in Redis (never staged, expired or deleted)")
            elif int(meta[b"size"]) > max_bytes:
                out[key] = too_large(int(meta[b"size"]), max_bytes)
            else:
                calls.extend((key, seq) for seq in range(int(meta[b"chunks"])))
                out[key] = b""
        parts: dict[str, list[bytes]] = {}
        for i in range(0, len(calls), PIPELINE_CHUNKS):
            pipe = self.client.pipeline(transaction=False)
            for key, seq in calls[i : i + PIPELINE_CHUNKS]:
                pipe.lindex(PREFIX + key, seq)
            for (key, seq), data in zip(calls[i : i + PIPELINE_CHUNKS], self._call(pipe.execute), strict=True):
                if data is None:  # deleted between the hash and this chunk
                    out[key] = BlobMissing(f"blob {key}: chunk {seq} is gone (deleted while read)")
                else:
                    parts.setdefault(key, []).append(data)
        for key, pieces in parts.items():
            if not isinstance(out[key], AidetectError):
                out[key] = b"".join(pieces)
        return out

    def exists(self, key: str) -> bool:
        return bool(self._call(self.client.exists, META + check_key(key)))

    def touch(self, key: str, ttl_s: float | None = None) -> bool:
        ttl = max(1, int(ttl_s)) if ttl_s else 0
        return bool(self._call(self._touch, [META + check_key(key), PREFIX + key], [uuid.uuid4().hex, ttl]))

    def generations(self, keys: Sequence[str]) -> dict[str, object]:
        keys = list(dict.fromkeys(check_key(k) for k in keys))
        if not keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(META + key, "size", "gen")
        got = self._call(pipe.execute)
        return {k: (gen or b"").decode() for k, (size, gen) in zip(keys, got, strict=True) if size is not None}

    def delete_if_unchanged(self, tokens: Mapping[str, object]) -> int:
        items = [(check_key(k), str(t)) for k, t in tokens.items()]
        n = 0
        for i in range(0, len(items), 500):
            part = items[i : i + 500]
            names = [name for k, _t in part for name in (META + k, PREFIX + k)]
            n += int(self._call(self._delete_if, names, [t for _k, t in part]))
        return n

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        keys = list(dict.fromkeys(keys))  # EXISTS counts a key named twice twice
        there = 0
        for i in range(0, len(keys), 500):  # one round trip per 500 keys: how many were there, then gone
            part = [check_key(k) for k in keys[i : i + 500]]
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(*[META + k for k in part])
            pipe.delete(*[META + k for k in part], *[PREFIX + k for k in part])
            there += int(self._call(pipe.execute)[0])
        return there

    def keys(self, prefix: str) -> Iterator[str]:
        pattern = META + prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?").replace("[", "\\[") + "*"
        for name in self._call(lambda: list(self.client.scan_iter(match=pattern, count=1000))):
            yield name.decode()[len(META):]

    def check(self) -> None:
        self._call(self.client.ping)
