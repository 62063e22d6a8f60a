"""partial indexes: a text's moves (contact planned -> queued -> sent, message sending -> sent)
add no entries to the indexes that only serve the rows still waiting

An UPDATE that cannot be HOT (these change indexed columns) inserts a new entry into every
index of the table whose predicate the new row meets; a partial index on the waiting rows
is skipped. Likewise an insert skips the partial indexes on columns it leaves NULL.

Revision ID: 0010_partial_indexes
Revises: 0009_inbound_retry
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_partial_indexes"
down_revision: str | Sequence[str] | None = "0009_inbound_retry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSENT = "status IN ('pending', 'sending')"


def _partial(where: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}


def upgrade() -> None:
    op.drop_index("ix_planned_contacts_state_send_after", table_name="planned_contacts")
    op.create_index(
        "ix_planned_contacts_planned_send_after",
        "planned_contacts",
        ["send_after"],
        **_partial("state = 'planned'"),
    )
    op.drop_index("ix_planned_contacts_appointment_id", table_name="planned_contacts")
    op.create_index(
        "ix_planned_contacts_appointment_id",
        "planned_contacts",
        ["appointment_id"],
        **_partial("appointment_id IS NOT NULL"),
    )
    op.drop_index("ix_outbound_messages_status_send_after", table_name="outbound_messages")
    # PostgreSQL only: SQLite cannot prove `status = 'pending'` implies this predicate and
    # would scan the whole outbox at every claim; it keeps the full index.
    op.create_index(
        "ix_outbound_messages_status_send_after",
        "outbound_messages",
        ["status", "send_after"],
        postgresql_where=sa.text(UNSENT),
    )
    op.drop_index("ix_outbound_messages_purpose_sent_at", table_name="outbound_messages")
    op.create_index(
        "ix_outbound_messages_purpose_sent_at",
        "outbound_messages",
        ["purpose", "sent_at"],
        **_partial("sent_at IS NOT NULL"),
    )
    op.drop_index("uq_expectations_appointment_id_appointment_version", table_name="expectations")
    op.create_index(
        "uq_expectations_appointment_id_appointment_version",
        "expectations",
        ["appointment_id", "appointment_version"],
        unique=True,
        **_partial("appointment_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_expectations_appointment_id_appointment_version", table_name="expectations")
    op.create_index(
        "uq_expectations_appointment_id_appointment_version",
        "expectations",
        ["appointment_id", "appointment_version"],
        unique=True,
    )
    op.drop_index("ix_outbound_messages_purpose_sent_at", table_name="outbound_messages")
    op.create_index(
        "ix_outbound_messages_purpose_sent_at", "outbound_messages", ["purpose", "sent_at"]
    )
    op.drop_index("ix_outbound_messages_status_send_after", table_name="outbound_messages")
    op.create_index(
        "ix_outbound_messages_status_send_after", "outbound_messages", ["status", "send_after"]
    )
    op.drop_index("ix_planned_contacts_appointment_id", table_name="planned_contacts")
    op.create_index("ix_planned_contacts_appointment_id", "planned_contacts", ["appointment_id"])
    op.drop_index("ix_planned_contacts_planned_send_after", table_name="planned_contacts")
    op.create_index(
        "ix_planned_contacts_state_send_after", "planned_contacts", ["state", "send_after"]
    )
