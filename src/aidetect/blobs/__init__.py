"""Bytes that travel between hosts, keyed by content: staged image bytes (so a worker that
cannot see a path still scores it), heatmaps (so every host can show them) and the active
model's files (so a worker host needs nothing but its settings).

``AIDETECT_BLOBS`` chooses (:func:`blob_layer`):

- ``file`` (default): nothing travels; workers read paths, heatmaps stay in the local
  heatmap folder (one host, or a shared mount). :func:`blob_layer` is None.
- ``store``: everything in the database (tables ``blobs``/``blob_chunks``).
- ``redis`` (the broker's Redis) or ``redis://host:port/db``: staged image bytes in Redis with
  a TTL, deleted once scored; heatmaps and model files in the store (they must last).
- ``s3://BUCKET[/PREFIX]``: everything in S3-compatible object storage (server:
  ``AIDETECT_S3_ENDPOINT_URL``; credentials: the standard AWS settings; needs
  ``aidetect[s3]``). Its release of staged bytes is not atomic (``s3blobs``).

Parts: ``base`` (interface, keys), ``redisblobs``, ``storeblobs`` and ``s3blobs`` (backends),
``staging`` (submitters stage, workers read and release, the orphan sweep), ``heatmaps``
(kept heatmaps, read back on any host), ``models`` (the active model's files)."""

from __future__ import annotations

from dataclasses import dataclass

from aidetect.blobs.base import BlobBackend, BlobMissing, BlobsUnavailable
from aidetect.config import Settings, get_settings, redact_url
from aidetect.errors import ConfigError

__all__ = ["BlobBackend", "BlobLayer", "BlobMissing", "BlobsUnavailable", "blob_layer", "describe"]

CHOICES = "file, store, redis (the broker's Redis), redis://host:port/db or s3://BUCKET[/PREFIX]"


@dataclass(frozen=True)
class BlobLayer:
    setting: str
    staging: BlobBackend  # staged image bytes (expire; deleted once scored)
    keeping: BlobBackend  # heatmaps and model files (kept)
    ttl_s: int

    def check(self) -> None:
        self.staging.check()
        if self.keeping is not self.staging:
            self.keeping.check()

    def describe(self) -> str:
        if self.keeping is self.staging:
            return self.staging.name
        return f"images in {self.staging.name}; heatmaps and models in {self.keeping.name}"


_cache: dict[tuple[str, str, str, str], BlobLayer] = {}


def _redis_url(settings: Settings, value: str) -> str:
    if value != "redis":
        return value
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    raise ConfigError(
        f"AIDETECT_BLOBS=redis: the broker is not Redis (AIDETECT_BROKER_URL={redact_url(settings.broker_url)}); "
        "name one, e.g. AIDETECT_BLOBS=redis://host:6379/1, or use AIDETECT_BLOBS=store"
    )


def _s3(value: str, settings: Settings) -> BlobBackend:
    try:
        from aidetect.blobs.s3blobs import S3Blobs
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("boto3", "botocore"):
            raise
        raise ConfigError(f"AIDETECT_BLOBS={value}: S3 needs boto3, which is not installed "
                          "(pip install 'aidetect[s3]')") from None
    return S3Blobs(value, settings.s3_endpoint_url)


def blob_layer(settings: Settings | None = None) -> BlobLayer | None:
    """The blob layer ``AIDETECT_BLOBS`` names (cached per process), or None for ``file``.
    :class:`ConfigError` (one line) for a value it does not know."""
    settings = settings or get_settings()
    value = settings.blobs.strip()
    if value.lower() == "file":
        return None
    key = (value, settings.broker_url, settings.database_url, settings.s3_endpoint_url)
    layer = _cache.get(key)
    if layer is not None:
        return layer
    from aidetect.blobs.storeblobs import StoreBlobs

    if value.lower() == "store":
        store = StoreBlobs()
        layer = BlobLayer("store", store, store, settings.blob_ttl_s)
    elif value.lower() == "redis" or value.startswith(("redis://", "rediss://", "unix://")):
        from aidetect.blobs.redisblobs import RedisBlobs

        layer = BlobLayer("redis", RedisBlobs(_redis_url(settings, value)), StoreBlobs(), settings.blob_ttl_s)
    elif value.lower().startswith("s3://"):
        s3 = _s3(value, settings)
        layer = BlobLayer("s3", s3, s3, settings.blob_ttl_s)
    else:
        raise ConfigError(f"AIDETECT_BLOBS={redact_url(value)!r}: expected {CHOICES}")
    _cache[key] = layer
    return layer


def describe(settings: Settings | None = None) -> str:
    """The blob setting as a person reads it (credentials never shown)."""
    layer = blob_layer(settings)
    return "file (paths on this host; heatmaps in the local folder)" if layer is None else layer.describe()
