"""pending imports: a CSV uploaded in the dashboard, previewed, waiting to be confirmed

Revision ID: 0019_imports
Revises: 0018_replan_from
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_imports"
down_revision: str | Sequence[str] | None = "0018_replan_from"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('participants', 'appointments')", name=op.f("ck_pending_imports_kind")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_pending_imports_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_imports")),
        sa.UniqueConstraint("token", name=op.f("uq_pending_imports_token")),
    )
    op.create_index(
        op.f("ix_pending_imports_expires_at"), "pending_imports", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_pending_imports_user_id"), "pending_imports", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_imports_user_id"), table_name="pending_imports")
    op.drop_index(op.f("ix_pending_imports_expires_at"), table_name="pending_imports")
    op.drop_table("pending_imports")
