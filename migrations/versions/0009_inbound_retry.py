"""inbound retry: index the few messages whose webhook did not finish processing them

Revision ID: 0009_inbound_retry
Revises: 0008_early_status
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_inbound_retry"
down_revision: str | Sequence[str] | None = "0008_early_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNPROCESSED = sa.text("processing_state <> 'processed'")


def upgrade() -> None:
    op.create_index(
        "ix_inbound_messages_unprocessed_received_at",
        "inbound_messages",
        ["received_at"],
        unique=False,
        sqlite_where=_UNPROCESSED,
        postgresql_where=_UNPROCESSED,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_unprocessed_received_at", table_name="inbound_messages")
