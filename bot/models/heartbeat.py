"""The worker's heartbeat: one row, moved forward by every scheduler pass."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class WorkerHeartbeat(Base):
    """When the last scheduler pass (`checkin worker` or `checkin tick`) finished, and which
    process made it. `/healthz` reports it; `/healthz/worker` answers 503 when it is old."""

    __tablename__ = "worker_heartbeat"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_pass_at: Mapped[datetime]
    worker_id: Mapped[str] = mapped_column(String(200))
