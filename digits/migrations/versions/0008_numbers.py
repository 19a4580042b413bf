"""numbers table; predictions.number_id, position and box: the digits of a written number

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "numbers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("drawing_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("image_png", sa.LargeBinary(), nullable=True),
        sa.Column("strokes", sa.JSON(), nullable=True),
        sa.Column("true_number", sa.String(length=32), nullable=True),
        sa.Column("not_a_number", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_numbers_created_at", "numbers", ["created_at"])
    op.create_index("ix_numbers_status_created_at", "numbers", ["status", "created_at"])
    op.create_index("ix_numbers_session_id", "numbers", ["session_id"])
    op.create_index("ix_numbers_drawing_id", "numbers", ["drawing_id"])
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("number_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("position", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("box", sa.JSON(), nullable=True))
        batch.create_foreign_key(
            "fk_predictions_number_id_numbers", "numbers", ["number_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("ix_predictions_number_id_position", ["number_id", "position"])


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_index("ix_predictions_number_id_position")
        batch.drop_constraint("fk_predictions_number_id_numbers", type_="foreignkey")
        batch.drop_column("box")
        batch.drop_column("position")
        batch.drop_column("number_id")
    op.drop_index("ix_numbers_drawing_id", table_name="numbers")
    op.drop_index("ix_numbers_session_id", table_name="numbers")
    op.drop_index("ix_numbers_status_created_at", table_name="numbers")
    op.drop_index("ix_numbers_created_at", table_name="numbers")
    op.drop_table("numbers")
