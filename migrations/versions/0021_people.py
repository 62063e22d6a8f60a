"""people: a participant's last name (staff only), closing with a reason, and the history of
their earlier phone numbers

Revision ID: 0021_people
Revises: 0020_outage
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_people"
down_revision: str | Sequence[str] | None = "0020_outage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("last_name", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("closed_reason", sa.String(length=200), nullable=True))
    op.create_table(
        "participant_phone_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("old_phone", sa.String(length=20), nullable=False),
        sa.Column("new_phone", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('edited', 'linked_unknown_number')",
            name=op.f("ck_participant_phone_history_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["changed_by_id"],
            ["users.id"],
            name=op.f("fk_participant_phone_history_changed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_participant_phone_history_participant_id_participants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant_phone_history")),
    )
    op.create_index(
        "ix_participant_phone_history_participant_id_changed_at",
        "participant_phone_history",
        ["participant_id", "changed_at"],
    )
    op.create_index(
        op.f("ix_participant_phone_history_old_phone"),
        "participant_phone_history",
        ["old_phone"],
    )


def downgrade() -> None:
    op.drop_table("participant_phone_history")
    with op.batch_alter_table("participants") as batch:
        batch.drop_column("closed_reason")
        batch.drop_column("closed_at")
        batch.drop_column("last_name")
