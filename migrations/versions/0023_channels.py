"""channels: WhatsApp templates and the 24-hour window, changed numbers, consent evidence

- whatsapp_templates: a template key and language mapped to an approved WhatsApp template
  (Twilio Content SID) and its numbered variables;
- outbound_messages: `content_sid` and `content_variables` (sent as a template), the status
  `needs_template` (status widened to 16 characters);
- flags: the reasons `whatsapp_template_missing` (program-level: no participant, no sender;
  `has_subject` and the one-unresolved-per-reason index already allow it since 0020_outage)
  and `number_changed`. A changed number is kept in `participant_phone_history` (0021_people).

Revision ID: 0023_channels
Revises: 0022_staff
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_channels"
down_revision: str | Sequence[str] | None = "0022_staff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_REASONS = (
    "no_reply",
    "unconfirmed_appointment",
    "appointment_declined",
    "delivery_failed",
    "delivery_unknown",
    "crisis",
    "opted_out",
    "unknown_sender",
    "unanswered_text",
    "twilio_account",
)
NEW_REASONS = (*OLD_REASONS, "whatsapp_template_missing", "number_changed")
OLD_STATUSES = (
    "pending",
    "sending",
    "queued",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "unknown",
    "cancelled",
)
NEW_STATUSES = (*OLD_STATUSES, "needs_template")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "whatsapp_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_key", sa.String(length=60), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("content_sid", sa.String(length=34), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "content_sid LIKE 'HX%'", name=op.f("ck_whatsapp_templates_content_sid")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_whatsapp_templates_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_templates")),
        sa.UniqueConstraint(
            "template_key", "language", name=op.f("uq_whatsapp_templates_template_key_language")
        ),
    )
    with op.batch_alter_table("outbound_messages") as batch_op:
        batch_op.add_column(sa.Column("content_sid", sa.String(length=34), nullable=True))
        batch_op.add_column(sa.Column("content_variables", sa.Text(), nullable=True))
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=12),
            type_=sa.String(length=16),
            existing_nullable=False,
            existing_server_default="pending",
        )
        batch_op.drop_constraint(op.f("ck_outbound_messages_status"), type_="check")
        batch_op.create_check_constraint("status", _in_list("status", NEW_STATUSES))
    with op.batch_alter_table("flags") as batch_op:
        batch_op.drop_constraint(op.f("ck_flags_reason"), type_="check")
        batch_op.create_check_constraint("reason", _in_list("reason", NEW_REASONS))


def downgrade() -> None:
    op.execute("DELETE FROM flags WHERE reason IN ('whatsapp_template_missing', 'number_changed')")
    with op.batch_alter_table("flags") as batch_op:
        batch_op.drop_constraint(op.f("ck_flags_reason"), type_="check")
        batch_op.create_check_constraint("reason", _in_list("reason", OLD_REASONS))
    op.execute("UPDATE outbound_messages SET status = 'failed' WHERE status = 'needs_template'")
    with op.batch_alter_table("outbound_messages") as batch_op:
        batch_op.drop_constraint(op.f("ck_outbound_messages_status"), type_="check")
        batch_op.create_check_constraint("status", _in_list("status", OLD_STATUSES))
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=16),
            type_=sa.String(length=12),
            existing_nullable=False,
            existing_server_default="pending",
        )
        batch_op.drop_column("content_variables")
        batch_op.drop_column("content_sid")
    op.drop_table("whatsapp_templates")
