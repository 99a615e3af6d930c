"""The ``s3`` backend: ``AIDETECT_BLOBS=s3://BUCKET[/PREFIX]``, S3-compatible object storage
(AWS S3, MinIO, Ceph RGW, ...) through boto3 (``pip install 'aidetect[s3]'``). The server's
URL is ``AIDETECT_S3_ENDPOINT_URL`` (empty: AWS itself); credentials and region come from the
standard AWS settings (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``~/.aws``), never from aidetect's.

Each blob is one object ``PREFIX/<key>`` with user metadata ``gen`` (its generation) and
``expires`` (epoch seconds; empty: kept). How the interface maps onto S3, and where S3
cannot do what the other backends do atomically:

- put once: a HEAD, then ``PutObject`` (or, for a blob over PART_BYTES, a multipart upload
  in PART_BYTES parts, streamed: never more than one part in memory) with ``If-None-Match:
  *``, so of two writers of the same content one stores it and the other gets False. A
  server without conditional writes overwrites with the same bytes (harmless: the key is
  the content's hash).
- TTL: S3 has no per-object expiry. ``expires`` is checked on every read (an expired blob
  is missing, and a put replaces it) and :meth:`S3Blobs.sweep_expired` (``aidetect``'s
  orphan sweep) deletes expired objects. A bucket lifecycle rule on ``PREFIX/img/`` (a few
  days) is a good backstop.
- touch: ``CopyObject`` of the object onto itself with new metadata (a new ``gen``, a new
  ``expires``): atomic on the server (a reader sees the old or the new metadata).
- delete_if_unchanged: **not atomic on S3.** The generation is read (HEAD) and the object
  deleted in a second request; S3 offers no delete conditioned on user metadata, and a touch
  does not change the ETag (same bytes), so ``If-Match`` cannot guard it. A touch that lands
  in the milliseconds between the two requests is lost: the blob is deleted although its
  content was queued again, and the worker fails that image with "the staged bytes are gone;
  queue it again" (nothing is scored wrong, nothing is lost silently). The ``store`` and
  ``redis`` backends do not have this window."""

from __future__ import annotations

import contextlib
import io
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from aidetect.blobs.base import (
    CHUNK_BYTES,
    HEATMAP_PREFIX,
    MODEL_PREFIX,
    BlobBackend,
    BlobMissing,
    BlobsUnavailable,
    check_key,
)
from aidetect.config import redact_url
from aidetect.errors import ConfigError

PART_BYTES = 8 * CHUNK_BYTES  # multipart part size (S3's minimum is 5 MiB, except the last part)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING = {"NoSuchKey", "404", "NotFound"}
_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def parse_url(value: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix ending in "/" or ""); ConfigError (one
    line) for anything else."""
    rest = value[len("s3://"):] if value.lower().startswith("s3://") else ""
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket) or (prefix and ".." in prefix.split("/")):
        raise ConfigError(f"AIDETECT_BLOBS={value!r}: expected s3://BUCKET or s3://BUCKET/PREFIX "
                          "(a bucket name: 3-63 lowercase letters, digits, dots and hyphens)")
    return bucket, (prefix + "/" if prefix else "")


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _Body(io.RawIOBase):
    """A GetObject body as a raw stream (read in pieces, never whole)."""

    def __init__(self, body: Any, size: int) -> None:
        super().__init__()
        self._body, self.size = body, size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._body.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


class S3Blobs(BlobBackend):
    def __init__(self, url: str, endpoint_url: str = "") -> None:
        self.bucket, self.prefix = parse_url(url)
        self.endpoint_url = endpoint_url or None
        where = redact_url(endpoint_url) if endpoint_url else "AWS"
        self.name = f"s3 (s3://{self.bucket}/{self.prefix} at {where})"
        options: dict[str, Any] = {
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
        }
        if self.endpoint_url:  # S3-compatible servers: path-style URLs, checksums only where S3 needs them
            options.update(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                           response_checksum_validation="when_required")
        session = boto3.session.Session()
        region = session.region_name or "us-east-1"
        self.client = session.client("s3", endpoint_url=self.endpoint_url, region_name=region,
                                     config=botocore.config.Config(**options))

    # -- helpers ---------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> BlobsUnavailable:
        return BlobsUnavailable(f"blobs: S3 not reachable at {self.name[4:-1]} ({_one_line(exc)})")

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        """``fn(**kwargs)``; None when the object is not there; BlobsUnavailable for the rest
        of the server's refusals and for a server that cannot be reached."""
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise self._unavailable(exc) from None
        except botocore.exceptions.BotoCoreError as exc:  # endpoint down, no credentials, ...
            raise self._unavailable(exc) from None

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @staticmethod
    def _expired(meta: Mapping[str, str]) -> bool:
        expires = meta.get("expires", "")
        return bool(expires) and float(expires) <= time.time()

    @staticmethod
    def _meta(ttl_s: float | None) -> dict[str, str]:
        return {"gen": uuid.uuid4().hex, "expires": f"{time.time() + ttl_s:.3f}" if ttl_s else ""}

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's HEAD, None when it is not there or has expired."""
        head = self._call(self.client.head_object, Key=self._name(key))
        if head is None or self._expired(head.get("Metadata", {})):
            return None
        return head

    # -- the interface ---------------------------------------------------------------------

    def put(self, key: str, stream: BinaryIO, ttl_s: float | None = None) -> bool:
        name = self._name(key)
        head = self._call(self.client.head_object, Key=name)
        if head is not None and not self._expired(head.get("Metadata", {})):
            return False
        cond = {} if head is not None else {"IfNoneMatch": "*"}  # an expired one is replaced
        meta = self._meta(ttl_s)
        first = self._read_part(stream)
        if len(first) < PART_BYTES:
            return self._conditional(self.client.put_object, Key=name, Body=first, Metadata=meta, **cond)
        upload = self._call(self.client.create_multipart_upload, Key=name, Metadata=meta)
        upload_id = upload["UploadId"]
        try:
            parts, data, n = [], first, 1
            while data:
                got = self._call(self.client.upload_part, Key=name, UploadId=upload_id, PartNumber=n, Body=data)
                parts.append({"PartNumber": n, "ETag": got["ETag"]})
                n += 1
                data = self._read_part(stream)
            done = self._conditional(self.client.complete_multipart_upload, Key=name, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts}, **cond)
        except BaseException:
            self._abort(name, upload_id)
            raise
        if not done:
            self._abort(name, upload_id)
        return done

    @staticmethod
    def _read_part(stream: BinaryIO) -> bytes:
        pieces, n = [], 0
        while n < PART_BYTES and (data := stream.read(min(CHUNK_BYTES, PART_BYTES - n))):
            pieces.append(data)
            n += len(data)
        return b"".join(pieces)

    def _conditional(self, fn: Any, **kwargs: Any) -> bool:
        """A conditional write: False when another writer stored the key first."""
        try:
            fn(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _RACE:
                return False
            raise self._unavailable(exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._unavailable(exc) from None
        return True

    def _abort(self, name: str, upload_id: str) -> None:
        # when it fails, the bucket's lifecycle rule for incomplete uploads cleans up
        with contextlib.suppress(botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)

    def open(self, key: str) -> BinaryIO:
        got = self._call(self.client.get_object, Key=self._name(key))
        if got is None or self._expired(got.get("Metadata", {})):
            if got is not None:
                got["Body"].close()
            raise BlobMissing(f"blob {key}: not in S3 (never staged, expired or deleted)")
        return io.BufferedReader(_Body(got["Body"], int(got["ContentLength"])), CHUNK_BYTES)  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def touch(self, key: str, ttl_s: float | None = None) -> bool:
        head = self._head(key)
        if head is None:
            return False
        meta = dict(head.get("Metadata", {}))
        meta["gen"] = uuid.uuid4().hex
        if ttl_s:
            meta["expires"] = f"{time.time() + ttl_s:.3f}"
        name = self._name(key)
        got = self._call(self.client.copy_object, Key=name, CopySource={"Bucket": self.bucket, "Key": name},
                         Metadata=meta, MetadataDirective="REPLACE")
        return got is not None  # None: deleted between the HEAD and the copy (stage it again)

    def generations(self, keys: Sequence[str]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key in dict.fromkeys(keys):
            head = self._head(key)
            if head is not None:
                out[key] = head.get("Metadata", {}).get("gen", "")
        return out

    def delete_if_unchanged(self, tokens: Mapping[str, object]) -> int:
        # NOT atomic (see the module's docstring): HEAD, compare, then delete.
        doomed = [k for k, gen in self.generations(list(tokens)).items() if gen == tokens[k]]
        return self._delete_names([self._name(k) for k in doomed])

    def delete(self, keys: Sequence[str]) -> int:
        there = [k for k in dict.fromkeys(keys) if self._head(k) is not None]
        self._delete_names([self._name(k) for k in dict.fromkeys(keys)])
        return len(there)

    def _delete_names(self, names: Sequence[str]) -> int:
        for i in range(0, len(names), 1000):
            part = names[i : i + 1000]
            self._call(self.client.delete_objects, Delete={"Objects": [{"Key": n} for n in part], "Quiet": True})
        return len(names)

    def keys(self, prefix: str) -> Iterator[str]:
        full = self.prefix + prefix
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        try:
            names = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._unavailable(exc) from None
        for name in names:
            yield name[len(self.prefix):]

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._unavailable(exc) from None

    def sweep_expired(self) -> int:
        """Delete expired objects (S3 has no per-object TTL). Heatmaps and model files never
        expire and are not looked at."""
        expired = []
        for key in self.keys(""):
            if key.startswith((HEATMAP_PREFIX, MODEL_PREFIX)):
                continue
            head = self._call(self.client.head_object, Key=self._name(key))
            if head is not None and self._expired(head.get("Metadata", {})):
                expired.append(self._name(key))
        return self._delete_names(expired)
