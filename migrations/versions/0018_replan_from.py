"""replan from: the instant a change asked for a participant's plan to be made again

DESIGN.md, Precise rules, Re-planning: a change plans from the moment of the change, not from
the next tick. The change stores that moment here; the planner plans from it and clears it.

Revision ID: 0018_replan_from
Revises: 0017_outbox_priority
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_replan_from"
down_revision: str | Sequence[str] | None = "0017_outbox_priority"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("replan_from", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("replan_from")
