"""Predictions say why they are uncertain, and how far from the training data they lie.

``uncertain_reason``: "outside training data" | "low confidence" | NULL (a firm verdict, or a
prediction stored before this revision); ``ood_score``: the model's out-of-distribution
distance, NULL for models without one; ``scored_by``: the model that scored the image when
it is not ``model_version`` itself (images below the default model's size go to its model
for small images). Existing rows are kept as they are.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("uncertain_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("ood_score", sa.Float, nullable=True))
        batch.add_column(sa.Column("scored_by", sa.String(128), nullable=True))
    # rows stored before this revision: an uncertain verdict was inside the uncertain band
    op.execute("UPDATE predictions SET uncertain_reason = 'low confidence' WHERE uncertain")


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("scored_by")
        batch.drop_column("ood_score")
        batch.drop_column("uncertain_reason")
