"""Defaults a fresh install needs: program settings and message templates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.services.settings import seed_default_settings
from bot.services.templates import seed_default_templates


def seed_defaults(session: Session, now: datetime) -> str:
    """Add whatever default is missing; never overwrite what a coordinator changed."""
    settings = seed_default_settings(session, now)
    templates = seed_default_templates(session, now)
    return f"{settings} setting(s), {templates} template(s)"
