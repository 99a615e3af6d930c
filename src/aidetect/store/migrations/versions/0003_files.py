"""Files apart from contents: a ``files`` row per scanned or dropped path, pointing at the
image (content) it held when last registered; ``predictions.heatmap_path`` is called what it
holds, ``cam_path``.

Existing stores: every image gets the file row of the path it was last registered under.
Where several images name the same path (a file scanned half-written, then again complete),
the path points at the newest one, so it shows its current content's result once; the older
images and their predictions stay in the store. Nothing is deleted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column(
            "image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("mtime", sa.Float, nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_files_image_id", "files", ["image_id"])
    op.create_index("ix_files_last_seen", "files", ["last_seen"])
    op.execute(
        "INSERT INTO files (path, image_id, size, mtime, first_seen, last_seen) "
        "SELECT i.path, i.id, i.size, NULL, i.first_seen, i.updated FROM images i "
        "WHERE i.id = (SELECT i2.id FROM images i2 WHERE i2.path = i.path "
        "ORDER BY i2.updated DESC, i2.id DESC LIMIT 1)"
    )
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("heatmap_path", new_column_name="cam_path")


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("cam_path", new_column_name="heatmap_path")
    op.drop_index("ix_files_last_seen", "files")
    op.drop_index("ix_files_image_id", "files")
    op.drop_table("files")
