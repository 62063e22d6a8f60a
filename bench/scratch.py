"""A private PostgreSQL database for one benchmark run (the benchmarks import it by file name:
they run as `python bench/NAME.py`, which puts this directory on the import path)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.db import make_engine


@contextmanager
def scratch_database(
    server_url: str, prefix: str, *, template: str | None = None, keep: bool = False
) -> Iterator[str]:
    """Create `<prefix>_<random>` on the server `server_url` names (its database part is not
    used: the statements run from `postgres`), optionally as a copy of the database `template`;
    yield the new database's URL; drop it afterwards, connections and all, unless `keep`."""
    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(
        server.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        copy = f' TEMPLATE "{template}"' if template is not None else ""
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            if not keep:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def database_name(url: str) -> str:
    """The database part of a URL `scratch_database` yielded."""
    name = make_url(url).database
    assert name is not None
    return name
