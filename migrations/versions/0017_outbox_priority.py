"""outbox priority: a partial index on the pending rows of the urgent lane

Pages, crisis replies and staff replies are urgent by their purpose (bot/models/messages.py,
URGENT_PURPOSES), so no column is added: the lane (scheduler/urgent.py) polls twice a second
for due pending rows of those purposes, and this index holds only those rows, so the poll
reads a handful of entries whatever the size of the outbox or of a routine backlog. A row's
claim (pending -> sending) removes its entry; routine rows never add one.

Revision ID: 0017_outbox_priority
Revises: 0016_worker_heartbeat
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_outbox_priority"
down_revision: str | Sequence[str] | None = "0016_worker_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As written in bot/models/messages.py (URGENT_PENDING), frozen here.
URGENT_PENDING = "status = 'pending' AND purpose IN ('page', 'crisis_reply', 'coach_reply')"


def upgrade() -> None:
    op.create_index(
        "ix_outbound_messages_urgent_pending",
        "outbound_messages",
        ["send_after"],
        postgresql_where=sa.text(URGENT_PENDING),
        sqlite_where=sa.text(URGENT_PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_urgent_pending", table_name="outbound_messages")
