"""worker heartbeat: one row that every scheduler pass moves forward (/healthz reports it)

Revision ID: 0016_worker_heartbeat
Revises: 0015_inbox
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_worker_heartbeat"
down_revision: str | Sequence[str] | None = "0015_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeat",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_worker_heartbeat_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeat")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeat")
