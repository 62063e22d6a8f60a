"""unknown answers: a staff or crisis reply to an unknown number keeps its own purpose

`outbound_messages.has_recipient` allowed a row with no participant and no staff recipient
only for purpose `reply`, so a coach's answer to an unknown number (and a crisis reply to one)
was written as a routine `reply` and waited behind routine sends. Now `crisis_reply` and
`coach_reply` may also be addressed to a number alone; both are urgent purposes
(bot/models/messages.py URGENT_PURPOSES), so they take the urgent lane.

Revision ID: 0025_unknown_answers
Revises: 0024_consent_evidence
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025_unknown_answers"
down_revision: str | Sequence[str] | None = "0024_consent_evidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "participant_id IS NOT NULL OR user_id IS NOT NULL OR purpose = 'reply'"
NEW = (
    "participant_id IS NOT NULL OR user_id IS NOT NULL OR "
    "purpose IN ('reply', 'crisis_reply', 'coach_reply')"
)


def _replace(check: str) -> None:
    with op.batch_alter_table("outbound_messages") as batch_op:
        batch_op.drop_constraint(op.f("ck_outbound_messages_has_recipient"), type_="check")
        batch_op.create_check_constraint("has_recipient", check)


def upgrade() -> None:
    _replace(NEW)


def downgrade() -> None:
    # Rows the new rule allows and the old does not become the routine answer they were before.
    op.execute(
        "UPDATE outbound_messages SET purpose = 'reply' "
        "WHERE participant_id IS NULL AND user_id IS NULL AND purpose <> 'reply'"
    )
    _replace(OLD)
