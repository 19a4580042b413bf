"""predictions table

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digit", sa.SmallInteger(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("drawing_id", sa.Uuid(), nullable=True),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("image_png", sa.LargeBinary(), nullable=True),
        sa.Column("input_png", sa.LargeBinary(), nullable=False),
        sa.Column("true_label", sa.SmallInteger(), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
    )
    with op.batch_alter_table("predictions") as batch:
        batch.create_index("ix_predictions_created_at", ["created_at"])
        batch.create_index("ix_predictions_digit_created_at", ["digit", "created_at"])
        batch.create_index("ix_predictions_true_label_created_at", ["true_label", "created_at"])
        batch.create_index("ix_predictions_drawing_id", ["drawing_id"])
        batch.create_index("ix_predictions_model_version", ["model_version"])


def downgrade() -> None:
    op.drop_table("predictions")
