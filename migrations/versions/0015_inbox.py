"""inbox: a text waits for a reply until a person answers it; the text that raised a flag

inbound_messages gains `needs_reply` (every new text waits until automation fully answers it or
a staff member replies or says no reply is needed), who ended the wait, when and how, and a
partial index on the waiting texts. flags gain `trigger_message_id` (the text that raised the
flag) and the reason `unanswered_text`.

Texts stored before this revision do not wait: the inbox starts empty rather than with the
program's whole history. The text that raised an existing flag is taken from its `opened` event.

Revision ID: 0015_inbox
Revises: 0014_checkins_paused_until
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0015_inbox"
down_revision: str | Sequence[str] | None = "0014_checkins_paused_until"
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
)
NEW_REASONS = (*OLD_REASONS, "unanswered_text")
ANSWER_KINDS = ("automatic", "reply", "no_reply_needed")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch_op:
        batch_op.add_column(
            sa.Column("needs_reply", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("answered_by_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("answer_kind", sa.String(length=20), nullable=True))
        batch_op.create_foreign_key(
            "fk_inbound_messages_answered_by_user_id_users",
            "users",
            ["answered_by_user_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_check_constraint("answer_kind", _in_list("answer_kind", ANSWER_KINDS))
    # Existing texts were added as not waiting; from now on a new text waits by default.
    with op.batch_alter_table("inbound_messages") as batch_op:
        batch_op.alter_column("needs_reply", server_default=sa.true())
    op.create_index(
        "ix_inbound_messages_waiting",
        "inbound_messages",
        ["participant_id", "received_at"],
        postgresql_where=sa.text("needs_reply"),
        sqlite_where=sa.text("needs_reply"),
    )
    with op.batch_alter_table("flags") as batch_op:
        batch_op.add_column(sa.Column("trigger_message_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_flags_trigger_message_id_inbound_messages",
            "inbound_messages",
            ["trigger_message_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.drop_constraint(op.f("ck_flags_reason"), type_="check")
        batch_op.create_check_constraint("reason", _in_list("reason", NEW_REASONS))
    _backfill_triggers()


def _backfill_triggers() -> None:
    bind = op.get_bind()
    events = sa.table(
        "flag_events",
        sa.column("flag_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("detail", sa.JSON),
    )
    flags = sa.table(
        "flags", sa.column("id", sa.Integer), sa.column("trigger_message_id", sa.Integer)
    )
    inbound = sa.table("inbound_messages", sa.column("id", sa.Integer))
    known = {row[0] for row in bind.execute(sa.select(inbound.c.id))}
    updates: list[dict[str, Any]] = []
    for flag_id, detail in bind.execute(
        sa.select(events.c.flag_id, events.c.detail).where(events.c.kind == "opened")
    ):
        message_id = (detail or {}).get("inbound_message_id")
        if isinstance(message_id, int) and message_id in known:
            updates.append({"flag": flag_id, "message": message_id})
    if updates:
        bind.execute(
            flags.update()
            .where(flags.c.id == sa.bindparam("flag"))
            .values(trigger_message_id=sa.bindparam("message")),
            updates,
        )


def downgrade() -> None:
    op.execute("DELETE FROM flags WHERE reason = 'unanswered_text'")
    with op.batch_alter_table("flags") as batch_op:
        batch_op.drop_constraint(op.f("ck_flags_reason"), type_="check")
        batch_op.create_check_constraint("reason", _in_list("reason", OLD_REASONS))
        batch_op.drop_constraint("fk_flags_trigger_message_id_inbound_messages", type_="foreignkey")
        batch_op.drop_column("trigger_message_id")
    op.drop_index("ix_inbound_messages_waiting", table_name="inbound_messages")
    with op.batch_alter_table("inbound_messages") as batch_op:
        batch_op.drop_constraint(op.f("ck_inbound_messages_answer_kind"), type_="check")
        batch_op.drop_constraint(
            "fk_inbound_messages_answered_by_user_id_users", type_="foreignkey"
        )
        batch_op.drop_column("answer_kind")
        batch_op.drop_column("answered_by_user_id")
        batch_op.drop_column("answered_at")
        batch_op.drop_column("needs_reply")
