"""ORM tables: files (paths), images (contents), predictions, model versions, worker heartbeats.

A *file* is a path that was scanned or dropped; an *image* is a distinct content (or one
unreadable path). Several files may share one image: it is scored once and every file shows
its result under its own path."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Every status an image has, in the order people read them (the dashboard's status menu).
STATUSES = ("done", "failed", "queued", "processing")
FINAL_STATUSES = ("done", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class File(Base):
    """One path that was scanned or dropped, and the content it held when last registered
    (``image_id``): a path whose content changed points at its new content only."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[float | None] = mapped_column(Float)  # st_mtime when registered
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    image: Mapped[Image] = relationship(back_populates="files")


class Image(Base):
    """One distinct file content (``key`` = ``sha256:<hex>``), or one unreadable path
    (``key`` = ``path:<abs path>``, ``sha256`` NULL). ``path`` is where the workers read the
    content: the newest file registered with it."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(1100), unique=True)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[list | None] = mapped_column(JSON)  # provenance items (aidetect.provenance), when read

    predictions: Mapped[list[Prediction]] = relationship(back_populates="image")
    files: Mapped[list[File]] = relationship(back_populates="image")


class Prediction(Base):
    """At most one per (image, model version); rewritten in place when re-scored."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("image_id", "model_version", name="uq_prediction_image_version"),
        Index("ix_predictions_created", "created"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(128), index=True)
    label: Mapped[str] = mapped_column(String(8))
    decided_by: Mapped[str | None] = mapped_column(String(16), index=True)  # "model" | "provenance"
    prob_ai: Mapped[float] = mapped_column(Float)
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    uncertain_reason: Mapped[str | None] = mapped_column(String(32))  # aidetect.wording.UNCERTAIN_REASONS
    ood_score: Mapped[float | None] = mapped_column(Float)
    scored_by: Mapped[str | None] = mapped_column(String(128))  # the model that scored it (routing by size)
    cam_path: Mapped[str | None] = mapped_column(Text)  # the raw Grad-CAM (8-bit grey PNG)
    overlay_path: Mapped[str | None] = mapped_column(Text)
    heatmap_error: Mapped[str | None] = mapped_column(Text)  # why the heatmap files were not written (the verdict stands)
    branches: Mapped[dict | None] = mapped_column(JSON)  # fused models: per branch logit, contribution, share
    timings: Mapped[dict | None] = mapped_column(JSON)
    worker: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    image: Mapped[Image] = relationship(back_populates="predictions")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(128), unique=True)
    path: Mapped[str] = mapped_column(Text)
    architecture: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict | None] = mapped_column(JSON)
    card: Mapped[dict | None] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class WorkerBeat(Base):
    """Heartbeat of a running worker (broker-independent liveness: ``store.status.live_workers``)."""

    __tablename__ = "worker_beats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    host: Mapped[str | None] = mapped_column(String(255))  # the machine it runs on (socket.gethostname())
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    broker: Mapped[str | None] = mapped_column(Text)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Blob(Base):
    """A blob kept in the store (``AIDETECT_BLOBS=store``, and heatmaps and model files with
    ``redis``): bytes every host can read, in chunks (:class:`BlobChunk`) so that a large
    image is written and read as a stream. ``expires`` is set for staged image bytes (a
    safety net: they are deleted once their image is final) and NULL for what is kept."""

    __tablename__ = "blobs"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class BlobChunk(Base):
    __tablename__ = "blob_chunks"

    key: Mapped[str] = mapped_column(ForeignKey("blobs.key", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
