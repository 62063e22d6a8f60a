"""consent evidence: how and when consent was given, and who recorded it (issue 19.3)

- consent_events: `source` (how consent was given, e.g. "signed enrolment form"),
  `consent_date` (when, as the evidence says; only with a source), `import_file` (the file of
  the import that recorded it) and `recorded_by` (who recorded it when not a dashboard user:
  `cli:<user>`). A consent without a source was asserted by whoever recorded it.

The program setting `consent.require_consent_evidence` needs no migration (settings are merged
over their defaults).

Revision ID: 0024_consent_evidence
Revises: 0023_channels
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_consent_evidence"
down_revision: str | Sequence[str] | None = "0023_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consent_events") as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("consent_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("import_file", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("recorded_by", sa.String(length=254), nullable=True))
        batch_op.create_check_constraint(
            "date_has_source", "consent_date IS NULL OR source IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_events") as batch_op:
        batch_op.drop_constraint(op.f("ck_consent_events_date_has_source"), type_="check")
        batch_op.drop_column("recorded_by")
        batch_op.drop_column("import_file")
        batch_op.drop_column("consent_date")
        batch_op.drop_column("source")
