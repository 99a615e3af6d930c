"""Several machines: ``blobs`` + ``blob_chunks`` hold bytes every host can read (staged image
bytes with ``AIDETECT_BLOBS=store``, heatmaps and model files with any non-file setting), in
chunks so that large images stream; ``worker_beats.host`` names the machine a worker runs on
(``aidetect status`` lists workers by host)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_blobs_expires", "blobs", ["expires"])
    op.create_table(
        "blob_chunks",
        sa.Column("key", sa.String(512), sa.ForeignKey("blobs.key", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    with op.batch_alter_table("worker_beats") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_beats") as batch:
        batch.drop_column("host")
    op.drop_table("blob_chunks")
    op.drop_index("ix_blobs_expires", "blobs")
    op.drop_table("blobs")
