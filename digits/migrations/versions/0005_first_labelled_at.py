"""predictions.first_labelled_at: only a row's first label counts towards DIGITS_RETRAIN_AFTER

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("first_labelled_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_predictions_first_labelled_at", ["first_labelled_at"])
    # A row labelled before this revision counts once, from the label it has now.
    op.execute("UPDATE predictions SET first_labelled_at = labelled_at")


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_first_labelled_at")
        batch.drop_column("first_labelled_at")
