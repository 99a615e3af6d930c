"""Provenance: the evidence a file's content carries (``images.evidence``, a JSON list of
``{kind, says, generator, detail}``) and who decided each verdict (``predictions.decided_by``:
"model" | "provenance"). Predictions stored before this revision were decided by the model.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("evidence", sa.JSON, nullable=True))
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("decided_by", sa.String(16), nullable=True))
    op.execute("UPDATE predictions SET decided_by = 'model'")
    op.create_index("ix_predictions_decided_by", "predictions", ["decided_by"])


def downgrade() -> None:
    op.drop_index("ix_predictions_decided_by", "predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("decided_by")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("evidence")
