"""memory_entries: a session's labelled drawings as features, for its later answers

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memory_entries",
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=False),
        sa.Column("label", sa.SmallInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["prediction_id"], ["predictions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("prediction_id", "model_version"),
    )
    with op.batch_alter_table("memory_entries") as batch:
        batch.create_index(
            "ix_memory_entries_session_version_created",
            ["session_id", "model_version", "created_at"],
        )


def downgrade() -> None:
    with op.batch_alter_table("memory_entries") as batch:
        batch.drop_index("ix_memory_entries_session_version_created")
    op.drop_table("memory_entries")
