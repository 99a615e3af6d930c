"""Initial store: images, predictions, model versions, worker heartbeats.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(1100), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_images_sha256", "images", ["sha256"])
    op.create_index("ix_images_status", "images", ["status"])
    op.create_index("ix_images_updated", "images", ["updated"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "image_id",
            sa.Integer,
            sa.ForeignKey("images.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("label", sa.String(8), nullable=False),
        sa.Column("prob_ai", sa.Float, nullable=False),
        sa.Column("uncertain", sa.Boolean, nullable=False),
        sa.Column("heatmap_path", sa.Text, nullable=True),
        sa.Column("overlay_path", sa.Text, nullable=True),
        sa.Column("timings", sa.JSON, nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("image_id", "model_version", name="uq_prediction_image_version"),
    )
    op.create_index("ix_predictions_image_id", "predictions", ["image_id"])
    op.create_index("ix_predictions_model_version", "predictions", ["model_version"])
    op.create_index("ix_predictions_created", "predictions", ["created"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.String(128), nullable=False, unique=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("architecture", sa.String(64), nullable=True),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("card", sa.JSON, nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_index("ix_model_versions_active", "model_versions", ["active"])
    op.create_table(
        "worker_beats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("broker", sa.Text, nullable=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_worker_beats_last_seen", "worker_beats", ["last_seen"])


def downgrade() -> None:
    op.drop_table("worker_beats")
    op.drop_table("model_versions")
    op.drop_table("predictions")
    op.drop_table("images")
