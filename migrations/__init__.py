"""Alembic migrations. Every schema change is a new revision here (see README, "Migrations")."""
