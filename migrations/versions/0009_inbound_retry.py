"""inbound retry: index texts by arrival, for the tick's retry of the ones a webhook did not finish

Revision ID: 0009_inbound_retry
Revises: 0008_early_status
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_inbound_retry"
down_revision: str | Sequence[str] | None = "0008_early_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_inbound_messages_received_at", "inbound_messages", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_received_at", table_name="inbound_messages")
