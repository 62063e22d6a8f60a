"""escalation: appointment version on expectations, sent-message index for the sweep

Revision ID: 0006_escalation
Revises: 0005_scheduler
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_escalation"
down_revision: str | Sequence[str] | None = "0005_scheduler"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("expectations") as batch_op:
        batch_op.add_column(sa.Column("appointment_version", sa.Integer(), nullable=True))
        batch_op.create_index(
            "uq_expectations_appointment_id_appointment_version",
            ["appointment_id", "appointment_version"],
            unique=True,
        )
    op.create_index(
        "ix_outbound_messages_purpose_sent_at",
        "outbound_messages",
        ["purpose", "sent_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_purpose_sent_at", table_name="outbound_messages")
    with op.batch_alter_table("expectations") as batch_op:
        batch_op.drop_index("uq_expectations_appointment_id_appointment_version")
        batch_op.drop_column("appointment_version")
