"""checkin: the web app factory. Flask is imported inside create_app so that importing `bot`
(the models, services and transport the scheduler uses) never pulls Flask in."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from bot.config import Config
    from bot.transport.base import Transport


def create_app(config: Config | None = None, transport: Transport | None = None) -> Flask:
    from bot.web.app import build_app

    return build_app(config, transport)
