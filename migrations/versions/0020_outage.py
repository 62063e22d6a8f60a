"""outage: program-level flags (twilio_account), and when a claim was handed to the transport

flags gain the reason `twilio_account`; a flag about the program itself (participant and
sender NULL) is allowed for the program-level reasons, one unresolved per reason.
outbound_messages gain `handed_at`: a claim left `sending` by a dead worker that was never
handed to the transport goes back to `pending` instead of `unknown`.

Revision ID: 0020_outage
Revises: 0019_imports
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_outage"
down_revision: str | Sequence[str] | None = "0019_imports"
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
NEW_REASONS = (*OLD_REASONS, "twilio_account")
PROGRAM_REASONS = ("twilio_account", "whatsapp_template_missing")
OLD_SUBJECT = "participant_id IS NOT NULL OR sender_address IS NOT NULL"
UNRESOLVED_PROGRAM = "state <> 'resolved' AND participant_id IS NULL AND sender_address IS NULL"


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch_op:
        batch_op.drop_constraint(op.f("ck_flags_reason"), type_="check")
        batch_op.create_check_constraint("reason", _in_list("reason", NEW_REASONS))
        batch_op.drop_constraint(op.f("ck_flags_has_subject"), type_="check")
        batch_op.create_check_constraint(
            "has_subject", f"{OLD_SUBJECT} OR {_in_list('reason', PROGRAM_REASONS)}"
        )
    op.create_index(
        "uq_flags_open_program_reason",
        "flags",
        ["reason"],
        unique=True,
        postgresql_where=sa.text(UNRESOLVED_PROGRAM),
        sqlite_where=sa.text(UNRESOLVED_PROGRAM),
    )
    with op.batch_alter_table("outbound_messages") as batch_op:
        batch_op.add_column(sa.Column("handed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch_op:
        batch_op.drop_column("handed_at")
    op.drop_index("uq_flags_open_program_reason", table_name="flags")
    op.execute(
        "DELETE FROM flags WHERE participant_id IS NULL AND sender_address IS NULL"
        " OR reason = 'twilio_account'"
    )
    with op.batch_alter_table("flags") as batch_op:
        batch_op.drop_constraint(op.f("ck_flags_has_subject"), type_="check")
        batch_op.create_check_constraint("has_subject", OLD_SUBJECT)
        batch_op.drop_constraint(op.f("ck_flags_reason"), type_="check")
        batch_op.create_check_constraint("reason", _in_list("reason", OLD_REASONS))
