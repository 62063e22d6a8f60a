"""checkins_paused_until: a participant's own PAUSE holds their check-ins and welcome until
this instant (UTC); appointment reminders still go. Written only by
bot/services/self_service.py (PAUSE sets it 7 days ahead, RESUME clears it).

Revision ID: 0014_checkins_paused_until
Revises: 0013_self_service_templates
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_checkins_paused_until"
# Brief: down_revision "0010_partial_indexes", re-chained by the integrator. Chained on this
# branch's 0013 here so that the branch has one head (tests/test_migrations.py).
down_revision: str | Sequence[str] | None = "0013_self_service_templates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("checkins_paused_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("checkins_paused_until")
