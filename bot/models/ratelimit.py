"""The shared send-rate slot: one row that every sender reserves its next send time from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class SendRateSlot(Base):
    """`next_at` is the earliest instant the next message may leave, across all workers.

    A sender reserves a slot by moving `next_at` forward by one interval under the row lock, then
    waits until its slot and sends only if it is not late (scheduler.rate.RateLimiter): the rate
    holds however many workers run, and no worker ever bursts.
    """

    __tablename__ = "send_rate_slots"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    next_at: Mapped[datetime]
