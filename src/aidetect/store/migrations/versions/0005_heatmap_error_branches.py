"""Heatmap errors and branches: ``predictions.heatmap_error`` says why a verdict's heatmap files
were not written (the heatmap folder was removed or replaced by a file, the disk was full): the
verdict is stored all the same; ``predictions.branches`` (JSON) says, for a fused model, each
branch's logit, contribution and share of the decision. NULL for every prediction stored before."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("heatmap_error", sa.Text, nullable=True))
        batch.add_column(sa.Column("branches", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("branches")
        batch.drop_column("heatmap_error")
