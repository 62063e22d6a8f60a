"""dashboard: index flags by participant for the conversation page

Revision ID: 0007_dashboard
Revises: 0006_escalation
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_dashboard"
# Chained on main's head at the time of writing so the branch stays at one head; the lead
# re-chains at merge time if another revision lands first.
down_revision: str | Sequence[str] | None = "0006_escalation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_flags_participant_id_opened_at", "flags", ["participant_id", "opened_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_flags_participant_id_opened_at", table_name="flags")
