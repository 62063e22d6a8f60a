"""early status callbacks: keep a status callback that arrives before its SID is recorded

Revision ID: 0008_early_status
Revises: 0007_dashboard
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_early_status"
down_revision: str | Sequence[str] | None = "0007_dashboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "early_status_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_sid", sa.String(length=64), nullable=False),
        sa.Column("twilio_status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_early_status_callbacks")),
    )
    op.create_index(
        op.f("ix_early_status_callbacks_provider_sid"),
        "early_status_callbacks",
        ["provider_sid"],
        unique=False,
    )
    op.create_index(
        op.f("ix_early_status_callbacks_received_at"),
        "early_status_callbacks",
        ["received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_early_status_callbacks_received_at"), table_name="early_status_callbacks"
    )
    op.drop_index(
        op.f("ix_early_status_callbacks_provider_sid"), table_name="early_status_callbacks"
    )
    op.drop_table("early_status_callbacks")
