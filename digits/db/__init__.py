"""Persistence: ORM models, the engine/session factory, queries, and migrations to head."""

from digits.db.models import Base, PredictionRow
from digits.db.session import Database, is_connection_error, normalize_url

__all__ = ["Base", "Database", "PredictionRow", "is_connection_error", "normalize_url"]
