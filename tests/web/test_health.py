from __future__ import annotations

from flask.testing import FlaskClient

from bot import create_app
from bot.config import Config


def test_healthz_reports_ok_with_a_reachable_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "db": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable() -> None:
    config = Config(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", secret_key="x", testing=True
    )
    response = create_app(config).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["db"] == "unreachable"
