"""channels: WhatsApp templates and the 24-hour window, changed numbers, consent evidence

- whatsapp_templates: a template key and language mapped to an approved WhatsApp template
  (Twilio Content SID) and its numbered variables;
- outbound_messages: `content_sid` and `content_variables` (sent as a template), the status
  `needs_template` (status widened to 16 characters);
- flags: the reasons `whatsapp_template_missing` (program-level: no participant, no sender)
  and `number_changed`; `has_subject` allows program-level reasons (also `twilio_account`);
  at most one unresolved program-level flag per reason;
- phone_changes: a participant's number confirmed or changed by a coordinator (the old number
  kept);

Revision ID: 0024_channels
Revises: 0016_worker_heartbeat
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_channels"
down_revision: str | Sequence[str] | None = "0016_worker_heartbeat"
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
)
NEW_REASONS = (*OLD_REASONS, "whatsapp_template_missing", "number_changed")
PROGRAM_REASONS = ("whatsapp_template_missing", "twilio_account")
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
OLD_SUBJECT = "participant_id IS NOT NULL OR sender_address IS NOT NULL"
PROGRAM_WHERE = "state <> 'resolved' AND participant_id IS NULL AND sender_address IS NULL"


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
        batch_op.drop_constraint(op.f("ck_flags_has_subject"), type_="check")
        batch_op.create_check_constraint(
            "has_subject", f"{OLD_SUBJECT} OR {_in_list('reason', PROGRAM_REASONS)}"
        )
    op.create_table(
        "phone_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("old_phone", sa.String(length=20), nullable=False),
        sa.Column("new_phone", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_user_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('confirmed', 'changed')", name=op.f("ck_phone_changes_kind")),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_phone_changes_participant_id_participants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["by_user_id"],
            ["users.id"],
            name=op.f("fk_phone_changes_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_changes")),
    )
    op.create_index("ix_phone_changes_participant_id_at", "phone_changes", ["participant_id", "at"])
    op.create_index(
        "uq_flags_open_program_reason",
        "flags",
        ["reason"],
        unique=True,
        sqlite_where=sa.text(PROGRAM_WHERE),
        postgresql_where=sa.text(PROGRAM_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_phone_changes_participant_id_at", table_name="phone_changes")
    op.drop_table("phone_changes")
    op.drop_index("uq_flags_open_program_reason", table_name="flags")
    op.execute(
        "DELETE FROM flags WHERE reason IN ('whatsapp_template_missing', 'number_changed')"
        " OR (participant_id IS NULL AND sender_address IS NULL)"
    )
    with op.batch_alter_table("flags") as batch_op:
        batch_op.drop_constraint(op.f("ck_flags_has_subject"), type_="check")
        batch_op.create_check_constraint("has_subject", OLD_SUBJECT)
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
