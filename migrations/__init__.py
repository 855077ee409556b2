"""Alembic migrations: each service owns one PostgreSQL schema with its own history."""
