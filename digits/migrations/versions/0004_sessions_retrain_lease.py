"""predictions.session_id; retrain_lease table: one retraining at a time across replicas

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("session_id", sa.Uuid(), nullable=True))
        batch.create_index("ix_predictions_session_id", ["session_id"])
    op.create_table(
        "retrain_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("retrain_lease")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_session_id")
        batch.drop_column("session_id")
