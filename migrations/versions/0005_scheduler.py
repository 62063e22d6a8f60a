"""scheduler: planner bookkeeping and the shared send-rate slot

Revision ID: 0005_scheduler
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_scheduler"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTICIPANT_PREDICATE = "planned_version IS NULL OR planned_version <> plan_version"
APPOINTMENT_PREDICATE = "planned_version IS NULL OR planned_version <> version"


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("planned_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("planned_settings", sa.String(length=16), nullable=True))
        batch.create_index(
            "ix_participants_needs_plan",
            ["id"],
            postgresql_where=sa.text(PARTICIPANT_PREDICATE),
            sqlite_where=sa.text(PARTICIPANT_PREDICATE),
        )
        batch.create_index("ix_participants_planned_settings", ["planned_settings"])
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("planned_version", sa.Integer(), nullable=True))
        batch.create_index(
            "ix_appointments_needs_plan",
            ["id"],
            postgresql_where=sa.text(APPOINTMENT_PREDICATE),
            sqlite_where=sa.text(APPOINTMENT_PREDICATE),
        )
    op.create_table(
        "send_rate_slots",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_send_rate_slots_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_rate_slots")),
    )


def downgrade() -> None:
    op.drop_table("send_rate_slots")
    with op.batch_alter_table("appointments") as batch:
        batch.drop_index("ix_appointments_needs_plan")
        batch.drop_column("planned_version")
    with op.batch_alter_table("participants") as batch:
        batch.drop_index("ix_participants_planned_settings")
        batch.drop_index("ix_participants_needs_plan")
        batch.drop_column("planned_settings")
        batch.drop_column("planned_version")
