"""Alembic revisions for the prediction store (run with ``digits migrate`` or ``digits serve``)."""
